"""SkuPosition, which solves group coverage over membership classes from per-class totals,
against the definitions of DESIGN.md section 2 (tests/ledger/oracle.py: brute-force max-flow
per location, no classes) on random overlapping networks, before and after reservations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.coverage import MembershipClasses
from server.domain.model import Future, Place, StockRecord
from server.domain.position import SkuPosition
from server.domain.totals import StockTotals
from tests.ledger.oracle import SkuState, Stock

SKU = "sku-1"
REGIONS = ("north", "south", "east")


@st.composite
def networks(draw: st.DrawFn) -> tuple[dict[str, tuple[str, ...]], dict[str, StockRecord]]:
    """Locations in a few regions; groups are unions of regions (so they overlap, and
    locations of one region share a membership class) plus, sometimes, a single store."""
    locations = {f"l{i}": draw(st.sampled_from(REGIONS)) for i in range(draw(st.integers(1, 7)))}
    members: dict[str, tuple[str, ...]] = {}
    for index in range(draw(st.integers(1, 4))):
        regions = draw(st.sets(st.sampled_from(REGIONS), min_size=1))
        chosen = {location for location, region in locations.items() if region in regions}
        if not chosen or draw(st.booleans()):
            chosen.add(draw(st.sampled_from(sorted(locations))))
        members[f"g{index}"] = tuple(sorted(chosen))
    records = {}
    for location in locations:
        if draw(st.integers(0, 4)) == 0:
            continue  # no stock record here
        on_hand = draw(st.integers(0, 6))
        futures = draw(st.lists(st.integers(1, 3), max_size=2))
        records[location] = StockRecord(
            SKU,
            location,
            on_hand=on_hand,
            safety_stock=draw(st.integers(0, 2)),
            futures=tuple(Future(units, None) for units in futures),
            reserved=draw(st.integers(0, on_hand)),
            effective_us=1,
        )
    return members, records


def oracle(members, records, demand) -> SkuState:
    return SkuState(
        members=members,
        stock={
            location: Stock(r.on_hand, r.safety_stock, r.futures_total, r.reserved)
            for location, r in records.items()
        },
        demand=dict(demand),
    )


def assert_matches_definitions(position: SkuPosition, state: SkuState, locations) -> None:
    for location in locations:
        place = Place.location(location)
        assert position.available_to_order(place) == state.location_ato(location), location
        assert position.available_to_fulfill(place) == state.location_atf(location), location
    for group in state.members:
        place = Place.group(group)
        assert position.available_to_order(place) == state.group_ato(group), group
        assert position.available_to_fulfill(place) == state.group_atf(group), group


@settings(max_examples=200, deadline=None)
@given(networks(), st.data())
def test_availability_by_class_matches_the_per_location_definitions(network, data):
    members, records = network
    demand = {
        group: data.draw(st.integers(0, 6), label=f"demand {group}")
        for group in members
        if data.draw(st.booleans(), label=f"holds {group}")
    }
    position = SkuPosition.of_records(SKU, records, demand, members)
    locations = sorted({location for group in members.values() for location in group})
    assert_matches_definitions(position, oracle(members, records, demand), locations)


@settings(max_examples=150, deadline=None)
@given(networks(), st.data())
def test_reservations_keep_class_totals_in_step_with_the_records(network, data):
    """Holding at locations and groups and shipping change the per-class totals in place;
    every answer after that is still the definition's over the changed records."""
    members, records = network
    position = SkuPosition.of_records(SKU, records, {}, members)
    locations = sorted({location for group in members.values() for location in group})
    for _ in range(data.draw(st.integers(1, 5), label="steps")):
        if data.draw(st.booleans(), label="at a group"):
            group = data.draw(st.sampled_from(sorted(members)), label="group")
            units = min(2, position.available_to_order(Place.group(group)))
            if units:
                position.hold(Place.group(group), units)
        else:
            location = data.draw(st.sampled_from(locations), label="location")
            place = Place.location(location)
            if data.draw(st.booleans(), label="ship") and position.record(location).reserved:
                shipped = min(position.record(location).reserved, position.record(location).on_hand)
                if shipped:
                    position.ship(location, shipped)
            elif units := min(2, position.available_to_order(place)):
                position.hold(place, units)
    changed = {location: position.record(location) for location in locations}
    state = oracle(members, changed, position.group_reserved)
    assert_matches_definitions(position, state, locations)
    if position.changed_totals is not None:  # what storage keeps for the next transaction
        summed = StockTotals.of(changed.values(), MembershipClasses.of(members))
        assert (position.changed_totals.values == summed.values).all()
