"""RouteOrder reuses a group's candidates, and every ship-enabled location, across orders while
the network stays the same: a network change is routed over from the next order on."""

from __future__ import annotations

from omniroute.inventory.v1 import inventory_pb2 as inv

from tests.routing.network import SITES, order, publish, shipped
from tests.support import STORE, location


def test_a_location_dropped_from_the_group_no_longer_ships_for_it(inventory, routing):
    publish(inventory, {"miami": {"jeans": 1}, "tampa": {"jeans": 1}})
    assert shipped(routing.RouteOrder(order(("jeans", 1), location_group_id="us-web")).plan) == {
        "miami": {"jeans": 1}
    }
    members = sorted(set(SITES) - {"miami"})
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(
            location_groups=[inv.LocationGroup(id="us-web", location_ids=members)]
        )
    )
    assert shipped(routing.RouteOrder(order(("jeans", 1), location_group_id="us-web")).plan) == {
        "tampa": {"jeans": 1}
    }


def test_a_location_no_longer_ship_enabled_no_longer_ships_an_order_without_a_scope(
    inventory, routing
):
    publish(inventory, {"miami": {"jeans": 1}, "tampa": {"jeans": 1}})
    assert shipped(routing.RouteOrder(order(("jeans", 1))).plan) == {"miami": {"jeans": 1}}
    latitude, longitude, _ = SITES["miami"]
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[location("miami", latitude, longitude, STORE, ship_enabled=False)]
        )
    )
    assert shipped(routing.RouteOrder(order(("jeans", 1))).plan) == {"tampa": {"jeans": 1}}


def test_a_location_moved_is_routed_from_where_it_now_is(inventory, routing):
    publish(inventory, {"miami": {"jeans": 1}, "nj-dc": {"jeans": 1}})
    assert shipped(routing.RouteOrder(order(("jeans", 1), location_group_id="us-web")).plan) == {
        "miami": {"jeans": 1}
    }
    latitude, longitude, kind = SITES["nj-dc"]
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location("miami", latitude, longitude, kind)])
    )
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location("nj-dc", 25.7617, -80.1918, kind)])
    )
    assert shipped(routing.RouteOrder(order(("jeans", 1), location_group_id="us-web")).plan) == {
        "nj-dc": {"jeans": 1}
    }
