"""Deleting locations, groups and stock records through the real server on both backends:
refused while open reservations depend on them, changing nothing; otherwise gone from
availability, routing, the change feed and every server's caches."""

from __future__ import annotations

import contextlib
from typing import Any

import grpc
import pytest
from omniroute.inventory.v1 import availability_feed_pb2 as fd
from omniroute.inventory.v1 import availability_feed_pb2_grpc, inventory_pb2_grpc
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt

from server.app import start_server
from server.storage.postgres import PostgresStore
from tests.api.conftest import World
from tests.api.helpers import group, list_all, refused, release_item
from tests.support import at, at_group, availability, item, level, location

pytestmark = pytest.mark.timeout(300)
Kind = inv.StockMovementKind


def key(sku: str, location_id: str) -> inv.StockRecordKey:
    return inv.StockRecordKey(sku=sku, location_id=location_id)


def release_all(reservations: Any, reservation_id: str = "r-1") -> None:
    reservations.ReleaseReservation(
        res.ReleaseReservationRequest(reservation_id=reservation_id, release_all=True)
    )


def test_stock_held_by_a_reservation_cannot_be_deleted(world: World) -> None:
    before = world.snapshot()
    failure = refused(
        world.inventory.DeleteStock,
        inv.DeleteStockRequest(records=[key("sku-1", "st-1"), key("sku-1", "wh-1")]),
    )
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    assert failure.reason == "RESERVATIONS_DEPEND"
    assert failure.metadata == {"location": "wh-1", "sku": "sku-1", "reservations": "1"}
    assert world.snapshot() == before


def test_stock_a_group_reservation_needs_cannot_be_deleted(world: World) -> None:
    """r-1 holds 2 at g-1 = {wh-1, wh-2}; with 3 held at wh-1 itself, wh-1 has 7 free: deleting
    wh-2's 5 leaves enough, but not once wh-1 has only 1 free."""
    world.reservations.ReleaseReservation(
        res.ReleaseReservationRequest(
            reservation_id="r-1", items=[release_item("sku-1", at("wh-1"), 3)]
        )
    )
    world.inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "sku-1", 1)]))
    before = world.snapshot()
    failure = refused(
        world.inventory.DeleteStock, inv.DeleteStockRequest(records=[key("sku-1", "wh-2")])
    )
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "GROUP_RESERVATIONS_UNCOVERABLE",
    )
    assert failure.metadata == {"sku": "sku-1", "uncovered": "1"}
    assert world.snapshot() == before


def test_deleted_stock_leaves_availability_routing_and_the_feed(
    world: World, routing: Any, channel: grpc.Channel
) -> None:
    world.inventory.DeleteStock(inv.DeleteStockRequest(records=[key("sku-1", "st-1")]))
    records = availability(world.inventory, ["sku-1"], ["st-1"], ["g-2"])
    gone = records["st-1", "sku-1"]
    assert (gone.exists, gone.on_hand, gone.available_to_order) == (False, 0, 0)
    assert records["g-2", "sku-1"].on_hand == 5  # wh-2 only
    routed = routing.RouteOrder(
        rt.RouteOrderRequest(
            order_id="o-1",
            lines=[rt.OrderLine(sku="sku-1", quantity=1)],
            destination=rt.Destination(position=inv.GeoPoint(latitude=42.0, longitude=-75.0)),
            location_ids=["st-1"],
            options=rt.RoutingOptions(allow_partial=True),
        )
    )
    assert routed.plan.unrouted[0].quantity == 1
    feed = availability_feed_pb2_grpc.AvailabilityFeedServiceStub(channel)
    changes = feed.ListAvailabilityChanges(
        fd.ListAvailabilityChangesRequest(
            filter=fd.AvailabilityFilter(skus=["sku-1"], location_ids=["st-1"]),
            page_size=1000,
        )
    ).changes
    assert changes[-1].record.exists is False
    (movement,) = [
        m
        for m in list_all(
            world.inventory.ListStockMovements,
            inv.ListStockMovementsRequest(sku="sku-1", place=at("st-1")),
            "movements",
        )
        if m.kind == Kind.STOCK_MOVEMENT_KIND_STOCK_DELETED
    ]
    assert (movement.on_hand_delta, movement.on_hand) == (-2, 0)


def test_unknown_stock_is_not_found_and_nothing_is_deleted(world: World) -> None:
    before = world.snapshot()
    failure = refused(
        world.inventory.DeleteStock,
        inv.DeleteStockRequest(records=[key("sku-1", "st-1"), key("sku-2", "st-1")]),
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "STOCK_NOT_FOUND")
    assert failure.metadata == {"sku": "sku-2", "location": "st-1"}
    assert world.snapshot() == before


def test_a_location_is_deleted_once_nothing_holds_it(world: World) -> None:
    before = world.snapshot()
    failure = refused(
        world.inventory.DeleteLocations, inv.DeleteLocationsRequest(location_ids=["wh-1"])
    )
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "RESERVATIONS_DEPEND",
    )
    assert failure.metadata == {"location": "wh-1", "reservations": "1"}
    assert world.snapshot() == before

    release_all(world.reservations)
    deleted = world.inventory.DeleteLocations(inv.DeleteLocationsRequest(location_ids=["wh-1"]))
    assert deleted.deleted_stock_records == 1
    ids = [
        x.id
        for x in list_all(world.inventory.ListLocations, inv.ListLocationsRequest(), "locations")
    ]
    assert ids == ["st-1", "wh-2"]
    groups = {
        g.id: list(g.location_ids)
        for g in list_all(
            world.inventory.ListLocationGroups, inv.ListLocationGroupsRequest(), "location_groups"
        )
    }
    assert groups == {"g-1": ["wh-2"], "g-2": ["st-1", "wh-2"]}
    assert availability(world.inventory, ["sku-1"], (), ["g-1"])["g-1", "sku-1"].on_hand == 5
    failure = refused(
        world.inventory.GetAvailability,
        inv.GetAvailabilityRequest(skus=["sku-1"], location_ids=["wh-1"]),
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "LOCATION_NOT_FOUND")
    # The id can be used again, from nothing.
    world.inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location("wh-1")]))
    assert availability(world.inventory, ["sku-1"], ["wh-1"])["wh-1", "sku-1"].exists is False


