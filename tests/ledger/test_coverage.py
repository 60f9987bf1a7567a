"""server/domain/coverage.py against brute force: `covered`, `need(location)` and
`headroom(group)` on random small instances, and a few cases worked by hand.

The oracles here do not use max-flow at all for `covered` and `need`: they enumerate every
integer assignment of group demand to member locations (tiny instances), so they follow the
definitions literally. `headroom` is checked by brute-force cut enumeration (tests/ledger/oracle).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.coverage import LocationCoverage
from tests.ledger.oracle import max_flow

Members = Mapping[str, tuple[str, ...]]


def _splits(total: int, slots: tuple[str, ...], room: dict[str, int]) -> Iterator[dict[str, int]]:
    """Every way to give at most `total` units to `slots`, each slot at most its room."""
    if not slots:
        yield {}
        return
    first, rest = slots[0], slots[1:]
    for units in range(min(total, room[first]) + 1):
        for tail in _splits(total - units, rest, room):
            yield {first: units, **tail}


def assignments(
    capacity: Mapping[str, int], demand: Mapping[str, int], members: Members
) -> Iterator[dict[str, int]]:
    """Per-location load of every feasible (not necessarily maximal) assignment."""
    groups = [group for group in members if demand.get(group, 0)]

    def walk(index: int, room: dict[str, int]) -> Iterator[dict[str, int]]:
        if index == len(groups):
            yield {location: capacity[location] - room[location] for location in capacity}
            return
        group = groups[index]
        for split in _splits(demand[group], members[group], room):
            after = dict(room)
            for location, units in split.items():
                after[location] -= units
            yield from walk(index + 1, after)

    yield from walk(0, dict(capacity))


def enumerated(
    capacity: Mapping[str, int], demand: Mapping[str, int], members: Members
) -> tuple[int, dict[str, int]]:
    """(max total assigned, least load of each location over the maximum assignments)."""
    best, least = -1, {}
    for load in assignments(capacity, demand, members):
        total = sum(load.values())
        if total > best:
            best, least = total, dict(load)
        elif total == best:
            least = {location: min(least[location], load[location]) for location in load}
    return best, least


def cut_flow(capacity: Mapping[str, int], demand: Mapping[str, int], members: Members) -> int:
    return max_flow(capacity, [(demand.get(group, 0), members[group]) for group in members])


@st.composite
def instances(draw: st.DrawFn) -> tuple[dict[str, int], dict[str, int], dict[str, tuple]]:
    locations = [f"l{index}" for index in range(draw(st.integers(1, 4)))]
    capacity = {location: draw(st.integers(0, 4)) for location in locations}
    members = {}
    for index in range(draw(st.integers(1, 3))):
        chosen = draw(st.lists(st.sampled_from(locations), min_size=1, max_size=3, unique=True))
        members[f"g{index}"] = tuple(sorted(chosen))
    demand = {group: draw(st.integers(0, 4)) for group in members if draw(st.booleans())}
    return capacity, demand, members


@settings(max_examples=150, deadline=None)
@given(instances())
def test_covered_is_the_largest_assignable_demand(instance):
    capacity, demand, members = instance
    network = LocationCoverage(capacity, demand, members)
    best, _ = enumerated(capacity, demand, members)
    assert network.covered == best == cut_flow(capacity, demand, members)


@settings(max_examples=150, deadline=None)
@given(instances())
def test_need_is_the_least_load_of_the_location_in_every_maximum_assignment(instance):
    capacity, demand, members = instance
    network = LocationCoverage(capacity, demand, members)
    _, least = enumerated(capacity, demand, members)
    for location in capacity:
        assert network.need(location) == least[location], location
    assert network.need("not-a-member") == 0


@settings(max_examples=150, deadline=None)
@given(instances())
def test_headroom_is_the_largest_extra_group_demand_still_fully_covered(instance):
    capacity, demand, members = instance
    network = LocationCoverage(capacity, demand, members)
    covered = cut_flow(capacity, demand, members)
    for group in members:
        ceiling = sum(capacity[location] for location in members[group])
        fitting = [
            extra
            for extra in range(ceiling + 1)
            if cut_flow(capacity, {**demand, group: demand.get(group, 0) + extra}, members)
            == covered + extra
        ]
        assert network.headroom(group) == max(fitting), group
        # Asking does not disturb the network: the next answers are the same.
        assert network.covered == covered


@settings(max_examples=60, deadline=None)
@given(instances(), st.data())
def test_queries_in_any_order_give_the_same_answers(instance, data):
    capacity, demand, members = instance
    reference = LocationCoverage(capacity, demand, members)
    expected = {("need", loc): reference.need(loc) for loc in capacity} | {
        ("headroom", group): reference.headroom(group) for group in members
    }
    queries = data.draw(st.permutations(sorted(expected)))
    network = LocationCoverage(capacity, demand, members)
    for kind, name in queries:
        answer = network.need(name) if kind == "need" else network.headroom(name)
        assert answer == expected[(kind, name)], (kind, name)


def test_overlapping_groups_share_a_location_only_once():
    # A=2, B=4, C=2; grp-ab={A,B} holds 5, grp-bc={B,C} holds nothing yet.
    # grp-ab takes A's 2 and 3 of B's 4, so B has 1 left: grp-bc can still take 1 + C's 2 = 3,
    # not B + C = 6 as a check of grp-bc on its own would promise.
    capacity = {"A": 2, "B": 4, "C": 2}
    members = {"grp-ab": ("A", "B"), "grp-bc": ("B", "C")}
    network = LocationCoverage(capacity, {"grp-ab": 5}, members)
    assert network.covered == 5
    assert network.headroom("grp-bc") == 3
    # grp-ab itself can take the last 1 of B (A is full) and nothing of C.
    assert network.headroom("grp-ab") == 1
    # Without A, grp-ab gets only B's 4, so A must give 5 - 4 = 1 in every assignment;
    # without B it gets only A's 2, so B must give 5 - 2 = 3; C is not needed at all.
    assert (network.need("A"), network.need("B"), network.need("C")) == (1, 3, 0)
    # So a location-level reservation could take A: 2 - 1 = 1, B: 4 - 3 = 1, C: 2 - 0 = 2.


def test_a_location_shared_by_two_groups_must_serve_the_one_with_no_alternative():
    # grp-b={B} holds 3 and can only be served by B (capacity 4); grp-ab={A,B} holds 4, A=3.
    # Every maximum assignment sends grp-b's 3 to B, so grp-ab gets A's 3 and B's last 1:
    # covered 7, need(B) = 7 - F(B=0) = 7 - 3 = 4, need(A) = 7 - F(A=0) = 7 - 4 = 3.
    capacity = {"A": 3, "B": 4}
    members = {"grp-ab": ("A", "B"), "grp-b": ("B",)}
    network = LocationCoverage(capacity, {"grp-ab": 4, "grp-b": 3}, members)
    assert network.covered == 7
    assert (network.need("A"), network.need("B")) == (3, 4)
    assert (network.headroom("grp-ab"), network.headroom("grp-b")) == (0, 0)


def test_demand_beyond_member_capacity_is_only_partly_covered():
    # Stock fell below what grp-a={A} promised (6 held, A can give 4): covered 4, so every unit
    # of A is needed (need 4) and the group has no headroom; a disjoint group is unaffected.
    capacity = {"A": 4, "Z": 2}
    members = {"grp-a": ("A",), "grp-z": ("Z",)}
    network = LocationCoverage(capacity, {"grp-a": 6}, members)
    assert network.covered == 4
    assert network.need("A") == 4
    assert network.headroom("grp-a") == 0
    assert network.headroom("grp-z") == 2
    assert network.need("Z") == 0


def test_a_group_with_no_demand_has_its_members_whole_capacity_as_headroom():
    network = LocationCoverage({"A": 3, "B": 0}, {}, {"grp-ab": ("A", "B")})
    assert network.covered == 0
    assert network.headroom("grp-ab") == 3
    assert network.need("A") == 0
