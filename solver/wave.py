"""Route a wave of orders jointly: `solve(problem, time_limit) -> WavePlan`, exact where the
time allows, and always with a lower bound.

The model is in `solver.wave_model`; this module decides which orders need it. Each order's
own optimum (today's exact single-order solver, the stock and capacity to itself) is a lower
bound on its part of any wave plan, so their sum bounds the wave (`WavePlan.bound`), and when
those plans fit the stock and capacity together they are the wave's optimum with no MIP at all.
Otherwise the orders whose own plans collide (T) are solved jointly over the whole stock, the
others (F) dropped: that optimum plus F's own optima is again a lower bound, and when T's plans
fit beside F's own plans it is reached, so optimal. When they do not fit, the F orders they
collide with join T and T is solved again; T only grows, so this ends, at worst with T the
whole wave (whose optimum is feasible by construction).

When the colliding orders are too many for one MIP in seconds, or the MIP cannot prove its
answer, the plan is improved group by group (`solver.wave_search`) and comes back unproven,
with the bound and the gap.

Lower bounds add level by level: if a >=lex b and c >=lex d then a + c >=lex b + d.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from solver.plan import NoFeasiblePlan
from solver.problem import IntArray
from solver.scoring import Score
from solver.solve import solve as solve_order
from solver.wave_model import Allocation, columns, solve_columns
from solver.wave_plan import WavePlan, assemble, refused_score, total
from solver.wave_problem import WaveProblem
from solver.wave_search import improve
from solver.wave_turns import allocation_of, left_after, route_in_turn

_JOINT_SHARE = 0.5
"""Once the colliding orders are this share of the wave, solve the whole wave at once."""
_SEARCH_SHARE = 0.2
"""Share of the time left that a joint MIP leaves for improving its incumbent if it cannot
prove it in the rest."""
_EXACT_COLUMNS = 60_000
"""Above this many x and y variables the joint MIP is out of reach within a time limit of
seconds: the colliding orders are routed in turn and improved group by group instead."""


def own_optimum(
    problem: WaveProblem, k: int, time_limit: float
) -> tuple[Allocation | None, Score, bool]:
    """Order k's best plan with the stock and capacity to itself: (allocation or None when
    refused, its score, proven)."""
    try:
        plan = solve_order(problem.order_problem(k, time_limit=time_limit))
    except NoFeasiblePlan:
        return None, refused_score(problem, k), True
    return allocation_of(problem, plan), plan.objective, plan.proven_optimal


def solve(problem: WaveProblem, time_limit: float = 10.0) -> WavePlan:
    """The wave's lexicographic optimum (module docstring), or the best plan found within
    `time_limit` seconds with its lower bound and gap."""
    started = time.perf_counter()
    deadline = started + time_limit
    n = len(problem.orders)
    own = [own_optimum(problem, k, max(deadline - time.perf_counter(), 0.01)) for k in range(n)]
    allocations: list[Allocation | None] = [a for a, _, _ in own]
    joint = {k for k, (_, _, proven) in enumerate(own) if not proven}
    joint |= colliding(problem, allocations, set(range(n)))
    colliding_first = set(joint)
    bound = total(score for _, score, _ in own)
    proven = True
    method = "own-optima"
    while joint:
        if len(joint) >= _JOINT_SHARE * n:
            joint = set(range(n))
        orders = sorted(joint)
        cols = columns(problem, orders)
        if len(cols.pair_order) + len(cols.entry_pair) > _EXACT_COLUMNS:
            return _search(problem, own, colliding_first, started, deadline)
        mip_deadline = deadline - _SEARCH_SHARE * (deadline - time.perf_counter())
        answer = solve_columns(problem, cols, mip_deadline, _least_shipments(own, orders))
        if answer is None:
            return _fallback(problem, allocations, joint, bound, started)
        trial = list(allocations)
        for k, allocation in zip(orders, answer.allocations, strict=True):
            trial[k] = allocation
        bound = total([Score(*answer.bound), *(own[k][1] for k in range(n) if k not in joint)])
        method = "wave-mip" if len(joint) < n else "wave-mip-all"
        more = colliding(problem, trial, set(range(n)) - joint)
        if not more:
            allocations, proven = trial, answer.proven
            if not proven:  # the time held back: improve the MIP's incumbent group by group
                least = _least_shipments(own, range(n)).tolist()
                allocations = improve(problem, allocations, own, least, deadline)
                method += "+group-search"
            break
        if time.perf_counter() > deadline:
            return _fallback(problem, allocations, joint, bound, started)
        joint |= more
    return assemble(problem, allocations, bound, proven, method, started)


def _least_shipments(
    own: Sequence[tuple[Allocation | None, Score, bool]], orders: Sequence[int]
) -> IntArray:
    """k_o of the model's (9): the proven fewest shipments that route each order in full
    alone (0 where unknown, or where it cannot be routed in full)."""
    return np.array(
        [
            score.shipments if proven and not score.unrouted_units else 0
            for _, score, proven in (own[k] for k in orders)
        ],
        dtype=np.int64,
    )


def colliding(
    problem: WaveProblem, allocations: Sequence[Allocation | None], among: set[int]
) -> set[int]:
    """The orders in `among` that use a SKU at a location, or a location's capacity, that the
    allocations together oversubscribe."""
    taken = np.zeros_like(problem.stock)
    orders_at = np.zeros(len(problem.locations), dtype=np.int64)
    units_at = np.zeros(len(problem.locations), dtype=np.int64)
    for allocation in allocations:
        for j, units in (allocation or {}).items():
            orders_at[j] += 1
            for sku, n in units.items():
                taken[problem.sku_index[sku], j] += n
                units_at[j] += n
    over_stock = taken > problem.stock
    over_location = (orders_at > problem.order_capacity()) | (units_at > problem.unit_capacity())
    if not over_stock.any() and not over_location.any():
        return set()
    found = set()
    for k in among:
        for j, units in (allocations[k] or {}).items():
            if over_location[j] or any(over_stock[problem.sku_index[s], j] for s in units):
                found.add(k)
                break
    return found


def _search(
    problem: WaveProblem,
    own: Sequence[tuple[Allocation | None, Score, bool]],
    joint: set[int],
    started: float,
    deadline: float,
) -> WavePlan:
    """A wave too large for one MIP: the colliding orders routed in turn beside the others'
    own plans, then improved by `solver.wave_search` until the deadline."""
    routed = _in_turn_after_own(problem, [a for a, _, _ in own], joint)
    least = _least_shipments(own, range(len(own)))
    improved = improve(problem, routed, own, least.tolist(), deadline)
    bound = total(score for _, score, _ in own)
    return assemble(problem, improved, bound, False, "own-optima+group-search", started)


def _in_turn_after_own(
    problem: WaveProblem, allocations: Sequence[Allocation | None], joint: set[int]
) -> list[Allocation | None]:
    """Orders outside `joint` keep their allocations; those in it are routed in turn over
    what is left, by today's single-order solver."""
    fixed = [None if k in joint else a for k, a in enumerate(allocations)]
    stock, orders_left, units_left = left_after(problem, fixed)
    routed = route_in_turn(problem, sorted(joint), stock, orders_left, units_left, 1.0)
    for k, allocation in routed.items():
        fixed[k] = allocation
    return fixed


def _fallback(
    problem: WaveProblem,
    allocations: list[Allocation | None],
    joint: set[int],
    bound: Score,
    started: float,
) -> WavePlan:
    """Out of time: the others keep their own plans, and the colliding orders are routed one by
    one over what is left, by today's single-order solver."""
    routed = _in_turn_after_own(problem, allocations, joint)
    return assemble(problem, routed, bound, False, "own-optima+one-by-one", started)
