"""Errors echo what callers sent, bounded: however long the strings and however many the
violations, the error reaches the client with its documented code and reason (a grpc client
refuses a trailer over 8-16 KiB and reports RESOURCE_EXHAUSTED instead)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt

from tests.api.helpers import refused
from tests.support import at, location

pytestmark = pytest.mark.timeout(120)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
CLEF = "\U0001d11e"  # four bytes in UTF-8
LONGEST_ID = CLEF * 128


def route_to(country_code: str, postal_code: str) -> rt.RouteOrderRequest:
    return rt.RouteOrderRequest(
        order_id="order-1",
        lines=[rt.OrderLine(sku="sku-1", quantity=1)],
        destination=rt.Destination(
            postal_code=rt.PostalCode(country_code=country_code, postal_code=postal_code)
        ),
    )


def located_at(country_code: str, postal_code: str) -> inv.UpsertLocationsRequest:
    return inv.UpsertLocationsRequest(
        locations=[location("site", country_code=country_code, postal_code=postal_code)]
    )


@pytest.mark.parametrize("length", [5_000, 100_000])
@pytest.mark.parametrize(
    ("method", "request_for", "prefix"),
    [
        ("RouteOrder", route_to, "destination.postal_code."),
        ("UpsertLocations", located_at, "locations[0]."),
    ],
    ids=["RouteOrder", "UpsertLocations"],
)
@pytest.mark.parametrize("code", ["postal_code", "country_code"])
def test_an_over_long_postal_or_country_code_is_invalid_argument_naming_it(
    inventory: Any, routing: Any, length: int, method: str, request_for: Any, prefix: str, code: str
) -> None:
    codes = {"country_code": "US", "postal_code": "33301", code: "9" * length}
    stub = routing if method == "RouteOrder" else inventory

    got = refused(getattr(stub, method), request_for(**codes))

    assert (got.code, got.reason) == (INVALID, "INVALID_FIELD"), got.message
    assert got.fields == [prefix + code]
    assert len(got.message) < 200


def test_a_postal_code_at_the_length_limit_that_is_unknown_is_unknown_postal_code(
    routing: Any,
) -> None:
    got = refused(routing.RouteOrder, route_to("US", "9" * 32))

    assert (got.code, got.reason, got.fields) == (
        INVALID,
        "UNKNOWN_POSTAL_CODE",
        ["destination.postal_code"],
    )


def test_thousands_of_violations_echoing_long_ids_arrive_as_invalid_argument_with_a_count(
    inventory: Any,
) -> None:
    """1,000 locations with one 128-character id of 4-byte characters: 999 duplicates, each
    echoing the id, and 2,000 bad positions and costs."""
    request = inv.UpsertLocationsRequest(
        locations=[location(LONGEST_ID, 91.0, 181.0, shipment_cost=-1.0) for _ in range(1000)]
    )

    got = refused(inventory.UpsertLocations, request)

    assert (got.code, got.reason) == (INVALID, "DUPLICATE_ITEM")
    assert got.fields[0] == "locations[1]"
    assert len(got.fields) + int(got.metadata["omitted_violations"]) == 999 + 3 * 1000
    assert len(got.message.encode()) <= 512


def test_an_error_echoing_three_long_ids_arrives_whole_where_it_fits(reservations: Any) -> None:
    """A repeated transfer item echoes its SKU and both places; each id arrives whole in the
    metadata of a domain error, and the message is cut with an ellipsis."""
    move = res.TransferItem(
        sku=LONGEST_ID, from_place=at(LONGEST_ID), to_place=at(CLEF * 127 + "x"), quantity=1
    )
    request = res.TransferReservationRequest(reservation_id=LONGEST_ID, items=[move, move])

    got = refused(reservations.TransferReservation, request)

    assert (got.code, got.reason, got.fields) == (INVALID, "DUPLICATE_ITEM", ["items[1]"])
    assert got.message.endswith("…")
    assert len(got.message.encode()) <= 512


def test_an_unknown_location_with_the_longest_id_is_named_whole(reservations: Any) -> None:
    got = refused(
        reservations.CreateReservation,
        res.CreateReservationRequest(
            items=[res.ReservationItem(sku="sku-1", place=at(LONGEST_ID), quantity=1)]
        ),
    )

    assert got.code == grpc.StatusCode.NOT_FOUND
    assert LONGEST_ID in got.metadata.values()
