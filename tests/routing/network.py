"""A US network on real coordinates for the routing tests, published through the real server.

    nj-dc       Newark NJ        40.7357, -74.1724   distribution centre
    tx-dc       Dallas TX        32.7767, -96.7970   distribution centre
    atlanta     Atlanta GA       33.7490, -84.3880   store
    orlando     Orlando FL       28.5384, -81.3789   store
    tampa       Tampa FL         27.9506, -82.4572   store
    miami       Miami FL         25.7617, -80.1918   store
    outlet      Jacksonville FL  30.3322, -81.6557   store, not ship-enabled

Group `us-web` holds every location but the outlet. A shopper at ZIP 33301 (Fort Lauderdale)
is 41 km from Miami, 296 km from Orlando, 307 km from Tampa, 491 km from the outlet, 942 km
from Atlanta, 1,715 km from Newark and 1,773 km from Dallas (haversine from the ZIP centroid).
"""

from __future__ import annotations

import random

from google.protobuf import duration_pb2
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.routing.v1 import routing_pb2 as rt

from tests.support import STORE, level, location

DC = inv.LOCATION_TYPE_DISTRIBUTION_CENTER
SITES = {
    "nj-dc": (40.7357, -74.1724, DC),
    "tx-dc": (32.7767, -96.7970, DC),
    "atlanta": (33.7490, -84.3880, STORE),
    "orlando": (28.5384, -81.3789, STORE),
    "tampa": (27.9506, -82.4572, STORE),
    "miami": (25.7617, -80.1918, STORE),
}
BATCH = 1000
FORT_LAUDERDALE = rt.Destination(postal_code=rt.PostalCode(country_code="US", postal_code="33301"))


def publish(inventory, stock: dict[str, dict[str, int]], **costs: float) -> None:
    """Locations, the us-web group and `stock` ({location: {sku: on hand}})."""
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[
                location(site, lat, lon, kind, shipment_cost=costs.get(site, 0.0))
                for site, (lat, lon, kind) in SITES.items()
            ]
            + [location("outlet", 30.3322, -81.6557, STORE, ship_enabled=False)]
        )
    )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(
            location_groups=[inv.LocationGroup(id="us-web", location_ids=sorted(SITES))]
        )
    )
    inventory.SetStock(
        inv.SetStockRequest(
            levels=[
                level(site, sku, units)
                for site, skus in stock.items()
                for sku, units in skus.items()
            ]
        )
    )


def order(*lines: tuple[str, int], **fields: object) -> rt.RouteOrderRequest:
    return rt.RouteOrderRequest(
        order_id=str(fields.pop("order_id", "order-1")),
        lines=[rt.OrderLine(sku=sku, quantity=quantity) for sku, quantity in lines],
        destination=fields.pop("destination", FORT_LAUDERDALE),
        **fields,  # type: ignore[arg-type]
    )


def shipped(plan: rt.Plan) -> dict[str, dict[str, int]]:
    """{location: {sku: units}} of a plan."""
    return {
        shipment.location_id: {line.sku: line.quantity for line in shipment.lines}
        for shipment in plan.shipments
    }


SCATTERED = "scattered"


def publish_scattered(
    inventory, locations: int, skus: int, seed: int = 0
) -> dict[tuple[str, str], int]:
    """`locations` warehouses spread over the US, all in group `scattered`, each stocking each of
    `skus` SKUs with probability 0.3 at 1-5 units: orders over many of these SKUs need four or
    more shipments, which the solver cannot prove best in a second or two. Returns the stock."""
    rng = random.Random(seed)
    ids = [f"wh-{number:04d}" for number in range(locations)]
    stock = {
        (site, f"sku-{number:03d}"): rng.randint(1, 5)
        for site in ids
        for number in range(skus)
        if rng.random() < 0.3
    }
    sites = [location(site, rng.uniform(26, 48), rng.uniform(-122, -70)) for site in ids]
    levels = [level(site, sku, units) for (site, sku), units in stock.items()]
    for start in range(0, len(sites), BATCH):
        inventory.UpsertLocations(
            inv.UpsertLocationsRequest(locations=sites[start : start + BATCH])
        )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(
            location_groups=[inv.LocationGroup(id=SCATTERED, location_ids=ids)]
        )
    )
    for start in range(0, len(levels), BATCH):
        inventory.SetStock(inv.SetStockRequest(levels=levels[start : start + BATCH]))
    return stock


def scattered_order(
    order_id: str, lines: int, seconds: float, **fields: object
) -> rt.RouteOrderRequest:
    """A dry run over `scattered` of 2 units of each of the first `lines` SKUs, to Kansas."""
    return order(
        *[(f"sku-{number:03d}", 2) for number in range(lines)],
        order_id=order_id,
        destination=rt.Destination(position=inv.GeoPoint(latitude=39.0, longitude=-95.7)),
        location_group_id=SCATTERED,
        options=rt.RoutingOptions(time_limit=duration(seconds)),
        **fields,
    )


def duration(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))
