"""A wave's answer: each order's `Plan` (or None: refused), the batch `Score` and its bound,
and `evaluate`, the independent check.

`evaluate` recomputes the batch score from the plans and the problem alone, and raises
`InfeasiblePlan` when a plan breaks its order's rules or the plans together take more of a
SKU at a location than it holds, or more orders or units than a location can pick.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from solver import geo
from solver.plan import InfeasiblePlan, Plan, Shipment
from solver.problem import Objective
from solver.scoring import Score
from solver.wave_model import Allocation
from solver.wave_problem import WaveProblem


@dataclass(frozen=True)
class WavePlan:
    """Plans for every order of a wave, in the problem's order; None marks a refused order
    (one without allow_partial that the wave could not route whole: all its units count as
    unrouted). `bound` is a lexicographic lower bound on any plan's objective; `gap` is None
    when proven, else the relative gap at the first level where objective and bound differ."""

    plans: tuple[Plan | None, ...]
    objective: Score
    bound: Score
    proven_optimal: bool
    gap: float | None
    method: str
    solve_seconds: float = field(default=0.0, compare=False)

    @property
    def shipment_count(self) -> int:
        """Shipments (boxes) over all orders."""
        return self.objective.shipments

    @property
    def unrouted_units(self) -> int:
        """Units left unrouted, refused orders included."""
        return self.objective.unrouted_units

    @property
    def total_distance_km(self) -> float:
        """Sum of every shipment's distance."""
        return sum(p.total_distance_km for p in self.plans if p is not None)


def total(scores: Iterable[Score]) -> Score:
    """Sum of scores, level by level (a lexicographic bound on a sum of plans' scores)."""
    parts = list(scores)
    return Score(*(sum(s[level] for s in parts) for level in range(4)))


def refused_score(problem: WaveProblem, k: int) -> Score:
    """The score of refusing order k: every unit unrouted, nothing shipped."""
    return Score(sum(x.quantity for x in problem.orders[k].lines), 0, 0, 0)


def relative_gap(objective: Score, bound: Score) -> float:
    """The relative gap at the first level where objective and bound differ (0: none)."""
    for value, low in zip(objective, bound, strict=True):
        if value != low:
            return (value - low) / max(abs(value), 1)
    return 0.0


def order_plan(
    problem: WaveProblem,
    k: int,
    allocation: Mapping[int, Mapping[str, int]],
    *,
    proven: bool,
    method: str,
) -> Plan:
    """Order k's `Plan` from its units per location position, scored as `evaluate` scores."""
    order = problem.orders[k]
    positions = sorted(allocation)
    distance = _distances_km(problem, k, positions)
    shipments = tuple(
        Shipment(
            location_id=problem.locations[j].id,
            units=MappingProxyType(dict(allocation[j])),
            distance_km=float(km),
        )
        for j, km in zip(positions, distance, strict=True)
    )
    shipped: dict[str, int] = {}
    for units in allocation.values():
        for sku, n in units.items():
            shipped[sku] = shipped.get(sku, 0) + n
    unrouted = {
        x.sku: x.quantity - shipped.get(x.sku, 0)
        for x in order.lines
        if x.quantity > shipped.get(x.sku, 0)
    }
    return Plan(
        shipments=shipments,
        unrouted=MappingProxyType(unrouted),
        objective=_score(problem, positions, distance, sum(unrouted.values())),
        proven_optimal=proven,
        gap=None if proven else 0.0,
        method=method,
        candidates=len(problem.allowed(k)),
    )


def _distances_km(problem: WaveProblem, k: int, positions: Sequence[int]) -> np.ndarray:
    at = np.asarray(positions, dtype=np.intp)
    located = problem.locations
    return geo.distances_km(
        located.latitude[at], located.longitude[at], *problem.orders[k].destination
    )


def _score(problem: WaveProblem, positions: Sequence[int], km: np.ndarray, unrouted: int) -> Score:
    """As `solver.scoring`: whole metres and milli-units, rounded per shipment."""
    cost = 0
    if problem.objective is Objective.COST:
        fixed = np.array([problem.locations[j].shipment_cost for j in positions], dtype=float)
        cost = int(np.rint((fixed + problem.cost_per_km * km) * 1000.0).sum())
    return Score(unrouted, cost, len(positions), int(np.rint(km * 1000.0).sum()))


