"""The answer: a `Plan` (which location ships which units), its `Score`, and `evaluate`.

`evaluate` is the independent check (as in the MathOpt facility-location sample): it recomputes a
plan's score from the plan's shipments and the problem's data alone, and raises `InfeasiblePlan`
when the plan breaks any rule of the problem. Tests hold every plan `solve` returns against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from solver.problem import Problem
from solver.scoring import Score, score


class InfeasiblePlan(ValueError):
    """`evaluate` found a plan that breaks a rule of its problem; `reason` says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class NoFeasiblePlan(Exception):
    """No plan satisfies the problem (only without allow_partial, or for the enumeration cap).

    `reason`: INSUFFICIENT_STOCK (candidates cannot cover `shortfall`, sku -> missing units),
    MAX_SHIPMENTS_EXCEEDED (the order needs more than options.max_shipments locations), or
    ENUMERATION_CAP_REACHED (baselines only).
    """

    def __init__(
        self, reason: str, message: str, *, shortfall: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.shortfall: Mapping[str, int] = MappingProxyType(dict(shortfall or {}))


@dataclass(frozen=True)
class Shipment:
    """What one location ships: units per SKU (only SKUs it ships), and its distance."""

    location_id: str
    units: Mapping[str, int]
    distance_km: float


@dataclass(frozen=True)
class Plan:
    """A routing answer. `alternatives` holds the next best distinct location sets, best first.

    `gap` is None when `proven_optimal`; otherwise the relative gap of the stage that ran out of
    time (e.g. 0.25 when 4 shipments were found and 3 could not be ruled out).
    """

    shipments: tuple[Shipment, ...]
    unrouted: Mapping[str, int]
    objective: Score
    proven_optimal: bool
    gap: float | None
    method: str
    candidates: int
    solve_seconds: float = field(default=0.0, compare=False)
    alternatives: tuple[Plan, ...] = ()

    @property
    def shipment_count(self) -> int:
        """Number of locations that ship."""
        return len(self.shipments)

    @property
    def total_distance_km(self) -> float:
        """Sum of the shipments' distances."""
        return float(sum(s.distance_km for s in self.shipments))

    @property
    def location_ids(self) -> tuple[str, ...]:
        """The shipping locations, in shipment order."""
        return tuple(s.location_id for s in self.shipments)

    @property
    def unrouted_units(self) -> int:
        """Units left unrouted (0 unless allow_partial)."""
        return sum(self.unrouted.values())


def evaluate(problem: Problem, plan: Plan) -> Score:
    """Recompute `plan`'s score from its shipments; raise `InfeasiblePlan` if it breaks a rule."""
    options = problem.options
    sku_index = {line.sku: i for i, line in enumerate(problem.lines)}
    location_index = {location.id: j for j, location in enumerate(problem.locations)}
    shipped = np.zeros(len(problem.lines), dtype=np.int64)
    sources = np.zeros(len(problem.lines), dtype=np.int64)
    used: list[int] = []
    for shipment in plan.shipments:
        j = location_index.get(shipment.location_id)
        if j is None:
            raise InfeasiblePlan("UNKNOWN_LOCATION", f"{shipment.location_id!r} is no candidate")
        if shipment.location_id in options.excluded_locations:
            raise InfeasiblePlan("EXCLUDED_LOCATION", f"{shipment.location_id!r} is excluded")
        if j in used:
            raise InfeasiblePlan("DUPLICATE_SHIPMENT", f"{shipment.location_id!r} ships twice")
        used.append(j)
        if not shipment.units:
            raise InfeasiblePlan("EMPTY_SHIPMENT", f"{shipment.location_id!r} ships nothing")
        for sku, units in shipment.units.items():
            i = sku_index.get(sku)
            if i is None:
                raise InfeasiblePlan("UNKNOWN_SKU", f"{sku!r} is not ordered")
            if not isinstance(units, int | np.integer) or units <= 0:
                raise InfeasiblePlan("INVALID_UNITS", f"{units!r} units of {sku!r}")
            if units > problem.atf[i, j]:
                raise InfeasiblePlan(
                    "OVER_ATF",
                    f"{units} of {sku!r} at {shipment.location_id!r}, ATF {problem.atf[i, j]}",
                )
            shipped[i] += units
            sources[i] += 1
    unrouted_total = 0
    for i, line in enumerate(problem.lines):
        unrouted = int(plan.unrouted.get(line.sku, 0))
        if unrouted < 0 or shipped[i] + unrouted != line.quantity:
            raise InfeasiblePlan(
                "QUANTITY_MISMATCH",
                f"{line.sku!r}: shipped {shipped[i]} + unrouted {unrouted} != {line.quantity}",
            )
        if unrouted and not options.allow_partial:
            raise InfeasiblePlan("PARTIAL_NOT_ALLOWED", f"{unrouted} of {line.sku!r} unrouted")
        if options.keep_lines_whole and sources[i] > 1:
            raise InfeasiblePlan("LINE_SPLIT", f"{line.sku!r} ships from {sources[i]} locations")
        unrouted_total += unrouted
    if set(plan.unrouted) - set(sku_index):
        raise InfeasiblePlan(
            "UNKNOWN_SKU", f"unrouted {sorted(set(plan.unrouted) - set(sku_index))}"
        )
    if options.max_shipments is not None and len(used) > options.max_shipments:
        raise InfeasiblePlan("TOO_MANY_SHIPMENTS", f"{len(used)} > {options.max_shipments}")
    return score(problem, used, unrouted_total)
