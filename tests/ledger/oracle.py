"""Brute-force oracles for the quantities of DESIGN.md section 2, written independently of
server/domain: no OR-Tools, no server code, only definitions a reader can check by hand.

A SKU's state is the stock of each location (on hand, safety stock, futures total, the
location-level reserved) and the open group demand per group. Group coverage is a bipartite
supply problem; its maximum flow is computed here by enumerating cuts (the max-flow/min-cut
theorem; for unbounded group->location arcs this is the deficiency form of Hall's theorem):

    F = min over subsets S of the groups of
            sum(d_G for G not in S) + sum(c_l for l a member of some G in S)

(a cut keeps S on the source side, so it must cut every member of S at the sink). With all
capacities satisfied, F = D says Hall's condition holds: every set of groups has at least its
demand in the capacity of its members together.

Every "largest q such that ..." below is found by binary search over a predicate that is
monotone in q, each probe being one such brute-force flow.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

UNBOUNDED = math.inf


def max_flow(
    capacity: Mapping[str, int],
    groups: list[tuple[int, tuple[str, ...]]],
    extra: tuple[int, Mapping[str, int]] | None = None,
) -> int:
    """Maximum flow from demand nodes through locations (capacity c_l) to the sink, by
    enumerating cuts. `groups` are (demand, members) with unbounded arcs to their members;
    `extra` is one more demand node whose arcs to locations have the given capacities."""
    best: float = UNBOUNDED
    sources = len(groups) + (extra is not None)
    for mask in range(1 << sources):
        cut = 0
        reached: set[str] = set()
        for index, (demand, members) in enumerate(groups):
            if mask >> index & 1:
                reached.update(members)
            else:
                cut += demand
        cut += sum(capacity.get(location, 0) for location in reached)
        if extra is not None:
            demand, arcs = extra
            if mask >> len(groups) & 1:
                cut += sum(
                    min(capacity.get(location, 0), units)
                    for location, units in arcs.items()
                    if location not in reached
                )
            else:
                cut += demand
        best = min(best, cut)
    return int(best)


def largest(low: int, high: int, holds: object) -> int:
    """The largest q in [low, high] with holds(q), given holds(low) and monotonicity."""
    assert callable(holds)
    while low < high:
        middle = (low + high + 1) // 2
        if holds(middle):
            low = middle
        else:
            high = middle - 1
    return low


_MEMO: dict[tuple[Any, ...], int] = {}


def memoized(method: Callable[[SkuState, str], int]) -> Callable[[SkuState, str], int]:
    """Caches an oracle answer by the SKU state's content: a state machine asks the same
    questions about unchanged states over and over."""

    @functools.wraps(method)
    def wrapper(state: SkuState, name: str) -> int:
        key = (method.__name__, name, state.key())
        if key not in _MEMO:
            if len(_MEMO) > 200_000:
                _MEMO.clear()
            _MEMO[key] = method(state, name)
        return _MEMO[key]

    return wrapper


@dataclass(frozen=True)
class Stock:
    on_hand: int = 0
    safety_stock: int = 0
    futures_total: int = 0
    reserved: int = 0  # open location-level reservation lines

    @property
    def to_order(self) -> int:
        """c_l: what the location can give, after its own reservations (order network)."""
        return max(0, self.on_hand + self.futures_total - self.reserved - self.safety_stock)

    @property
    def to_fulfill(self) -> int:
        return max(0, self.on_hand - self.reserved - self.safety_stock)


@dataclass
class SkuState:
    """One SKU across a fixed network."""

    members: Mapping[str, tuple[str, ...]]
    stock: dict[str, Stock] = field(default_factory=dict)
    demand: dict[str, int] = field(default_factory=dict)  # open group reservation units

    def record(self, location: str) -> Stock:
        return self.stock.get(location, Stock())

    def key(self) -> tuple[Any, ...]:
        return (
            tuple(sorted(self.members.items())),
            tuple(
                sorted(
                    (location, stock) for location, stock in self.stock.items() if stock != Stock()
                )
            ),
            tuple(sorted((group, units) for group, units in self.demand.items() if units)),
        )

    def capacities(self, *, fulfill: bool = False) -> dict[str, int]:
        locations = {location for group in self.members.values() for location in group}
        locations |= set(self.stock)
        return {
            location: self.record(location).to_fulfill
            if fulfill
            else self.record(location).to_order
            for location in locations
        }

    def flow(
        self,
        capacity: Mapping[str, int] | None = None,
        demand: Mapping[str, int] | None = None,
        extra: tuple[int, Mapping[str, int]] | None = None,
    ) -> int:
        capacity = self.capacities() if capacity is None else capacity
        demand = self.demand if demand is None else demand
        groups = [(units, self.members[group]) for group, units in demand.items() if units]
        return max_flow(capacity, groups, extra)

    @property
    def total_demand(self) -> int:
        return sum(self.demand.values())

    def deficit(self) -> int:
        """Open group demand that member capacity cannot cover (0 when feasible)."""
        return self.total_demand - self.flow()

    # --- availability, by definition -------------------------------------------------------

    @memoized
    def location_ato(self, location: str) -> int:
        """The largest q that could be reserved at the location without uncovering any group
        demand that is covered now (the deficit must not grow)."""
        capacity = self.capacities()
        covered = self.flow(capacity)
        own = capacity.get(location, 0)

        def keeps(q: int) -> bool:
            return self.flow({**capacity, location: own - q}) == covered

        return largest(0, own, keeps)

    @memoized
    def need(self, location: str) -> int:
        """Group flow the location must carry in every maximum assignment."""
        capacity = self.capacities()
        return self.flow(capacity) - self.flow({**capacity, location: 0})

    @memoized
    def location_atf(self, location: str) -> int:
        """DESIGN.md: the ATF formula less what the group reservations covering the location
        cannot get from elsewhere."""
        record = self.record(location)
        return max(0, record.on_hand - record.reserved - record.safety_stock - self.need(location))

    @memoized
    def group_ato(self, group: str) -> int:
        """The largest extra demand at the group that is fully coverable on top of what is
        covered now."""
        capacity = self.capacities()
        covered = self.flow(capacity)
        ceiling = sum(capacity.get(location, 0) for location in self.members[group])

        def fits(x: int) -> bool:
            demand = {**self.demand, group: self.demand.get(group, 0) + x}
            return self.flow(capacity, demand) == covered + x

        return largest(0, ceiling, fits)

    @memoized
    def group_atf(self, group: str) -> int:
        """What can still be reserved at the group and shipped from stock on hand, the
        existing group reservations taking stock on hand first (as much as they can): the
        extra demand at the group that the on-hand network can still cover, at most ATO."""
        capacity = self.capacities(fulfill=True)
        covered = self.flow(capacity)
        ceiling = sum(capacity.get(location, 0) for location in self.members[group])

        def fits(x: int) -> bool:
            demand = {**self.demand, group: self.demand.get(group, 0) + x}
            return self.flow(capacity, demand) == covered + x

        return min(self.group_ato(group), largest(0, ceiling, fits))

    @memoized
    def group_shippable_now(self, group: str) -> int:
        """Upper bound for an honest group ATF: the most units x that can be added at the group
        so that every existing group reservation stays covered (futures allowed) while the x
        new units come from stock on hand only. A single max-flow with one extra demand node
        whose arcs carry at most each member's free on-hand stock."""
        capacity = self.capacities()
        covered = self.flow(capacity)
        on_hand = self.capacities(fulfill=True)
        ceiling = sum(on_hand.get(location, 0) for location in self.members[group])

        def fits(x: int) -> bool:
            arcs = {location: on_hand.get(location, 0) for location in self.members[group]}
            return self.flow(capacity, extra=(x, arcs)) == covered + x

        return largest(0, ceiling, fits)
