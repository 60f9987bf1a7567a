"""The quantities of DESIGN.md section 2 at the domain level (no server, no gRPC): StockRecord
and SkuPosition formulas, and the stock rules of the Ledger (effective-time skip, adjust floor)
on a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
    StockRecord,
)
from server.domain.position import SkuPosition
from server.storage.sqlite import SqliteStore

SKU = "sku-1"
NOW = 1_700_000_000_000_000
SECOND = 1_000_000


def record(location: str, on_hand: int, safety: int = 0, futures=(), reserved: int = 0):
    return StockRecord(
        SKU,
        location,
        on_hand=on_hand,
        safety_stock=safety,
        futures=tuple(Future(quantity, None) for quantity in futures),
        reserved=reserved,
        effective_us=NOW,
    )


def position(*records: StockRecord, demand=None, members=None) -> SkuPosition:
    return SkuPosition.of_records(
        SKU, {r.location_id: r for r in records}, dict(demand or {}), dict(members or {})
    )


A, B, C = Place.location("A"), Place.location("B"), Place.location("C")


# --- formulas ----------------------------------------------------------------------------


def test_oci_example_on_hand_10_futures_2_safety_1_reserved_5_gives_atf_4_and_ato_6():
    stock = record("A", 10, safety=1, futures=(2,), reserved=5)
    assert (stock.free_to_fulfill, stock.free_to_order) == (4, 6)
    assert position(stock).available_to_fulfill(A) == 4
    assert position(stock).available_to_order(A) == 6


def test_safety_stock_above_on_hand_shows_zero_available_not_a_negative_number():
    # 3 on hand, 5 held back: the raw formula says -2; what is reported is clamped at 0.
    stock = record("A", 3, safety=5)
    assert stock.free_to_fulfill == -2
    assert position(stock).available_to_fulfill(A) == 0
    assert position(stock).available_to_order(A) == 0


def test_futures_count_towards_ato_only_never_towards_atf():
    # Nothing on hand, 7 expected: a backorder can be reserved (ATO 7), nothing can ship.
    stock = record("A", 0, futures=(3, 4))
    assert position(stock).available_to_order(A) == 7
    assert position(stock).available_to_fulfill(A) == 0


def test_futures_cover_safety_stock_before_they_become_orderable():
    # on hand 2, safety 5, futures 4: ATO = max(0, 2 + 4 - 0 - 5) = 1; ATF = max(0, 2 - 5) = 0.
    stock = record("A", 2, safety=5, futures=(4,))
    assert position(stock).available_to_order(A) == 1
    assert position(stock).available_to_fulfill(A) == 0


def test_a_location_without_a_stock_record_has_nothing_available():
    assert position().available_to_order(A) == 0
    assert position().available_to_fulfill(A) == 0
    assert not position().record("A").exists


def test_group_reservations_lower_what_a_member_location_can_still_take():
    # grp-ab={A,B} holds 8; A=5, B=5 on hand. The group needs 3 from each location at least
    # (8 - 5 from the other one), so A and B each report 5 - 3 = 2; C, outside, keeps its 4.
    members = {"grp-ab": ("A", "B")}
    stock = position(
        record("A", 5), record("B", 5), record("C", 4), demand={"grp-ab": 8}, members=members
    )
    assert [stock.available_to_order(p) for p in (A, B, C)] == [2, 2, 4]
    assert [stock.available_to_fulfill(p) for p in (A, B, C)] == [2, 2, 4]
    assert stock.available_to_order(Place.group("grp-ab")) == 2


def test_overlapping_groups_do_not_promise_a_shared_location_twice():
    # grp-ab={A,B} holds 6, A=4, B=4: it needs 2 of B. grp-bc={B,C} with C=1 can then take only
    # B's other 2 and C's 1 = 3, not B + C = 5.
    members = {"grp-ab": ("A", "B"), "grp-bc": ("B", "C")}
    stock = position(
        record("A", 4), record("B", 4), record("C", 1), demand={"grp-ab": 6}, members=members
    )
    assert stock.available_to_order(Place.group("grp-bc")) == 3
    assert stock.available_to_order(Place.group("grp-ab")) == 2


def test_group_atf_counts_only_what_members_can_ship_from_stock_on_hand():
    # grp-ab={A,B}: A has 4 on hand, B has 0 on hand and 6 futures. ATO 10, ATF 4.
    members = {"grp-ab": ("A", "B")}
    stock = position(record("A", 4), record("B", 0, futures=(6,)), members=members)
    assert stock.available_to_order(Place.group("grp-ab")) == 10
    assert stock.available_to_fulfill(Place.group("grp-ab")) == 4


def test_a_group_reservation_held_against_futures_takes_no_stock_on_hand_from_another_group():
    # grp-b={B} holds 5 against B's futures (B: nothing on hand); grp-a={A} has 10 on hand.
    # grp-a can ship all 10, whether or not grp-b is part of the position being asked.
    members = {"grp-a": ("A",), "grp-b": ("B",)}
    alone = position(record("A", 10), members={"grp-a": ("A",)})
    together = position(
        record("A", 10), record("B", 0, futures=(5,)), demand={"grp-b": 5}, members=members
    )
    assert alone.available_to_fulfill(Place.group("grp-a")) == 10
    assert together.available_to_fulfill(Place.group("grp-a")) == 10
    assert together.available_to_fulfill(Place.group("grp-b")) == 0


# --- stock rules through the ledger ------------------------------------------------------


@pytest.fixture
def ledger_store(tmp_path: Path) -> Iterator[tuple[Ledger, SqliteStore]]:
    store = SqliteStore(tmp_path / "quantities.sqlite3", synchronous="NORMAL")
    ledger = Ledger(clock=lambda: NOW)
    with store.write(network=True) as uow:
        ledger.upsert_locations(
            uow, [Location(x, x, LocationType.WAREHOUSE, 40.0, -75.0) for x in ("A", "B")]
        )
        ledger.upsert_groups(uow, [LocationGroup("grp-ab", "grp-ab", ("A", "B"))])
    yield ledger, store
    store.close()


def set_level(ledger, store, on_hand, *, effective=None, safety=0, futures=()):
    level = commands.StockLevel(
        "A", SKU, on_hand, safety, tuple(Future(q, None) for q in futures), effective
    )
    with store.write([SKU]) as uow:
        return ledger.set_stock(uow, [level])[0]


def adjust(ledger, store, delta, location="A"):
    with store.write([SKU]) as uow:
        return ledger.adjust_stock(uow, [commands.StockAdjustment(location, SKU, delta)])[0]


def reserve(ledger, store, quantity, place=A):
    command = commands.CreateReservation(
        "", "", (commands.Item(SKU, place, quantity),), allow_partial=False
    )
    with store.write([SKU]) as uow:
        return ledger.create_reservation(uow, command)[0]


def available(ledger, store, place=A):
    with store.read() as uow:
        return ledger.availability(uow, [SKU], [place])[0]


def test_stock_update_older_than_the_stored_one_is_skipped_reported_and_not_applied(ledger_store):
    ledger, store = ledger_store
    set_level(ledger, store, 10, effective=NOW)
    result = set_level(ledger, store, 3, effective=NOW - SECOND)
    assert not result.applied
    assert result.stored_effective_us == NOW
    assert available(ledger, store).on_hand == 10


def test_stock_update_with_the_same_effective_time_is_applied(ledger_store):
    ledger, store = ledger_store
    set_level(ledger, store, 10, effective=NOW)
    result = set_level(ledger, store, 3, effective=NOW)
    assert result.applied
    assert available(ledger, store).on_hand == 3


def test_stock_update_without_effective_time_counts_as_now(ledger_store):
    ledger, store = ledger_store
    set_level(ledger, store, 10, effective=NOW + SECOND)  # a back office clock ahead of ours
    result = set_level(ledger, store, 3)  # "now" is older than the stored level: skipped
    assert (result.applied, result.stored_effective_us) == (False, NOW + SECOND)
    assert available(ledger, store).on_hand == 10


def test_setting_stock_keeps_what_is_reserved(ledger_store):
    ledger, store = ledger_store
    set_level(ledger, store, 10, effective=NOW)
    reserve(ledger, store, 4)
    set_level(ledger, store, 6, effective=NOW + SECOND)
    quantities = available(ledger, store)
    assert (quantities.on_hand, quantities.reserved, quantities.available_to_order) == (6, 4, 2)


def test_adjust_floors_on_hand_at_zero_and_reports_the_delta_actually_applied(ledger_store):
    ledger, store = ledger_store
    set_level(ledger, store, 5, effective=NOW)
    result = adjust(ledger, store, -8)
    assert (result.on_hand, result.applied_delta) == (0, -5)
    result = adjust(ledger, store, 3)
    assert (result.on_hand, result.applied_delta) == (3, 3)


def test_a_record_first_created_by_an_adjustment_is_replaced_by_any_absolute_level(ledger_store):
    ledger, store = ledger_store
    assert adjust(ledger, store, 7).on_hand == 7
    # The receipt created the record with effective time 0, so even a level from 1970 applies.
    assert set_level(ledger, store, 2, effective=1).applied
    assert available(ledger, store).on_hand == 2


def test_adjust_keeps_the_effective_time_of_the_last_absolute_level(ledger_store):
    ledger, store = ledger_store
    set_level(ledger, store, 5, effective=NOW)
    adjust(ledger, store, 2)
    assert available(ledger, store).effective_us == NOW
    assert not set_level(ledger, store, 1, effective=NOW - 1).applied


def test_shrink_below_reserved_shows_zero_available_and_keeps_the_reservation(ledger_store):
    ledger, store = ledger_store
    set_level(ledger, store, 10, effective=NOW)
    reservation = reserve(ledger, store, 6)
    adjust(ledger, store, -7)  # on hand 3, reserved 6: oversold by 3
    quantities = available(ledger, store)
    assert (quantities.on_hand, quantities.reserved) == (3, 6)
    assert (quantities.available_to_fulfill, quantities.available_to_order) == (0, 0)
    with store.read() as uow:
        kept = ledger.reservation(uow, reservation.id)
    assert [line.open for line in kept.sorted_lines()] == [6]


def test_shrink_below_a_group_reservation_reports_nothing_available_at_group_or_members(
    ledger_store,
):
    ledger, store = ledger_store
    set_level(ledger, store, 8, effective=NOW)
    reserve(ledger, store, 8, Place.group("grp-ab"))
    adjust(ledger, store, -5)  # the group's 8 now has only A's 3 behind it
    group = available(ledger, store, Place.group("grp-ab"))
    assert (group.on_hand, group.reserved, group.group_reserved) == (3, 8, 8)
    assert (group.available_to_fulfill, group.available_to_order) == (0, 0)
    assert available(ledger, store).available_to_order == 0
    with pytest.raises(FailedPrecondition) as refused:
        reserve(ledger, store, 1)
    assert refused.value.reason == "INSUFFICIENT_STOCK"


def test_a_receipt_after_a_shrink_makes_stock_available_again_only_beyond_the_reserved(
    ledger_store,
):
    ledger, store = ledger_store
    set_level(ledger, store, 10, effective=NOW)
    reserve(ledger, store, 6)
    adjust(ledger, store, -7)  # on hand 3, reserved 6
    adjust(ledger, store, 5)  # on hand 8: 2 free
    quantities = available(ledger, store)
    assert (quantities.available_to_fulfill, quantities.available_to_order) == (2, 2)
