"""UpdateReservation and the Batch*Reservations calls through the real server, on each backend:
a cart that changes, and many reservations per call with a result per request (issue 16)."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.api.conftest import World
from tests.api.helpers import (
    all_reservations,
    fulfill_item,
    open_by_place,
    refused,
    release_item,
    transfer_item,
)
from tests.api.test_concurrency import race
from tests.support import at, at_group, availability, item, level

pytestmark = pytest.mark.timeout(120)


def target(sku: str, place: inv.Place, open_quantity: int) -> res.UpdateItem:
    return res.UpdateItem(sku=sku, place=place, open_quantity=open_quantity)


def lines_of(reservation: Any) -> dict[tuple[str, str], int]:
    """Open quantity per (sku, place id) of a reservation's lines."""
    return {
        (line.sku, line.place.location_id or line.place.location_group_id): line.open
        for line in reservation.lines
    }


def error_of(status: status_pb2.Status) -> tuple[int, str, dict[str, str]]:
    """(code, ErrorInfo reason, metadata) of one request's failure in a batch."""
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert info.domain == "omniroute"
    return status.code, info.reason, dict(info.metadata)


def create(reservation_id: str, *items: res.ReservationItem) -> res.CreateReservationRequest:
    return res.CreateReservationRequest(reservation_id=reservation_id, items=list(items))


# --- UpdateReservation ---------------------------------------------------------------------


def test_update_raises_lowers_adds_and_releases_lines(world: World):
    updated = world.reservations.UpdateReservation(
        res.UpdateReservationRequest(
            reservation_id="r-1",
            items=[
                target("sku-1", at("wh-1"), 5),
                target("sku-1", at_group("g-1"), 0),
                target("sku-1", at("st-1"), 1),
            ],
        )
    ).reservation
    assert lines_of(updated) == {
        ("sku-1", "wh-1"): 5,
        ("sku-1", "g-1"): 0,
        ("sku-1", "st-1"): 1,
    }
    group_line = next(line for line in updated.lines if line.place.location_group_id == "g-1")
    assert (group_line.quantity, group_line.released) == (2, 2)
    records = availability(world.inventory, ["sku-1"], ["wh-1", "st-1"], ["g-1"])
    assert records["wh-1", "sku-1"].reserved == 5
    assert records["st-1", "sku-1"].reserved == 1
    assert records["g-1", "sku-1"].group_reserved == 0


def test_update_that_cannot_get_its_stock_fails_whole_and_changes_nothing(world: World):
    before = world.snapshot()
    failure = refused(
        world.reservations.UpdateReservation,
        res.UpdateReservationRequest(
            reservation_id="r-1",
            items=[target("sku-1", at_group("g-1"), 0), target("sku-1", at("st-1"), 3)],
        ),
    )
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_STOCK",
    )
    assert failure.metadata["requested"] == "3"
    assert failure.metadata["available"] == "2"
    assert world.snapshot() == before


def test_units_an_update_releases_can_be_reserved_elsewhere_in_the_same_update(world: World):
    # wh-1 has 10 on hand: 3 held by r-1 at wh-1, and g-1's 2 need cover from wh-1 or wh-2.
    world.reservations.CreateReservation(create("r-2", item("sku-1", at("wh-2"), 5)))
    # g-1 now needs wh-1: 10 - 3 - 2 = 5 free at wh-1; moving r-1's 2 from g-1 to wh-1 fits
    # only because the group's units are let go first.
    updated = world.reservations.UpdateReservation(
        res.UpdateReservationRequest(
            reservation_id="r-1",
            items=[target("sku-1", at_group("g-1"), 0), target("sku-1", at("wh-1"), 10)],
        )
    ).reservation
    assert lines_of(updated)[("sku-1", "wh-1")] == 10


def test_update_extends_and_clears_the_ttl(world: World):
    with_ttl = world.reservations.UpdateReservation(
        res.UpdateReservationRequest(reservation_id="r-1", ttl=Duration(seconds=3600))
    ).reservation
    assert with_ttl.HasField("expire_time")
    assert 3590 <= with_ttl.expire_time.seconds - with_ttl.update_time.seconds <= 3600
    cleared = world.reservations.UpdateReservation(
        res.UpdateReservationRequest(reservation_id="r-1", clear_ttl=True)
    ).reservation
    assert not cleared.HasField("expire_time")
    got = world.reservations.GetReservation(res.GetReservationRequest(reservation_id="r-1"))
    assert not got.reservation.HasField("expire_time")


def test_update_of_a_closed_reservation_is_refused(world: World):
    world.reservations.ReleaseReservation(
        res.ReleaseReservationRequest(reservation_id="r-1", release_all=True)
    )
    failure = refused(
        world.reservations.UpdateReservation,
        res.UpdateReservationRequest(reservation_id="r-1", items=[target("sku-1", at("wh-1"), 1)]),
    )
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "RESERVATION_CLOSED",
    )


