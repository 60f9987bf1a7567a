"""Group reservations must stay coverable (DESIGN.md section 2).

For one SKU, a reservation held by a location group says "some member will ship it". The set of
all open group reservations must have an assignment to member locations in which no location
gives more than its capacity c_l (its ATO after its own location-level reservations). That is a
bipartite supply problem, checked as a max-flow:

    source --d_G--> group G --> location l in G --c_l--> sink

F = max-flow is the group demand the locations can cover; it equals the total demand D unless
physical stock fell below what is promised. Reservations never lower F, so:

- a location l can still give c_l - need_l, where need_l = F - F(c_l = 0) is the least flow
  that must pass through l in every maximum assignment;
- a group G can still take headroom_G = F(d_G = unbounded) - F more units.

Method. Locations that belong to exactly the same groups (a membership class) are
interchangeable, so the network is solved over classes, with C_k the summed capacity of class
k: a national retailer's overlapping groups over thousands of stores have a handful of classes.
Arcs are built from arrays in one call, and the answers come from one max-flow plus one
re-solve per class and per group asked about, never one per location:

- F as a function of one arc's capacity x is min(a + x, b) (a min over cuts, each either
  containing the arc or not). For class k, a = F(C_k = 0), so the slack s_k = a + C_k - F is
  capacity of k that no maximum assignment needs. Lowering C_k by c_l (l in k) then lowers F by
  max(0, c_l - s_k): need_l = max(0, c_l - s_k), and l can still give min(c_l, s_k).
- A class that carries no flow in the assignment found has s_k = C_k (dropping it keeps that
  assignment), which spares most re-solves; a class in no group of the network has no slack
  limit at all.
- headroom_G re-solves once with d_G raised by G's whole capacity, which is unbounded here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ortools.graph.python import max_flow

_SOURCE, _SINK = 0, 1
UNLIMITED = np.iinfo(np.int64).max
MAX_LAYOUTS = 1024  # distinct sets of groups at stake kept per network version


@dataclass(frozen=True)
class MembershipClasses:
    """Locations partitioned by the exact set of groups that hold them (only locations in some
    group have a class). `pair_class[i]` is in group `groups[pair_group[i]]`."""

    class_of: Mapping[str, int]
    count: int
    groups: tuple[str, ...]
    pair_class: np.ndarray
    pair_group: np.ndarray
    disabled: frozenset[str] = frozenset()
    """Groups that report no availability (disabled: OCI's IsEnabled)."""
    for_sku: bool = False
    """One SKU's own classes (`excluding`), not the network's."""
    group_index: dict[str, int] = field(init=False, repr=False)
    _of_group: dict[str, np.ndarray] = field(init=False, repr=False)
    _layouts: dict[tuple[str, ...], Layout] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        index = {group: position for position, group in enumerate(self.groups)}
        order = np.argsort(self.pair_group, kind="stable")
        bounds = np.searchsorted(self.pair_group[order], np.arange(len(self.groups) + 1))
        of_group = {
            group: self.pair_class[order[bounds[i] : bounds[i + 1]]]
            for i, group in enumerate(self.groups)
        }
        object.__setattr__(self, "group_index", index)
        object.__setattr__(self, "_of_group", of_group)
        object.__setattr__(self, "_layouts", {})

    @classmethod
    def of(
        cls, members: Mapping[str, Iterable[str]], disabled: frozenset[str] = frozenset()
    ) -> MembershipClasses:
        """Classes of the locations of `members` (group id -> member location ids)."""
        groups = tuple(sorted(members))
        held_by: dict[str, list[int]] = {}
        for position, group in enumerate(groups):
            for location in members[group]:
                held_by.setdefault(location, []).append(position)
        signature_class: dict[tuple[int, ...], int] = {}
        class_of = {
            location: signature_class.setdefault(tuple(signature), len(signature_class))
            for location, signature in held_by.items()
        }
        pairs = [(k, g) for signature, k in signature_class.items() for g in signature]
        pair_array = np.array(pairs, dtype=np.int32).reshape(-1, 2)
        return cls(
            class_of,
            len(signature_class),
            groups,
            pair_array[:, 0].copy(),
            pair_array[:, 1].copy(),
            disabled,
        )

    def excluding(self, excluded: Mapping[str, Collection[str]]) -> MembershipClasses:
        """These classes for one SKU whose records at some locations count in none of some of
        their groups (OCI's groupEligibilityExclusion; location id -> group ids): each such
        location moves to the class of the groups it still counts in. Other classes keep their
        numbers."""
        signatures: list[list[int]] = [[] for _ in range(self.count)]
        for k, g in zip(self.pair_class.tolist(), self.pair_group.tolist(), strict=True):
            signatures[k].append(g)
        signature_class = {tuple(sorted(sig)): k for k, sig in enumerate(signatures)}
        class_of = dict(self.class_of)
        for location, groups in excluded.items():
            k = class_of.get(location)
            if k is None:
                continue
            dropped = {self.group_index[g] for g in groups if g in self.group_index}
            signature = tuple(sorted(g for g in signatures[k] if g not in dropped))
            if not signature:
                del class_of[location]
            else:
                class_of[location] = signature_class.setdefault(signature, len(signature_class))
        pairs = [(k, g) for signature, k in signature_class.items() for g in signature]
        pair_array = np.array(pairs, dtype=np.int32).reshape(-1, 2)
        return MembershipClasses(
            class_of,
            len(signature_class),
            self.groups,
            pair_array[:, 0].copy(),
            pair_array[:, 1].copy(),
            self.disabled,
            for_sku=True,
        )

    def of_group(self, group: str) -> np.ndarray:
        """Indices of the classes whose locations `group` holds (empty for an unknown group)."""
        return self._of_group.get(group, np.empty(0, dtype=np.int32))

    def layout(self, names: tuple[str, ...]) -> Layout:
        """The arcs of a coverage network over the groups `names` (sorted), kept for reuse:
        every SKU with the same groups at stake has the same network but for capacities."""
        found = self._layouts.get(names)
        if found is None:
            if len(self._layouts) >= MAX_LAYOUTS:
                self._layouts.clear()
            found = self._layouts[names] = Layout.of(self, names)
        return found


@dataclass(frozen=True)
class Layout:
    """Nodes: 0 source, 1 sink, 2 + i for group names[i], class_nodes[j] for class members[j].
    Arc a from group node tails[a] to the class members[arc_class[a]]."""

    names: tuple[str, ...]
    members: np.ndarray
    class_nodes: np.ndarray
    tails: np.ndarray
    arc_class: np.ndarray

    @classmethod
    def of(cls, classes: MembershipClasses, names: tuple[str, ...]) -> Layout:
        node_of_position = np.zeros(len(classes.groups), dtype=np.int32)
        for i, group in enumerate(names):
            position = classes.group_index.get(group)
            if position is not None:
                node_of_position[position] = 2 + i
        in_network = node_of_position[classes.pair_group] > 0
        pair_class = classes.pair_class[in_network]
        members = np.unique(pair_class)
        return cls(
            names,
            members,
            (2 + len(names) + np.arange(len(members))).astype(np.int32),
            node_of_position[classes.pair_group[in_network]],
            np.searchsorted(members, pair_class),
        )


class Coverage:
    """Max-flow over membership classes of one SKU's group reservations."""

    def __init__(
        self,
        capacity: np.ndarray,
        classes: MembershipClasses,
        demand: Mapping[str, int],
        groups: Collection[str] = (),
    ) -> None:
        """`capacity[k]` >= 0 is class k's summed capacity; the network holds the groups with
        demand and `groups` (those whose headroom will be asked)."""
        self._capacity = capacity
        self._classes = classes
        self._demand = {group: units for group, units in demand.items() if units}
        layout = classes.layout(tuple(sorted(set(self._demand) | set(groups))))
        self._flow = max_flow.SimpleMaxFlow()
        self._demand_arc = {
            group: int(self._flow.add_arc_with_capacity(_SOURCE, 2 + i, self._demand.get(group, 0)))
            for i, group in enumerate(layout.names)
        }
        member_capacity = capacity[layout.members]
        # Group -> class arcs carry the class's capacity rather than infinity: same flows, and
        # no int64 overflow in the solver.
        self._flow.add_arcs_with_capacity(
            layout.tails, layout.class_nodes[layout.arc_class], member_capacity[layout.arc_class]
        )
        supply = self._flow.add_arcs_with_capacity(
            layout.class_nodes, np.full(len(layout.members), _SINK, dtype=np.int32), member_capacity
        )
        self._supply_arc = dict(zip(layout.members.tolist(), supply.tolist(), strict=True))
        self.covered = self._solve()
        self._carried = {k: int(self._flow.flow(arc)) for k, arc in self._supply_arc.items()}
        self._slack: dict[int, int] = {}
        self._headroom: dict[str, int] = {}

    def _solve(self) -> int:
        status = self._flow.solve(_SOURCE, _SINK)
        if status != self._flow.OPTIMAL:  # pragma: no cover - capacities are bounded ints
            raise RuntimeError(f"max-flow failed with status {status}")
        return int(self._flow.optimal_flow())

    def slack(self, class_index: int) -> int:
        """s_k: capacity of class k that no maximum assignment needs (UNLIMITED outside)."""
        if class_index not in self._supply_arc:
            return int(UNLIMITED)
        found = self._slack.get(class_index)
        if found is None:
            capacity = int(self._capacity[class_index])
            if not self._carried[class_index]:
                found = capacity
            else:
                arc = self._supply_arc[class_index]
                self._flow.set_arc_capacity(arc, 0)
                found = self._solve() + capacity - self.covered
                self._flow.set_arc_capacity(arc, capacity)
            self._slack[class_index] = found
        return found

    def headroom(self, group: str) -> int:
        """Units that can still be reserved at `group` with every other reservation covered."""
        found = self._headroom.get(group)
        if found is not None:
            return found
        arc = self._demand_arc[group]
        demand = self._demand.get(group, 0)
        group_capacity = int(self._capacity[self._classes.of_group(group)].sum())
        self._flow.set_arc_capacity(arc, demand + group_capacity)
        unbounded = self._solve()
        self._flow.set_arc_capacity(arc, demand)
        found = self._headroom[group] = unbounded - self.covered
        return found


class LocationCoverage:
    """`Coverage` asked by location: for checks over an explicit membership (a group change)
    and for tests against the per-location definition."""

    def __init__(
        self,
        capacity: Mapping[str, int],
        demand: Mapping[str, int],
        members: Mapping[str, Sequence[str]],
    ) -> None:
        """`capacity[l]` >= 0 for every member of every group in `members`, which covers every
        group in `demand` (and any group to query headroom for)."""
        self._classes = MembershipClasses.of(members)
        self._capacity = capacity
        totals = np.zeros(self._classes.count, dtype=np.int64)
        for location, k in self._classes.class_of.items():
            totals[k] += capacity[location]
        self._coverage = Coverage(totals, self._classes, demand, members)
        self.covered = self._coverage.covered

    def need(self, location: str) -> int:
        """Least units that `location` must give the group reservations (need_l)."""
        k = self._classes.class_of.get(location)
        if k is None:
            return 0
        return max(0, self._capacity[location] - self._coverage.slack(k))

    def headroom(self, group: str) -> int:
        return self._coverage.headroom(group)
