"""Routing reads what every candidate can ship as arrays (Ledger.shippable); here it must equal,
SKU by SKU and location by location, the ATF the ledger reports for each location on its own,
on random overlapping groups with group and location reservations, through a real store."""

from __future__ import annotations

import random
from contextlib import suppress

import pytest

from server.domain import commands
from server.domain.errors import FailedPrecondition
from server.domain.ledger import Ledger
from server.domain.model import (
    Future,
    Location,
    LocationGroup,
    LocationType,
    Place,
    Reservation,
)
from server.domain.port import Store

LOCATIONS = [f"loc-{index:02d}" for index in range(30)]
SKUS = [f"sku-{index}" for index in range(6)]
GROUPS = ("east", "west", "web")


def publish(store: Store, ledger: Ledger, rng: random.Random) -> None:
    """Locations, three overlapping groups, sparse stock (some with safety stock or futures),
    then reservations at groups and at locations, each at most what is available."""
    with store.write(network=True) as uow:
        ledger.upsert_locations(
            uow,
            [
                Location(x, x, LocationType.STORE, 30 + rng.random(), -80 - rng.random())
                for x in LOCATIONS
            ],
        )
        ledger.upsert_groups(
            uow,
            [
                LocationGroup(group, group, tuple(sorted(rng.sample(LOCATIONS, 18))))
                for group in GROUPS
            ],
        )
    levels = [
        commands.StockLevel(
            location_id,
            sku,
            rng.randint(0, 8),
            rng.choice((0, 0, 1, 3)),
            (Future(rng.randint(1, 5), None),) if rng.random() < 0.3 else (),
            None,
        )
        for sku in SKUS
        for location_id in LOCATIONS
        if rng.random() < 0.6
    ]
    with store.write(SKUS) as uow:
        ledger.set_stock(uow, levels)
    places = [Place.group(group) for group in GROUPS] + [Place.location(x) for x in LOCATIONS]
    for index in range(40):
        sku, place = rng.choice(SKUS), rng.choice(places)
        # At groups, all that is left (allow_partial): members must then keep stock for them.
        item = commands.Item(sku, place, rng.randint(1, 6) if place.is_location else 100)
        with suppress(FailedPrecondition), store.write([sku]) as uow:  # none left: no reservation
            ledger.create_reservation(
                uow, commands.CreateReservation(f"r-{index}", "", (item,), allow_partial=True)
            )


def each_location_on_its_own(
    store: Store, ledger: Ledger, location_ids: list[str]
) -> dict[str, dict[str, int]]:
    with store.read() as uow:
        answers = ledger.availability(uow, SKUS, [Place.location(x) for x in location_ids])
    expected: dict[str, dict[str, int]] = {sku: {} for sku in SKUS}
    for answer in answers:
        if answer.available_to_fulfill > 0:
            expected[answer.sku][answer.place.id] = answer.available_to_fulfill
    return expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_what_routing_reads_for_every_candidate_is_each_locations_own_atf(
    store: Store, seed: int
) -> None:
    rng = random.Random(seed)
    ledger = Ledger()
    publish(store, ledger, rng)
    candidates = sorted(rng.sample(LOCATIONS, 25), reverse=True)  # any order, not all
    expected = each_location_on_its_own(store, ledger, candidates)
    with store.read() as uow:
        shippable = ledger.shippable(uow, SKUS, candidates)
    assert {sku: s.by_location(candidates) for sku, s in shippable.items()} == expected
    assert any(expected.values()), "the instance ships nothing: it tests nothing"


def test_what_routing_reads_counts_the_orders_own_group_reservation_as_released(
    store: Store,
) -> None:
    rng = random.Random(4)
    ledger = Ledger()
    publish(store, ledger, rng)
    with store.read() as uow:
        order = next(
            r
            for r in (uow.reservation(f"r-{i}") for i in range(40))
            if r is not None
            and any(line.open and not line.place.is_location for line in r.lines.values())
        )
    with store.read() as uow:
        shippable = ledger.shippable(uow, SKUS, LOCATIONS, releasing=order)
    expected: dict[str, dict[str, int]] = {sku: {} for sku in SKUS}
    for answer in each_location_once_released(store, ledger, order):
        if answer.available_to_fulfill > 0:
            expected[answer.sku][answer.place.id] = answer.available_to_fulfill
    assert {sku: s.by_location(LOCATIONS) for sku, s in shippable.items()} == expected


def each_location_once_released(
    store: Store, ledger: Ledger, order: Reservation
) -> list[commands.Availability]:
    """The definition: release the order's group lines, ask each location, and roll back."""
    try:
        with store.write(SKUS) as uow:
            items = [
                commands.Item(line.sku, line.place, line.open)
                for line in order.lines.values()
                if line.open and not line.place.is_location
            ]
            ledger.release(uow, commands.ReleaseReservation(order.id, tuple(items)))
            raise RollBack(ledger.availability(uow, SKUS, [Place.location(x) for x in LOCATIONS]))
    except RollBack as rolled_back:
        return rolled_back.answers
    raise AssertionError("unreachable")


class RollBack(Exception):
    """Leaves a write unit of work without committing it, with what it read."""

    def __init__(self, answers: list[commands.Availability]) -> None:
        super().__init__("rolled back")
        self.answers = answers
