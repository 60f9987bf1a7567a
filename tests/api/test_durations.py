"""A google.protobuf.Duration has seconds and nanos of one sign; one with mixed signs
(seconds=1, nanos=-1) is no duration at all, and every Duration field refuses it."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt

from tests.api.helpers import refused
from tests.support import at, item, level, location

pytestmark = pytest.mark.timeout(120)

MIXED = [Duration(seconds=1, nanos=-1), Duration(seconds=-1, nanos=1)]


def route(**fields: Any) -> rt.RouteOrderRequest:
    return rt.RouteOrderRequest(
        order_id="order-1",
        lines=[rt.OrderLine(sku="sku-1", quantity=1)],
        destination=rt.Destination(position=inv.GeoPoint(latitude=40.0, longitude=-75.0)),
        **fields,
    )


@pytest.fixture
def stocked(inventory: Any) -> None:
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location("wh-1")]))
    inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "sku-1", 10)]))


@pytest.mark.parametrize("duration", MIXED, ids=["1s-1ns", "-1s+1ns"])
@pytest.mark.parametrize(
    ("service", "method", "request_with", "field"),
    [
        (
            "reservations",
            "CreateReservation",
            lambda d: res.CreateReservationRequest(items=[item("sku-1", at("wh-1"), 1)], ttl=d),
            "ttl",
        ),
        (
            "routing",
            "RouteOrder",
            lambda d: route(options=rt.RoutingOptions(time_limit=d)),
            "options.time_limit",
        ),
        (
            "routing",
            "RouteOrder",
            lambda d: route(commit=rt.COMMIT_MODE_RESERVE, reservation_ttl=d),
            "reservation_ttl",
        ),
    ],
    ids=["ttl", "time_limit", "reservation_ttl"],
)
def test_a_duration_with_mixed_signs_is_invalid_argument_naming_the_field(
    request: pytest.FixtureRequest,
    stocked: None,
    duration: Duration,
    service: str,
    method: str,
    request_with: Any,
    field: str,
) -> None:
    stub = request.getfixturevalue(service)

    got = refused(getattr(stub, method), request_with(duration))

    assert (got.code, got.reason, got.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        [field],
    )


def test_a_duration_of_one_sign_is_accepted_in_every_duration_field(
    stocked: None, reservations: Any, routing: Any
) -> None:
    almost_a_second = Duration(seconds=0, nanos=999_999_999)
    reservations.CreateReservation(
        res.CreateReservationRequest(items=[item("sku-1", at("wh-1"), 1)], ttl=almost_a_second)
    )
    routing.RouteOrder(
        route(
            commit=rt.COMMIT_MODE_RESERVE,
            reservation_ttl=Duration(seconds=60, nanos=1),
            options=rt.RoutingOptions(time_limit=Duration(seconds=1, nanos=500_000_000)),
        )
    )
