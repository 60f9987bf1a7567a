"""Per-SKU stock totals, cached across units of work under each SKU's stock token, always equal
the sum of the SKU's records as the reading transaction sees them: after reservations that
publish their own totals, after stock updates that only invalidate, after a write that rolled
back, and after a membership change (both backends)."""

from __future__ import annotations

import pytest

from server.domain import commands
from server.domain.ledger import Ledger
from server.domain.model import Future, Location, LocationGroup, LocationType, Place
from server.domain.port import LoopStore, Store, WouldBlock
from server.domain.totals import StockTotals
from server.sweeper import expire_due
from server.transport.transactions import read_totals

SKU = "sku-1"
LOCATIONS = [f"loc-{i:02d}" for i in range(12)]


def grouped(store: Store, ledger: Ledger) -> None:
    """Two overlapping groups over twelve stocked locations, and a group reservation."""
    with store.write(network=True) as uow:
        ledger.upsert_locations(
            uow, [Location(x, x, LocationType.STORE, 40.0, -74.0) for x in LOCATIONS]
        )
    with store.write(network=True) as uow:
        ledger.upsert_groups(
            uow,
            [
                LocationGroup("west", "west", tuple(LOCATIONS[:8])),
                LocationGroup("east", "east", tuple(LOCATIONS[4:])),
            ],
        )
    with store.write([SKU]) as uow:
        ledger.set_stock(
            uow, [commands.StockLevel(x, SKU, 5 + i, 1, (), None) for i, x in enumerate(LOCATIONS)]
        )
    reserve(store, ledger, Place.group("west"), 9)


def reserve(store: Store, ledger: Ledger, place: Place, units: int) -> str:
    with store.write([SKU]) as uow:
        reservation, _ = ledger.create_reservation(
            uow, commands.CreateReservation("", "", (commands.Item(SKU, place, units),))
        )
    return reservation.id


def assert_totals_are_the_records_sum(store: Store) -> None:
    with store.read() as uow:
        classes = uow.membership_classes()
        cached = uow.stock_totals([SKU])[SKU]
        summed = StockTotals.of(uow.stock([SKU], LOCATIONS)[SKU].values(), classes)
    assert (cached.values == summed.values).all()
    assert (cached.effective_us == summed.effective_us).all()
    assert {k: by_time for k, by_time in cached.futures.items() if by_time} == summed.futures


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def test_reservations_at_locations_publish_totals_equal_to_the_records_sum(store, ledger):
    grouped(store, ledger)
    assert_totals_are_the_records_sum(store)  # summed once, then cached
    reservation_id = reserve(store, ledger, Place.location("loc-05"), 3)
    if isinstance(store, LoopStore):  # published, not summed again: the loop can read them
        with store.read_on_loop() as uow:
            uow.stock_totals([SKU])
    assert_totals_are_the_records_sum(store)
    with store.write([SKU]) as uow:
        ledger.transfer(
            uow,
            commands.TransferReservation(
                reservation_id,
                (commands.TransferItem(SKU, Place.location("loc-05"), Place.group("east"), 2),),
                False,
            ),
        )
    assert_totals_are_the_records_sum(store)
    with store.write([SKU]) as uow:
        ledger.fulfill(
            uow,
            commands.FulfillReservation(
                reservation_id, (commands.Item(SKU, Place.location("loc-05"), 1),)
            ),
        )
    assert_totals_are_the_records_sum(store)


def test_stock_updates_hand_on_totals_equal_to_the_records_sum(store, ledger):
    grouped(store, ledger)
    assert_totals_are_the_records_sum(store)
    with store.write([SKU]) as uow:
        ledger.adjust_stock(uow, [commands.StockAdjustment("loc-07", SKU, 40)])
    if isinstance(store, LoopStore):  # handed on, not summed again: the loop can read them
        with store.read_on_loop() as uow:
            uow.stock_totals([SKU])
    assert_totals_are_the_records_sum(store)
    with store.read() as uow:
        west = ledger.availability(uow, [SKU], [Place.group("west")])[0]
    assert west.on_hand == sum(5 + i for i in range(8)) + 40
    with store.write([SKU]) as uow:
        ledger.set_stock(
            uow,
            [
                commands.StockLevel("loc-02", SKU, 1, 4, (Future(3, 7),), None),
                commands.StockLevel("loc-11", SKU, 0, 0, (), None),
            ],
        )
    assert_totals_are_the_records_sum(store)


def test_a_write_that_rolled_back_leaves_no_totals_behind(store, ledger):
    grouped(store, ledger)

    def reserve_then_fail() -> None:
        with store.write([SKU]) as uow:
            ledger.create_reservation(
                uow,
                commands.CreateReservation(
                    "", "", (commands.Item(SKU, Place.location("loc-01"), 4),)
                ),
            )
            raise RuntimeError("the client went away before the commit")

    with pytest.raises(RuntimeError):
        reserve_then_fail()
    assert_totals_are_the_records_sum(store)
    with store.read() as uow:
        assert ledger.availability(uow, [SKU], [Place.location("loc-01")])[0].reserved == 0


def test_totals_follow_a_change_of_membership(store, ledger):
    grouped(store, ledger)
    assert_totals_are_the_records_sum(store)
    with store.write(network=True) as uow:
        ledger.upsert_groups(uow, [LocationGroup("east", "east", tuple(LOCATIONS[2:]))])
    assert_totals_are_the_records_sum(store)
    with store.read() as uow:
        east = ledger.availability(uow, [SKU], [Place.group("east")])[0]
    assert east.on_hand == sum(5 + i for i in range(2, 12))


def test_a_write_stops_before_summing_a_group_until_a_read_has_summed_it(store, ledger):
    """So no writer holds the write lock (SQLite) or a SKU's lock (PostgreSQL) while a big
    group's stock is summed: Transactions sums it in a read first, then writes."""
    grouped(store, ledger)
    with store.write(network=True) as uow:  # a new network version: no totals are cached
        ledger.upsert_groups(uow, [LocationGroup("east", "east", tuple(LOCATIONS[4:]))])
    at_group = commands.CreateReservation("", "", (commands.Item(SKU, Place.group("east"), 2),))
    with pytest.raises(WouldBlock), store.write([SKU], slow_reads=False) as uow:
        ledger.create_reservation(uow, at_group)
    read_totals(store, [SKU])
    with store.write([SKU], slow_reads=False) as uow:
        reservation, _ = ledger.create_reservation(uow, at_group)
    assert reservation.lines[(SKU, Place.group("east"))].quantity == 2


def test_the_sweeper_expires_a_group_reservation_whose_sums_are_cold(store):
    clock = [1_700_000_000_000_000]
    ledger = Ledger(clock=lambda: clock[0])
    grouped(store, ledger)
    with store.write([SKU]) as uow:
        held, _ = ledger.create_reservation(
            uow,
            commands.CreateReservation(
                "", "", (commands.Item(SKU, Place.group("east"), 4),), ttl_us=1_000_000
            ),
        )
    with store.write(network=True) as uow:  # a new network version: no sums are cached
        ledger.upsert_groups(uow, [LocationGroup("east", "east", tuple(LOCATIONS[4:]))])
    clock[0] += 2_000_000

    assert expire_due(store, ledger) == 1
    with store.read() as uow:
        assert ledger.reservation(uow, held.id).expired
        east = ledger.availability(uow, [SKU], [Place.group("east")])[0]
    assert east.group_reserved == 0
