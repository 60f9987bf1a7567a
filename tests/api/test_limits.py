"""A reservation stays inside one message: transfers cannot grow it past 1,000 lines."""

from __future__ import annotations

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.support import at, failure, item, level, location

SKUS = [f"sku-{n:03d}" for n in range(100)]
SITES = [f"l-{n}" for n in range(11)]


def hop(reservations, source: str, target: str):
    return reservations.TransferReservation(
        res.TransferReservationRequest(
            reservation_id="big",
            items=[
                res.TransferItem(sku=sku, from_place=at(source), to_place=at(target), quantity=1)
                for sku in SKUS
            ],
        )
    )


def test_a_transfer_that_would_give_a_reservation_over_1000_lines_is_refused(
    inventory, reservations
):
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location(i) for i in SITES]))
    for site in SITES:
        inventory.SetStock(inv.SetStockRequest(levels=[level(site, sku, 5) for sku in SKUS]))
    reservations.CreateReservation(
        res.CreateReservationRequest(
            reservation_id="big", items=[item(sku, at("l-0"), 1) for sku in SKUS]
        )
    )
    for number in range(1, 10):  # 100 new lines per hop: 1,000 lines after the ninth
        hop(reservations, f"l-{number - 1}", f"l-{number}")
    before = reservations.GetReservation(
        res.GetReservationRequest(reservation_id="big")
    ).reservation

    with pytest.raises(grpc.RpcError) as refused:
        hop(reservations, "l-9", "l-10")

    got = failure(refused.value)
    assert (got.code, got.reason, got.metadata["lines"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "TOO_MANY_LINES",
        "1100",
    )
    assert len(before.lines) == 1000
    after = reservations.GetReservation(res.GetReservationRequest(reservation_id="big")).reservation
    assert after == before