def test_update_retried_with_its_request_id_returns_the_first_response(world: World):
    request = res.UpdateReservationRequest(
        reservation_id="r-1", items=[target("sku-1", at("wh-1"), 4)], request_id="up-1"
    )
    first = world.reservations.UpdateReservation(request)
    before = world.snapshot()
    assert world.reservations.UpdateReservation(request) == first
    assert world.snapshot() == before


def test_update_with_bad_input_names_the_fields_and_changes_nothing(world: World):
    before = world.snapshot()
    failure = refused(
        world.reservations.UpdateReservation,
        res.UpdateReservationRequest(
            reservation_id="r-1",
            items=[target("sku-1", at("wh-1"), -1)],
            ttl=Duration(seconds=60),
            clear_ttl=True,
        ),
    )
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == ["items[0].open_quantity", "clear_ttl"]
    assert world.snapshot() == before


# --- batches -------------------------------------------------------------------------------


def test_batch_create_answers_each_request_on_its_own(world: World):
    # 15 sku-1 on hand at wh-1 and wh-2, 5 held by r-1: 10 more fit.
    response = world.reservations.BatchCreateReservations(
        res.BatchCreateReservationsRequest(
            requests=[
                create("b-1", item("sku-1", at("wh-1"), 4)),
                create("b-2", item("sku-1", at("wh-1"), 4)),  # 3 left at wh-1 after b-1
                create("b-3", item("sku-1", at("nowhere"), 1)),
                create("r-1", item("sku-1", at("wh-2"), 1)),
                create("b-5", item("sku-1", at("wh-1"), 3)),
            ]
        )
    )
    results = list(response.results)
    assert results[0].response.reservation.id == "b-1"
    assert error_of(results[1].error)[:2] == (
        grpc.StatusCode.FAILED_PRECONDITION.value[0],
        "INSUFFICIENT_STOCK",
    )
    assert error_of(results[1].error)[2]["available"] == "3"
    assert error_of(results[2].error)[:2] == (
        grpc.StatusCode.NOT_FOUND.value[0],
        "LOCATION_NOT_FOUND",
    )
    assert error_of(results[3].error)[:2] == (
        grpc.StatusCode.ALREADY_EXISTS.value[0],
        "RESERVATION_ALREADY_EXISTS",
    )
    assert results[4].response.items[0].reserved == 3
    ids = {reservation.id for reservation in all_reservations(world.reservations)}
    assert ids == {"r-1", "b-1", "b-5"}
    assert availability(world.inventory, ["sku-1"], ["wh-1"])["wh-1", "sku-1"].reserved == 10


def test_batch_all_or_nothing_fails_with_the_failing_request_and_changes_nothing(world: World):
    before = world.snapshot()
    failure = refused(
        world.reservations.BatchCreateReservations,
        res.BatchCreateReservationsRequest(
            requests=[
                create("b-1", item("sku-1", at("wh-1"), 4)),
                create("b-2", item("sku-1", at("st-1"), 9)),
            ],
            all_or_nothing=True,
        ),
    )
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_STOCK",
    )
    assert failure.metadata["request_index"] == "1"
    assert world.snapshot() == before


def test_batch_retried_with_its_request_id_returns_the_first_response(world: World):
    request = res.BatchCreateReservationsRequest(
        requests=[
            create("b-1", item("sku-1", at("wh-1"), 2)),
            create("b-2", item("sku-1", at("st-1"), 9)),
        ],
        request_id="batch-1",
    )
    first = world.reservations.BatchCreateReservations(request)
    assert first.results[1].HasField("error")
    before = world.snapshot()
    assert world.reservations.BatchCreateReservations(request) == first
    assert world.snapshot() == before


def test_batch_with_bad_input_names_the_request_and_changes_nothing(world: World):
    before = world.snapshot()
    failure = refused(
        world.reservations.BatchCreateReservations,
        res.BatchCreateReservationsRequest(
            requests=[
                create("b-1", item("sku-1", at("wh-1"), 1)),
                create("b-2", item("sku-1", at("wh-1"), 0)),
                res.CreateReservationRequest(
                    items=[item("sku-1", at("wh-1"), 1)], request_id="own"
                ),
            ]
        ),
    )
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == ["requests[1].items[0].quantity", "requests[2].request_id"]
    assert world.snapshot() == before


