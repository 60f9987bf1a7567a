"""A stock record excluded from groups (OCI's groupEligibilityExclusion) through the real server:
for that SKU the location is no member of those groups, in availability, coverage, routing and
the change feed. The differential test checks it against a second server where the location
really is no member."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from omniroute.inventory.v1 import availability_feed_pb2 as fd
from omniroute.inventory.v1 import (
    availability_feed_pb2_grpc,
    inventory_pb2_grpc,
    reservation_pb2_grpc,
)
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt

from server.app import start_server
from server.storage.sqlite import SqliteStore
from tests.api.conftest import World
from tests.api.helpers import group, refused, transfer_item
from tests.support import at, at_group, availability, item, level, location

pytestmark = pytest.mark.timeout(300)


def exclude(inventory: Any, location_id: str, on_hand: int, *groups: str) -> None:
    inventory.SetStock(
        inv.SetStockRequest(
            levels=[
                level(
                    location_id,
                    "sku-1",
                    on_hand,
                    excluded_from=inv.GroupExclusions(location_group_ids=list(groups)),
                )
            ]
        )
    )


def test_an_excluded_record_leaves_the_group(world: World, routing: Any) -> None:
    exclude(world.inventory, "wh-2", 5, "g-2")
    records = availability(world.inventory, ["sku-1"], ["wh-2"], ["g-1", "g-2"])
    assert (records["g-2", "sku-1"].on_hand, records["g-2", "sku-1"].available_to_order) == (2, 2)
    assert records["g-1", "sku-1"].on_hand == 15  # still counted where it is not excluded
    assert records["wh-2", "sku-1"].available_to_order == 5
    failure = refused(
        world.reservations.CreateReservation,
        res.CreateReservationRequest(items=[item("sku-1", at_group("g-2"), 3)]),
    )
    assert (failure.reason, failure.metadata["available"]) == ("INSUFFICIENT_STOCK", "2")
    routed = routing.RouteOrder(
        rt.RouteOrderRequest(
            order_id="o-1",
            lines=[rt.OrderLine(sku="sku-1", quantity=3)],
            destination=rt.Destination(position=inv.GeoPoint(latitude=41.0, longitude=-75.0)),
            location_group_id="g-2",
            options=rt.RoutingOptions(allow_partial=True),
        )
    )
    assert [s.location_id for s in routed.plan.shipments] == ["st-1"]
    assert routed.plan.unrouted[0].quantity == 1
    # A level without exclusions keeps them; an empty list clears them.
    world.inventory.SetStock(inv.SetStockRequest(levels=[level("wh-2", "sku-1", 6)]))
    assert availability(world.inventory, ["sku-1"], (), ["g-2"])["g-2", "sku-1"].on_hand == 2
    exclude(world.inventory, "wh-2", 6)
    assert availability(world.inventory, ["sku-1"], (), ["g-2"])["g-2", "sku-1"].on_hand == 8


def test_a_record_a_group_reservation_needs_cannot_be_excluded(world: World) -> None:
    """r-1 holds 2 at g-1 = {wh-1, wh-2}: excluding both leaves nothing to cover them."""
    exclude(world.inventory, "wh-1", 10, "g-1")
    before = world.snapshot()
    failure = refused(
        world.inventory.SetStock,
        inv.SetStockRequest(
            levels=[
                level(
                    "wh-2",
                    "sku-1",
                    5,
                    excluded_from=inv.GroupExclusions(location_group_ids=["g-1", "g-2"]),
                )
            ]
        ),
    )
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "GROUP_RESERVATIONS_UNCOVERABLE",
    )
    assert world.snapshot() == before


def test_unknown_and_repeated_groups_are_refused(world: World) -> None:
    failure = refused(
        world.inventory.SetStock,
        inv.SetStockRequest(
            levels=[
                level(
                    "wh-2",
                    "sku-1",
                    5,
                    excluded_from=inv.GroupExclusions(location_group_ids=["nowhere"]),
                )
            ]
        ),
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "LOCATION_GROUP_NOT_FOUND")
    failure = refused(
        world.inventory.SetStock,
        inv.SetStockRequest(
            levels=[
                level(
                    "wh-2",
                    "sku-1",
                    5,
                    excluded_from=inv.GroupExclusions(location_group_ids=["g-1", "g-1"]),
                )
            ]
        ),
    )
    assert failure.fields == ["levels[0].excluded_from.location_group_ids[1]"]


def test_the_feed_follows_exclusions(world: World, channel: grpc.Channel) -> None:
    feed = availability_feed_pb2_grpc.AvailabilityFeedServiceStub(channel)
    watched = fd.AvailabilityFilter(
        skus=["sku-1"], location_ids=["wh-1", "wh-2", "st-1"], location_group_ids=["g-1", "g-2"]
    )

    def latest() -> dict[tuple[str, str], inv.AvailabilityRecord]:
        changes = feed.ListAvailabilityChanges(
            fd.ListAvailabilityChangesRequest(filter=watched, page_size=1000)
        ).changes
        return {
            (c.record.place.location_id or c.record.place.location_group_id, c.record.sku): (
                c.record
            )
            for c in changes
        }

    for groups in (("g-1",), ("g-2",), ("g-1", "g-2"), ()):
        exclude(world.inventory, "wh-1", 10, *groups)
        now = availability(world.inventory, ["sku-1"], ["wh-1", "wh-2", "st-1"], ["g-1", "g-2"])
        assert latest() == now, groups


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[Any, Any, Any, Any]]:
    """Two servers: in `excluding`, loc-b's sku-1 is excluded from grp-bc; in `reference`,
    loc-b is no member of grp-bc (and every other SKU is absent)."""
    running = []
    stubs = []
    for name, members in (("excluding", ("loc-b", "loc-c")), ("reference", ("loc-c",))):
        store = SqliteStore(tmp_path / f"{name}.sqlite3", synchronous="NORMAL")
        server = start_server("localhost:0", store, sweep_interval_s=0.05)
        running.append(server)
        channel = grpc.insecure_channel(f"localhost:{server.port}")
        inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
        inventory.UpsertLocations(
            inv.UpsertLocationsRequest(
                locations=[location(loc) for loc in ("loc-a", "loc-b", "loc-c")]
            )
        )
        inventory.UpsertLocationGroups(
            inv.UpsertLocationGroupsRequest(
                location_groups=[
                    group("grp-ab", "loc-a", "loc-b"),
                    group("grp-bc", *members),
                    group("grp-abc", "loc-a", "loc-b", "loc-c"),
                ]
            )
        )
        stubs += [inventory, reservation_pb2_grpc.ReservationServiceStub(channel)]
    try:
        yield tuple(stubs)  # type: ignore[misc]
    finally:
        for server in running:
            server.stop(grace_s=1)


def test_an_exclusion_is_the_same_as_no_membership_for_its_sku(twins: Any) -> None:
    """A seeded random mix of stock levels and reservations at every place, sent to both
    servers: every availability record of the SKU agrees after every step."""
    excluding, excluding_reservations, reference, reference_reservations = twins
    rng = random.Random(17)
    places = [at("loc-a"), at("loc-b"), at("loc-c")] + [
        at_group(g) for g in ("grp-ab", "grp-bc", "grp-abc")
    ]
    held: list[tuple[str, inv.Place]] = []
    for step in range(60):
        action = rng.random()
        loc = rng.choice(("loc-a", "loc-b", "loc-c"))
        quantity = rng.randint(0, 12)
        place = rng.choice(places)
        answers = []
        for inventory, reservations, excluded in (
            (excluding, excluding_reservations, True),
            (reference, reference_reservations, False),
        ):
            try:
                if action < 0.35:
                    groups = ["grp-bc"] if excluded and loc == "loc-b" else []
                    inventory.SetStock(
                        inv.SetStockRequest(
                            levels=[
                                level(
                                    loc,
                                    "sku-1",
                                    quantity,
                                    excluded_from=inv.GroupExclusions(location_group_ids=groups),
                                )
                            ]
                        )
                    )
                elif action < 0.75:
                    reservations.CreateReservation(
                        res.CreateReservationRequest(
                            reservation_id=f"r-{step}",
                            items=[item("sku-1", place, 1 + quantity // 4)],
                        )
                    )
                    if excluded:
                        held.append((f"r-{step}", place))
                elif held:
                    reservation_id, held_at = held[-1]
                    if held_at.location_group_id:
                        reservations.TransferReservation(
                            res.TransferReservationRequest(
                                reservation_id=reservation_id,
                                items=[transfer_item("sku-1", held_at, at(loc), 1)],
                            )
                        )
                    else:
                        reservations.ReleaseReservation(
                            res.ReleaseReservationRequest(
                                reservation_id=reservation_id, release_all=True
                            )
                        )
                answers.append("ok")
            except grpc.RpcError as error:
                answers.append(error.code().name)  # type: ignore[attr-defined]
        assert answers[0] == answers[1], (step, answers)
        seen = [
            availability(
                inventory, ["sku-1"], ["loc-a", "loc-b", "loc-c"], ["grp-ab", "grp-bc", "grp-abc"]
            )
            for inventory in (excluding, reference)
        ]
        for key, record in seen[1].items():
            mine = seen[0][key]
            assert (
                mine.on_hand,
                mine.reserved,
                mine.available_to_fulfill,
                mine.available_to_order,
            ) == (
                record.on_hand,
                record.reserved,
                record.available_to_fulfill,
                record.available_to_order,
            ), (step, key)
