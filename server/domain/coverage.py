"""Group reservations must stay coverable (DESIGN.md section 2).

For one SKU, a reservation held by a location group says "some member will ship it". The set of
all open group reservations must have an assignment to member locations in which no location
gives more than its capacity (its ATO after its own location-level reservations). That is a
bipartite supply problem, checked as a max-flow:

    source --d_G--> group G --c_l--> location l in G --c_l--> sink

F = max-flow is the group demand the locations can cover; it equals the total demand D unless
physical stock fell below what is promised. Reservations never lower F, so:

- a location l can still give ATO_l = c_l - need_l, where need_l = F - F(c_l = 0) is the least
  flow that must pass through l in every maximum assignment;
- a group G can still take headroom_G = F(d_G = unbounded) - F more units.

Both follow from F being, as a function of one arc's capacity x, min(a + x, b). Networks are
tiny (groups holding reservations of one SKU and their members), so OR-Tools' C++ max-flow
solves them in microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping

from ortools.graph.python import max_flow

_SOURCE, _SINK = 0, 1


class CoverageNetwork:
    """Max-flow network of one SKU's group reservations over member-location capacity."""

    def __init__(
        self,
        capacity: Mapping[str, int],
        demand: Mapping[str, int],
        members: Mapping[str, tuple[str, ...]],
    ) -> None:
        """`capacity[l]` >= 0 for every member of every group in `demand` and `members`;
        `members` covers every group in `demand` (and any group to query headroom for)."""
        self._flow = max_flow.SimpleMaxFlow()
        self._demand_arc: dict[str, int] = {}
        self._supply_arc: dict[str, int] = {}
        self._demand = dict(demand)
        self._group_capacity: dict[str, int] = {}
        node = {location: 2 + index for index, location in enumerate(capacity)}
        for location, units in capacity.items():
            self._supply_arc[location] = self._flow.add_arc_with_capacity(
                node[location], _SINK, units
            )
        next_node = 2 + len(node)
        for group, locations in members.items():
            group_node, next_node = next_node, next_node + 1
            self._demand_arc[group] = self._flow.add_arc_with_capacity(
                _SOURCE, group_node, demand.get(group, 0)
            )
            self._group_capacity[group] = sum(capacity[location] for location in locations)
            for location in locations:
                # c_l instead of infinity: same flows, and no int64 overflow in the solver.
                self._flow.add_arc_with_capacity(group_node, node[location], capacity[location])
        self.covered = self._solve()
        # Flow through each location in one maximum assignment: a location carrying none needs
        # to give nothing (dropping it keeps that assignment), which spares most re-solves.
        self._carried = {
            location: int(self._flow.flow(arc)) for location, arc in self._supply_arc.items()
        }

    def _solve(self) -> int:
        status = self._flow.solve(_SOURCE, _SINK)
        if status != self._flow.OPTIMAL:  # pragma: no cover - capacities are bounded ints
            raise RuntimeError(f"max-flow failed with status {status}")
        return int(self._flow.optimal_flow())

    def need(self, location: str) -> int:
        """Least units that `location` must give the group reservations (need_l)."""
        if not self._carried.get(location):
            return 0
        arc = self._supply_arc[location]
        capacity = self._flow.capacity(arc)
        self._flow.set_arc_capacity(arc, 0)
        without = self._solve()
        self._flow.set_arc_capacity(arc, capacity)
        return self.covered - without

    def headroom(self, group: str) -> int:
        """Units that can still be reserved at `group` with every other reservation covered."""
        arc = self._demand_arc[group]
        self._flow.set_arc_capacity(arc, self._demand.get(group, 0) + self._group_capacity[group])
        unbounded = self._solve()
        self._flow.set_arc_capacity(arc, self._demand.get(group, 0))
        return unbounded - self.covered