def test_a_group_member_whose_stock_a_group_reservation_needs_stays(world: World) -> None:
    """r-1 holds 2 at g-1 and 3 at wh-1: without wh-1's hold, deleting wh-2 still leaves
    wh-1's 10 for g-1; with wh-1 set to 1, g-1's 2 need wh-2."""
    world.reservations.ReleaseReservation(
        res.ReleaseReservationRequest(
            reservation_id="r-1", items=[release_item("sku-1", at("wh-1"), 3)]
        )
    )
    world.inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "sku-1", 1)]))
    failure = refused(
        world.inventory.DeleteLocations, inv.DeleteLocationsRequest(location_ids=["wh-2"])
    )
    assert failure.reason == "GROUP_RESERVATIONS_UNCOVERABLE"


def test_a_group_is_deleted_once_no_reservation_holds_it(world: World) -> None:
    before = world.snapshot()
    failure = refused(
        world.inventory.DeleteLocationGroups,
        inv.DeleteLocationGroupsRequest(location_group_ids=["g-2", "g-1"]),
    )
    assert failure.reason == "RESERVATIONS_DEPEND"
    assert failure.metadata == {"location_group": "g-1", "reservations": "1"}
    assert world.snapshot() == before

    release_all(world.reservations)
    world.inventory.DeleteLocationGroups(
        inv.DeleteLocationGroupsRequest(location_group_ids=["g-1"])
    )
    failure = refused(
        world.reservations.CreateReservation,
        res.CreateReservationRequest(items=[item("sku-1", at_group("g-1"), 1)]),
    )
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.NOT_FOUND,
        "LOCATION_GROUP_NOT_FOUND",
    )
    assert len(availability(world.inventory, ["sku-1"], ["wh-1", "wh-2"])) == 2
    kinds = [
        m.kind
        for m in list_all(
            world.inventory.ListStockMovements,
            inv.ListStockMovementsRequest(place=at_group("g-1")),
            "movements",
        )
    ]
    assert kinds[-1] == Kind.STOCK_MOVEMENT_KIND_LOCATION_GROUP_DELETED


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("DeleteLocations", inv.DeleteLocationsRequest(), "location_ids"),
        ("DeleteLocations", inv.DeleteLocationsRequest(location_ids=["a", "a"]), "location_ids[1]"),
        ("DeleteLocationGroups", inv.DeleteLocationGroupsRequest(), "location_group_ids"),
        ("DeleteStock", inv.DeleteStockRequest(records=[key("", "wh-1")]), "records[0].sku"),
    ],
)
def test_bad_deletes_are_refused(
    world: World, method: str, request_message: Any, field: str
) -> None:
    before = world.snapshot()
    failure = refused(getattr(world.inventory, method), request_message)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in failure.fields
    assert world.snapshot() == before


def test_every_server_forgets_what_another_deleted(postgres_dsn: str) -> None:
    """Two PostgreSQL servers: once one deletes a location, a group and stock, the other, whose
    caches held them, answers without them at once."""
    stores = [PostgresStore(postgres_dsn, pool_size=2) for _ in range(2)]
    servers = [start_server("localhost:0", store, sweep_interval_s=0.05) for store in stores]
    try:
        with contextlib.ExitStack() as stack:
            first, second = (
                inventory_pb2_grpc.InventoryServiceStub(
                    stack.enter_context(grpc.insecure_channel(f"localhost:{running.port}"))
                )
                for running in servers
            )
            first.UpsertLocations(
                inv.UpsertLocationsRequest(locations=[location("a"), location("b")])
            )
            first.UpsertLocationGroups(
                inv.UpsertLocationGroupsRequest(location_groups=[group("ab", "a", "b")])
            )
            first.SetStock(inv.SetStockRequest(levels=[level("a", "sku", 4), level("b", "sku", 6)]))
            assert availability(second, ["sku"], ["a", "b"], ["ab"])["ab", "sku"].on_hand == 10
            first.DeleteStock(inv.DeleteStockRequest(records=[key("sku", "b")]))
            assert availability(second, ["sku"], ["a"], ["ab"])["ab", "sku"].on_hand == 4
            first.DeleteLocations(inv.DeleteLocationsRequest(location_ids=["a"]))
            assert availability(second, ["sku"], (), ["ab"])["ab", "sku"].exists is False
            first.DeleteLocationGroups(inv.DeleteLocationGroupsRequest(location_group_ids=["ab"]))
            for location_id, group_id in (("a", ""), ("", "ab")):
                failure = refused(
                    second.GetAvailability,
                    inv.GetAvailabilityRequest(
                        skus=["sku"],
                        location_ids=[location_id] if location_id else [],
                        location_group_ids=[group_id] if group_id else [],
                    ),
                )
                assert failure.code == grpc.StatusCode.NOT_FOUND
    finally:
        for running in servers:
            running.stop(grace_s=1)