def evaluate(problem: WaveProblem, plans: WavePlan | Sequence[Plan | None]) -> Score:
    """Recompute the batch score; raise `InfeasiblePlan` if any rule is broken."""
    found = plans.plans if isinstance(plans, WavePlan) else tuple(plans)
    if len(found) != len(problem.orders):
        raise InfeasiblePlan("ORDER_COUNT", f"{len(found)} plans for {len(problem.orders)} orders")
    taken = np.zeros_like(problem.stock)
    orders_at = np.zeros(len(problem.locations), dtype=np.int64)
    units_at = np.zeros(len(problem.locations), dtype=np.int64)
    scores = []
    for k, plan in enumerate(found):
        if plan is None:
            scores.append(refused_score(problem, k))
            continue
        positions = _check_order(problem, k, plan, taken, units_at)
        orders_at[positions] += 1
        scores.append(
            _score(problem, positions, _distances_km(problem, k, positions), plan.unrouted_units)
        )
    if np.any(taken > problem.stock):
        s, j = np.argwhere(taken > problem.stock)[0]
        raise InfeasiblePlan(
            "OVER_STOCK",
            f"{taken[s, j]} of {problem.skus[s]!r} at {problem.locations[j].id!r}, "
            f"stock {problem.stock[s, j]}",
        )
    for name, used, limit in (
        ("ORDERS", orders_at, problem.order_capacity()),
        ("UNITS", units_at, problem.unit_capacity()),
    ):
        if np.any(used > limit):
            j = int(np.argmax(used > limit))
            raise InfeasiblePlan(
                f"OVER_CAPACITY_{name}",
                f"{used[j]} {name.lower()} at {problem.locations[j].id!r}, capacity {limit[j]}",
            )
    return total(scores)


def _check_order(
    problem: WaveProblem, k: int, plan: Plan, taken: np.ndarray, units_at: np.ndarray
) -> list[int]:
    """Order k's own rules; adds its units to `taken` and `units_at`; returns its locations."""
    order = problem.orders[k]
    quantity = {x.sku: x.quantity for x in order.lines}
    allowed = set(problem.allowed(k).tolist())
    shipped = dict.fromkeys(quantity, 0)
    sources = dict.fromkeys(quantity, 0)
    positions: list[int] = []
    for shipment in plan.shipments:
        j = problem.location_index.get(shipment.location_id)
        if j is None or j not in allowed:
            raise InfeasiblePlan("NOT_ALLOWED", f"{order.id}: {shipment.location_id!r}")
        if j in positions:
            raise InfeasiblePlan("DUPLICATE_SHIPMENT", f"{order.id}: {shipment.location_id!r}")
        if not shipment.units:
            raise InfeasiblePlan("EMPTY_SHIPMENT", f"{order.id}: {shipment.location_id!r}")
        positions.append(j)
        for sku, units in shipment.units.items():
            if sku not in quantity:
                raise InfeasiblePlan("UNKNOWN_SKU", f"{order.id}: {sku!r} is not ordered")
            if not isinstance(units, int | np.integer) or units <= 0:
                raise InfeasiblePlan("INVALID_UNITS", f"{order.id}: {units!r} of {sku!r}")
            shipped[sku] += int(units)
            sources[sku] += 1
            taken[problem.sku_index[sku], j] += units
            units_at[j] += units
    for sku, q in quantity.items():
        unrouted = int(plan.unrouted.get(sku, 0))
        if unrouted < 0 or shipped[sku] + unrouted != q:
            raise InfeasiblePlan(
                "QUANTITY_MISMATCH", f"{order.id}: {sku!r} {shipped[sku]} + {unrouted} != {q}"
            )
        if unrouted and not order.allow_partial:
            raise InfeasiblePlan("PARTIAL_NOT_ALLOWED", f"{order.id}: {unrouted} of {sku!r}")
        if order.keep_lines_whole and sources[sku] > 1:
            raise InfeasiblePlan("LINE_SPLIT", f"{order.id}: {sku!r} from {sources[sku]}")
    if set(plan.unrouted) - set(quantity):
        raise InfeasiblePlan("UNKNOWN_SKU", f"{order.id}: unrouted {sorted(plan.unrouted)}")
    if order.max_shipments is not None and len(positions) > order.max_shipments:
        raise InfeasiblePlan("TOO_MANY_SHIPMENTS", f"{order.id}: {len(positions)}")
    return positions


def assemble(
    problem: WaveProblem,
    allocations: Sequence[Allocation | None],
    bound: Score,
    proven: bool,
    method: str,
    started: float,
) -> WavePlan:
    """The `WavePlan` of per-order allocations (None: refused), scored here."""
    plans = tuple(
        None if a is None else order_plan(problem, k, a, proven=proven, method=method)
        for k, a in enumerate(allocations)
    )
    objective = total(
        refused_score(problem, k) if p is None else p.objective for k, p in enumerate(plans)
    )
    bound = Score(*(min(b, o) for b, o in zip(bound, objective, strict=True)))
    proven = proven or objective == bound
    return WavePlan(
        plans=plans,
        objective=objective,
        bound=bound,
        proven_optimal=proven,
        gap=None if proven else relative_gap(objective, bound),
        method=method,
        solve_seconds=time.perf_counter() - started,
    )
