"""A disabled location group (OCI's IsEnabled false) through the real server on both backends:
it reports nothing to sell and takes no new holds or routes, while what it already holds stays
reserved, covered and releasable; enabling it again restores it, and the feed follows."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from omniroute.inventory.v1 import availability_feed_pb2 as fd
from omniroute.inventory.v1 import availability_feed_pb2_grpc
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt

from tests.api.conftest import World
from tests.api.helpers import list_all, refused, transfer_item
from tests.support import at, at_group, availability, item

pytestmark = pytest.mark.timeout(300)


def set_enabled(world: World, enabled: bool) -> None:
    world.inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(
            location_groups=[
                inv.LocationGroup(
                    id="g-1", display_name="g-1", location_ids=["wh-1", "wh-2"], enabled=enabled
                )
            ]
        )
    )


def disabled_refusal(method: Any, request: Any) -> None:
    failure = refused(method, request)
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "LOCATION_GROUP_DISABLED",
    )
    assert failure.metadata == {"location_group": "g-1"}


def test_a_disabled_group_sells_nothing_new(world: World, routing: Any) -> None:
    enabled = availability(world.inventory, ["sku-1"], (), ["g-1"])["g-1", "sku-1"]
    assert enabled.available_to_order == 10  # 15 on hand, 3 held at wh-1, 2 at g-1
    set_enabled(world, False)
    (listed,) = [
        g
        for g in list_all(
            world.inventory.ListLocationGroups, inv.ListLocationGroupsRequest(), "location_groups"
        )
        if g.id == "g-1"
    ]
    assert listed.enabled is False
    records = availability(world.inventory, ["sku-1"], ["wh-2"], ["g-1", "g-2"])
    disabled = records["g-1", "sku-1"]
    assert (disabled.available_to_order, disabled.available_to_fulfill) == (0, 0)
    assert (disabled.on_hand, disabled.group_reserved) == (15, 2)
    assert records["g-2", "sku-1"].available_to_order == 7  # other groups are untouched
    before = world.snapshot()
    disabled_refusal(
        world.reservations.CreateReservation,
        res.CreateReservationRequest(items=[item("sku-1", at_group("g-1"), 1)], allow_partial=True),
    )
    disabled_refusal(
        world.reservations.TransferReservation,
        res.TransferReservationRequest(
            reservation_id="r-1", items=[transfer_item("sku-1", at("wh-1"), at_group("g-1"), 1)]
        ),
    )
    disabled_refusal(
        routing.RouteOrder,
        rt.RouteOrderRequest(
            order_id="o-1",
            lines=[rt.OrderLine(sku="sku-1", quantity=1)],
            destination=rt.Destination(position=inv.GeoPoint(latitude=40.0, longitude=-75.0)),
            location_group_id="g-1",
        ),
    )
    disabled_refusal(
        world.inventory.FindNearbyAvailability,
        inv.FindNearbyAvailabilityRequest(
            position=inv.GeoPoint(latitude=40.0, longitude=-75.0),
            lines=[inv.BasketLine(sku="sku-1", quantity=1)],
            location_group_id="g-1",
        ),
    )
    assert world.snapshot() == before


def test_what_a_disabled_group_holds_stays_covered_and_can_leave(world: World) -> None:
    set_enabled(world, False)
    # wh-1 may not sell the 2 units g-1 still needs from it once wh-2 is low.
    world.inventory.SetStock(
        inv.SetStockRequest(levels=[inv.StockLevel(location_id="wh-2", sku="sku-1", on_hand=0)])
    )
    assert (
        availability(world.inventory, ["sku-1"], ["wh-1"])["wh-1", "sku-1"].available_to_order == 5
    )
    world.reservations.TransferReservation(
        res.TransferReservationRequest(
            reservation_id="r-1", items=[transfer_item("sku-1", at_group("g-1"), at("wh-1"), 1)]
        )
    )
    world.reservations.ReleaseReservation(
        res.ReleaseReservationRequest(reservation_id="r-1", release_all=True)
    )
    assert availability(world.inventory, ["sku-1"], (), ["g-1"])["g-1", "sku-1"].group_reserved == 0


def test_enabling_again_restores_the_group_and_the_feed_follows(
    world: World, channel: grpc.Channel
) -> None:
    feed = availability_feed_pb2_grpc.AvailabilityFeedServiceStub(channel)

    def last_logged() -> inv.AvailabilityRecord:
        changes = feed.ListAvailabilityChanges(
            fd.ListAvailabilityChangesRequest(
                filter=fd.AvailabilityFilter(skus=["sku-1"], location_group_ids=["g-1"]),
                page_size=1000,
            )
        ).changes
        return changes[-1].record

    set_enabled(world, False)
    assert last_logged().available_to_order == 0
    set_enabled(world, True)
    assert last_logged().available_to_order == 10
    assert last_logged() == availability(world.inventory, ["sku-1"], (), ["g-1"])["g-1", "sku-1"]
    world.reservations.CreateReservation(
        res.CreateReservationRequest(items=[item("sku-1", at_group("g-1"), 10)])
    )
