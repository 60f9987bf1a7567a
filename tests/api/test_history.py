"""Stock movements through the real server on both backends: every change is there with its
cause, and summing the deltas from zero rebuilds on hand and reserved exactly."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc
from omniroute.inventory.v1 import reservation_pb2 as res

from server.app import start_server
from tests.api.helpers import (
    fulfill_item,
    group,
    list_all,
    refused,
    release_item,
    transfer_item,
)
from tests.support import at, at_group, availability, item, level, location, wait_until

pytestmark = pytest.mark.timeout(300)
LOCATIONS = ("loc-a", "loc-b", "loc-c")
SKUS = ("sku-1", "sku-2")
Kind = inv.StockMovementKind


def movements(inventory: Any, **filters: Any) -> list[inv.StockMovement]:
    return list_all(
        inventory.ListStockMovements,
        inv.ListStockMovementsRequest(page_size=7, **filters),
        "movements",
    )


def network(inventory: Any) -> None:
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location(loc) for loc in LOCATIONS])
    )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(location_groups=[group("grp", "loc-a", "loc-b")])
    )


def test_each_change_is_recorded_with_its_cause(inventory: Any, reservations: Any) -> None:
    network(inventory)
    inventory.SetStock(
        inv.SetStockRequest(levels=[level("loc-a", "sku-1", 10, safety_stock=1)], request_id="s1")
    )
    inventory.AdjustStock(
        inv.AdjustStockRequest(
            adjustments=[
                inv.StockAdjustment(
                    location_id="loc-a", sku="sku-1", on_hand_delta=-3, reason="shrink: damaged"
                )
            ]
        )
    )
    reservations.CreateReservation(
        res.CreateReservationRequest(
            reservation_id="r-1",
            request_id="c1",
            items=[item("sku-1", at_group("grp"), 4)],
        )
    )
    reservations.TransferReservation(
        res.TransferReservationRequest(
            reservation_id="r-1", items=[transfer_item("sku-1", at_group("grp"), at("loc-a"), 3)]
        )
    )
    reservations.FulfillReservation(
        res.FulfillReservationRequest(
            reservation_id="r-1", items=[fulfill_item("sku-1", at("loc-a"), 2)]
        )
    )
    reservations.ReleaseReservation(
        res.ReleaseReservationRequest(reservation_id="r-1", release_all=True)
    )
    found = movements(inventory, sku="sku-1")
    seen = [
        (m.kind, m.place.location_id or m.place.location_group_id, m.on_hand_delta) for m in found
    ]
    assert seen == [
        (Kind.STOCK_MOVEMENT_KIND_STOCK_SET, "loc-a", 10),
        (Kind.STOCK_MOVEMENT_KIND_STOCK_ADJUSTED, "loc-a", -3),
        (Kind.STOCK_MOVEMENT_KIND_RESERVED, "grp", 0),
        (Kind.STOCK_MOVEMENT_KIND_TRANSFERRED, "loc-a", 0),
        (Kind.STOCK_MOVEMENT_KIND_TRANSFERRED, "grp", 0),
        (Kind.STOCK_MOVEMENT_KIND_FULFILLED, "loc-a", -2),
        (Kind.STOCK_MOVEMENT_KIND_RELEASED, "loc-a", 0),
        (Kind.STOCK_MOVEMENT_KIND_RELEASED, "grp", 0),
    ]
    set_, adjusted, reserved, into, out_of, fulfilled, released, released_group = found
    assert (set_.rpc, set_.request_id, set_.safety_stock, set_.on_hand) == (
        "SetStock",
        "s1",
        1,
        10,
    )
    assert (adjusted.reason, adjusted.on_hand) == ("shrink: damaged", 7)
    assert (reserved.reserved_delta, reserved.reserved, reserved.request_id) == (4, 4, "c1")
    assert reserved.reservation_id == "r-1"
    assert reserved.rpc == "CreateReservation"
    assert (into.reserved_delta, out_of.reserved_delta) == (3, -3)
    assert (fulfilled.reserved_delta, fulfilled.on_hand, fulfilled.reserved) == (-2, 5, 1)
    assert (released.reserved_delta, released_group.reserved_delta) == (-1, -1)
    assert all(m.api_key_id == "" for m in found)  # auth is off
    times = [m.time.ToMicroseconds() for m in found]
    assert times == sorted(times)
    assert [m.sequence for m in found] == sorted(m.sequence for m in found)

    places = movements(inventory, place=at_group("grp"))
    assert {m.kind for m in places} == {
        Kind.STOCK_MOVEMENT_KIND_LOCATION_GROUP_CHANGED,
        Kind.STOCK_MOVEMENT_KIND_RESERVED,
        Kind.STOCK_MOVEMENT_KIND_TRANSFERRED,
        Kind.STOCK_MOVEMENT_KIND_RELEASED,
    }
    changed = movements(inventory, place=at("loc-c"))
    assert [(m.kind, m.sku) for m in changed] == [(Kind.STOCK_MOVEMENT_KIND_LOCATION_CHANGED, "")]


def test_expiry_is_recorded_as_the_servers_own(inventory: Any, reservations: Any) -> None:
    network(inventory)
    inventory.SetStock(inv.SetStockRequest(levels=[level("loc-b", "sku-2", 5)]))
    reservations.CreateReservation(
        res.CreateReservationRequest(
            reservation_id="r-ttl",
            items=[item("sku-2", at("loc-b"), 2)],
            ttl=duration_pb2.Duration(nanos=200_000_000),
        )
    )

    def expired() -> list[inv.StockMovement]:
        return [
            m
            for m in movements(inventory, sku="sku-2")
            if m.kind == Kind.STOCK_MOVEMENT_KIND_EXPIRED
        ]

    assert wait_until(lambda: bool(expired()))
    (movement,) = expired()
    assert (movement.rpc, movement.reservation_id, movement.reserved_delta) == ("", "r-ttl", -2)


def test_unchanged_levels_and_stale_levels_record_nothing(inventory: Any) -> None:
    network(inventory)
    sent = level("loc-a", "sku-1", 4, effective_time={"seconds": 1_000})
    inventory.SetStock(inv.SetStockRequest(levels=[sent]))
    inventory.SetStock(inv.SetStockRequest(levels=[sent]))
    stale = level("loc-a", "sku-1", 9, effective_time={"seconds": 10})
    inventory.SetStock(inv.SetStockRequest(levels=[stale]))
    assert [m.on_hand for m in movements(inventory, sku="sku-1")] == [4]


def test_time_range_and_paging(inventory: Any) -> None:
    network(inventory)
    for on_hand in range(1, 6):
        inventory.SetStock(inv.SetStockRequest(levels=[level("loc-a", "sku-1", on_hand)]))
    every = movements(inventory, sku="sku-1")
    assert [m.on_hand for m in every] == [1, 2, 3, 4, 5]
    middle = movements(
        inventory,
        sku="sku-1",
        start_time=every[1].time,
        end_time=every[4].time,
    )
    assert [m.on_hand for m in middle] == [2, 3, 4]
    first = inventory.ListStockMovements(inv.ListStockMovementsRequest(sku="sku-1", page_size=2))
    assert len(first.movements) == 2
    assert first.next_page_token


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_token": "not-a-token!"}, "page_token"),
        ({"page_token": "YWJj"}, "page_token"),  # a token, but not of this list
        ({"page_size": -1}, "page_size"),
        ({"sku": " padded "}, "sku"),
        ({"start_time": {"seconds": 20}, "end_time": {"seconds": 10}}, "end_time"),
    ],
)
def test_bad_requests_are_refused(inventory: Any, request_fields: Any, field: str) -> None:
    failure = refused(inventory.ListStockMovements, inv.ListStockMovementsRequest(**request_fields))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in failure.fields


def test_movements_rebuild_stock_from_zero(inventory: Any, reservations: Any) -> None:
    """A seeded random mix of every stock and reservation change; summing each record's deltas
    from zero gives GetAvailability's on hand and reserved, and each group's reserved."""
    network(inventory)
    rng = random.Random(16)
    open_ids: list[str] = []
    for step in range(150):
        sku = rng.choice(SKUS)
        loc = rng.choice(LOCATIONS)
        action = rng.random()
        try:
            if action < 0.25:
                inventory.SetStock(
                    inv.SetStockRequest(levels=[level(loc, sku, rng.randint(0, 30))])
                )
            elif action < 0.4:
                inventory.AdjustStock(
                    inv.AdjustStockRequest(
                        adjustments=[
                            inv.StockAdjustment(
                                location_id=loc, sku=sku, on_hand_delta=rng.choice([-7, -1, 4, 9])
                            )
                        ]
                    )
                )
            elif action < 0.65:
                place = at_group("grp") if rng.random() < 0.4 else at(loc)
                reservations.CreateReservation(
                    res.CreateReservationRequest(
                        reservation_id=f"r-{step}",
                        items=[item(sku, place, rng.randint(1, 4))],
                        allow_partial=True,
                    )
                )
                open_ids.append(f"r-{step}")
            elif open_ids:
                reservation = reservations.GetReservation(
                    res.GetReservationRequest(reservation_id=rng.choice(open_ids))
                ).reservation
                line = next((line for line in reservation.lines if line.open), None)
                if line is None:
                    continue
                if line.place.location_group_id:
                    reservations.TransferReservation(
                        res.TransferReservationRequest(
                            reservation_id=reservation.id,
                            items=[transfer_item(line.sku, line.place, at("loc-a"), 1)],
                        )
                    )
                elif action < 0.85:
                    reservations.FulfillReservation(
                        res.FulfillReservationRequest(
                            reservation_id=reservation.id,
                            items=[fulfill_item(line.sku, line.place, 1)],
                        )
                    )
                else:
                    reservations.ReleaseReservation(
                        res.ReleaseReservationRequest(
                            reservation_id=reservation.id,
                            items=[release_item(line.sku, line.place, line.open)],
                        )
                    )
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    on_hand: Counter[tuple[str, str]] = Counter()
    reserved: Counter[tuple[str, str]] = Counter()
    for movement in movements(inventory):
        where = movement.place.location_id or movement.place.location_group_id
        on_hand[where, movement.sku] += movement.on_hand_delta
        reserved[where, movement.sku] += movement.reserved_delta
    records = availability(inventory, list(SKUS), list(LOCATIONS), ["grp"])
    assert sum(on_hand.values()) > 0
    assert sum(reserved.values()) > 0
    for (where, sku), record in records.items():
        if where == "grp":
            assert reserved[where, sku] == record.group_reserved, (where, sku)
        else:
            assert (on_hand[where, sku], reserved[where, sku]) == (
                record.on_hand,
                record.reserved,
            ), (where, sku)


def test_retention_prunes_old_movements(store: Any) -> None:
    """A server keeping movements for 0.3 s forgets them soon after; new ones are recorded."""
    running = start_server("localhost:0", store, sweep_interval_s=0.05, history_retention_s=0.3)
    try:
        with grpc.insecure_channel(f"localhost:{running.port}") as channel:
            stub = inventory_pb2_grpc.InventoryServiceStub(channel)
            network(stub)
            stub.SetStock(inv.SetStockRequest(levels=[level("loc-a", "sku-1", 3)]))
            assert movements(stub, sku="sku-1")
            time.sleep(0.3)
            assert wait_until(lambda: not movements(stub))
            stub.SetStock(inv.SetStockRequest(levels=[level("loc-a", "sku-1", 4)]))
            assert [m.on_hand_delta for m in movements(stub, sku="sku-1")] == [1]
    finally:
        running.stop(grace_s=1)
