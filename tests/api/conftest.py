"""A small standard world for the API tests, built through the real server."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.api.helpers import group, snapshot
from tests.support import STORE, at, at_group, item, level, location


@dataclass(frozen=True)
class World:
    """Locations wh-1, wh-2 (warehouses) and st-1 (store); groups g-1 = {wh-1, wh-2} and
    g-2 = {wh-2, st-1}; sku-1 on hand 10 at wh-1, 5 at wh-2, 2 at st-1; sku-2 nowhere.
    Reservation r-1 (request_id req-r-1) holds 3 sku-1 at wh-1 and 2 at g-1."""

    inventory: object
    reservations: object
    skus: tuple[str, ...] = ("sku-1", "sku-2")
    locations: tuple[str, ...] = ("wh-1", "wh-2", "st-1")
    groups: tuple[str, ...] = ("g-1", "g-2")

    def snapshot(self) -> dict[str, object]:
        return snapshot(self.inventory, self.reservations, self.skus, self.locations, self.groups)


@pytest.fixture
def world(inventory, reservations) -> World:
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[location("wh-1"), location("wh-2", 41.0), location("st-1", 42.0, kind=STORE)]
        )
    )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(
            location_groups=[group("g-1", "wh-1", "wh-2"), group("g-2", "wh-2", "st-1")]
        )
    )
    inventory.SetStock(
        inv.SetStockRequest(
            levels=[
                level("wh-1", "sku-1", 10),
                level("wh-2", "sku-1", 5),
                level("st-1", "sku-1", 2),
            ]
        )
    )
    reservations.CreateReservation(
        res.CreateReservationRequest(
            reservation_id="r-1",
            request_id="req-r-1",
            items=[item("sku-1", at("wh-1"), 3), item("sku-1", at_group("g-1"), 2)],
        )
    )
    return World(inventory, reservations)