def test_batch_over_its_size_limit_is_refused(world: World):
    failure = refused(
        world.reservations.BatchReleaseReservations,
        res.BatchReleaseReservationsRequest(
            requests=[
                res.ReleaseReservationRequest(reservation_id=f"r-{n}", release_all=True)
                for n in range(101)
            ]
        ),
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_ITEMS")
    assert failure.fields == ["requests"]


def test_batch_transfer_fulfill_and_release_answer_each_request(world: World):
    world.reservations.CreateReservation(create("r-2", item("sku-1", at_group("g-2"), 1)))
    transferred = world.reservations.BatchTransferReservations(
        res.BatchTransferReservationsRequest(
            requests=[
                res.TransferReservationRequest(
                    reservation_id="r-1",
                    items=[transfer_item("sku-1", at_group("g-1"), at("wh-2"), 2)],
                ),
                res.TransferReservationRequest(
                    reservation_id="r-2",
                    items=[transfer_item("sku-1", at_group("g-2"), at("st-1"), 5)],
                ),
            ]
        )
    ).results
    assert lines_of(transferred[0].response.reservation)[("sku-1", "wh-2")] == 2
    assert error_of(transferred[1].error)[1] == "INSUFFICIENT_RESERVED_QUANTITY"
    fulfilled = world.reservations.BatchFulfillReservations(
        res.BatchFulfillReservationsRequest(
            requests=[
                res.FulfillReservationRequest(
                    reservation_id="r-1", items=[fulfill_item("sku-1", at("wh-1"), 3)]
                ),
                res.FulfillReservationRequest(
                    reservation_id="r-2", items=[fulfill_item("sku-1", at_group("g-2"), 1)]
                ),
            ]
        )
    ).results
    assert fulfilled[0].response.reservation.lines[0].fulfilled == 3
    assert error_of(fulfilled[1].error)[1] == "FULFILL_REQUIRES_LOCATION"
    released = world.reservations.BatchReleaseReservations(
        res.BatchReleaseReservationsRequest(
            requests=[
                res.ReleaseReservationRequest(reservation_id="r-2", release_all=True),
                res.ReleaseReservationRequest(
                    reservation_id="r-1", items=[release_item("sku-1", at("wh-2"), 9)]
                ),
                res.ReleaseReservationRequest(reservation_id="gone", release_all=True),
            ]
        )
    ).results
    assert released[0].response.reservation.state == res.RESERVATION_STATE_CLOSED
    assert error_of(released[1].error)[1] == "INSUFFICIENT_RESERVED_QUANTITY"
    assert error_of(released[2].error)[1] == "RESERVATION_NOT_FOUND"
    records = availability(world.inventory, ["sku-1"], ["wh-1", "wh-2", "st-1"], ["g-2"])
    assert records["wh-1", "sku-1"].on_hand == 7
    assert records["wh-1", "sku-1"].reserved == 0
    assert records["wh-2", "sku-1"].reserved == 2
    assert records["g-2", "sku-1"].group_reserved == 0


def test_release_all_after_an_update_added_a_sku_releases_it_too(world: World):
    world.inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "sku-2", 4)]))
    world.reservations.UpdateReservation(
        res.UpdateReservationRequest(reservation_id="r-1", items=[target("sku-2", at("wh-1"), 4)])
    )
    released = world.reservations.ReleaseReservation(
        res.ReleaseReservationRequest(reservation_id="r-1", release_all=True)
    ).reservation
    assert released.state == res.RESERVATION_STATE_CLOSED
    assert availability(world.inventory, ["sku-2"], ["wh-1"])["wh-1", "sku-2"].reserved == 0


# --- races ---------------------------------------------------------------------------------


def test_updates_racing_creates_never_oversell(world: World, omniroute):
    stock = 30
    world.inventory.SetStock(inv.SetStockRequest(levels=[level("st-1", "hot", stock)]))
    carts = [f"cart-{n}" for n in range(4)]
    for cart in carts:
        world.reservations.CreateReservation(create(cart, item("hot", at("st-1"), 1)))
    lock = threading.Lock()
    refusals = []

    def body(client: Any) -> None:
        for _ in range(15):
            try:
                if client.index < len(carts):
                    client.reservations.UpdateReservation(
                        res.UpdateReservationRequest(
                            reservation_id=carts[client.index],
                            items=[target("hot", at("st-1"), client.random.randint(0, 8))],
                        )
                    )
                else:
                    client.create("hot", at("st-1"), client.random.randint(1, 3))
            except grpc.RpcError as error:
                code = error.code()  # type: ignore[attr-defined]
                if code not in {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED}:
                    raise
                with lock:
                    refusals.append(code)

    race(omniroute.port, body, threads=8)
    held = open_by_place(all_reservations(world.reservations), "hot").get("st-1", 0)
    record = availability(world.inventory, ["hot"], ["st-1"])["st-1", "hot"]
    assert held == record.reserved <= stock
    assert record.available_to_order == stock - held
