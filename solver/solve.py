"""`solve(problem, params) -> Plan`: each plan's set of locations from `solver.strategies` (the
best, then each alternative, with the earlier sets as no-good cuts), then the units each ships.

Every stage is solved to gap 0. When the time limit runs out, the best plan found so far is
returned with proven_optimal False and its gap; it is never worse than the greedy baseline's.
"""

from __future__ import annotations

import time
from dataclasses import replace
from types import MappingProxyType

from solver._core import Core
from solver.plan import NoFeasiblePlan, Plan, Shipment
from solver.problem import Problem
from solver.scoring import Score
from solver.state import Answer, OutOfTime, SolveParams, SolveState
from solver.strategies import best_answer, greedy_fallback


def solve(problem: Problem, params: SolveParams | None = None) -> Plan:
    """The best plan for `problem`, with the next best in `Plan.alternatives`.

    Raises `NoFeasiblePlan` when no plan satisfies the problem (never with allow_partial).
    """
    started = time.perf_counter()
    state = SolveState(problem, params or SolveParams(), started)
    answers = _answers(state)
    if not answers:
        raise _no_plan(state)
    seconds = time.perf_counter() - started
    first, *rest = [_plan(state.core, answer, seconds) for answer in answers]
    return replace(first, alternatives=tuple(rest))


def _answers(state: SolveState) -> list[Answer]:
    """The best set, then the next best that contains none of the earlier sets, until there are
    options.alternatives of them, none is left, or the time is up."""
    answers: list[Answer] = []
    cuts: list[frozenset[int]] = []
    for _ in range(state.problem.options.alternatives):
        try:
            answer = best_answer(state, cuts)
        except OutOfTime:
            answer = greedy_fallback(state, cuts) if not answers else None
        if answer is None:
            break
        answers.append(answer)
        if not answer.members:
            break
        cuts.append(frozenset(answer.members))
        if time.perf_counter() > state.deadline:
            break
    return answers


def _no_plan(state: SolveState) -> NoFeasiblePlan:
    """Why no set was found: too little stock, or too few shipments allowed."""
    core = state.core
    if state.best_unrouted > 0 and not core.partial:
        return NoFeasiblePlan(
            "INSUFFICIENT_STOCK",
            "the candidate locations together cannot ship the order",
            shortfall=core.shortfall(),
        )
    return NoFeasiblePlan(
        "MAX_SHIPMENTS_EXCEEDED",
        f"no set of at most {core.max_shipments} locations can ship the order",
    )


def _allocate(core: Core, members: tuple[int, ...]) -> tuple[list[Shipment], dict[str, int]]:
    """Fill in y for a chosen set: each line from its locations in key order (nearest first);
    with keep_lines_whole, from the first location that ships the most of it."""
    problem = core.problem
    atf = problem.atf
    order = sorted(members)
    units: dict[int, dict[str, int]] = {m: {} for m in order}
    unrouted: dict[str, int] = {}
    for i, line in enumerate(problem.lines):
        remaining = line.quantity
        if core.whole:
            if order:
                best = max(order, key=lambda m: (int(core.coverage[i, m]), -m))
                take = int(core.coverage[i, best])
                if take:
                    units[best][line.sku] = take
                    remaining -= take
        else:
            for m in order:
                take = min(remaining, int(atf[i, core.index[m]]))
                if take:
                    units[m][line.sku] = take
                    remaining -= take
                if not remaining:
                    break
        if remaining:
            unrouted[line.sku] = remaining
    shipments = []
    for m in order:
        location = problem.locations[int(core.index[m])]
        shipments.append(
            Shipment(
                location_id=location.id,
                units=MappingProxyType(units[m]),
                distance_km=float(problem.distance_km[int(core.index[m])]),
            )
        )
    return shipments, unrouted


def _plan(core: Core, answer: Answer, seconds: float) -> Plan:
    """The plan of a chosen set: its allocation and score."""
    # A proven optimum needs every member (module docstring of solver.model); anything else
    # may carry one it does not need.
    members = answer.members if answer.proven else core.prune(answer.members)
    shipments, unrouted = _allocate(core, members)
    unrouted_units, cost, count, distance, _ = core.key(members)
    return Plan(
        shipments=tuple(shipments),
        unrouted=MappingProxyType(unrouted),
        objective=Score(unrouted_units, cost, count, distance),
        proven_optimal=answer.proven,
        gap=answer.gap,
        method=answer.method,
        candidates=answer.candidates,
        solve_seconds=seconds,
    )
