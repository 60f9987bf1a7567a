"""Pickup at a nearby store: the pickup-enabled locations nearest a shopper, with what each can
hand over of a basket now. Locations come from the network's spatial index (pickup_index.py);
availability is the ledger's, read in the same unit of work, so it is what GetAvailability
reports at that snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from server.domain.ledger import Ledger, require_enabled, require_places
from server.domain.model import Location, Place
from server.domain.port import UnitOfWork

DEFAULT_LOCATIONS = 10
MAX_LOCATIONS = 100


@dataclass(frozen=True)
class NearbyQuery:
    """A validated FindNearbyAvailability request."""

    latitude: float
    longitude: float
    basket: tuple[tuple[str, int], ...]  # (sku, units wanted), distinct SKUs
    max_locations: int = DEFAULT_LOCATIONS
    radius_km: float | None = None  # None: no distance bound
    group_id: str = ""  # "": every pickup-enabled location


@dataclass(frozen=True)
class PickupOption:
    """One location near the shopper: its ATF per basket line, in basket order, and whether
    that covers every line."""

    location: Location
    distance_km: float
    available_to_fulfill: tuple[int, ...]
    has_whole_basket: bool


def find_nearby(uow: UnitOfWork, ledger: Ledger, query: NearbyQuery) -> list[PickupOption]:
    """Nearest first, equal distances by location id."""
    if query.group_id:
        require_places(uow, [Place.group(query.group_id)])
        require_enabled(uow, [Place.group(query.group_id)])
    found = uow.pickup_index(query.group_id).nearest(
        query.latitude, query.longitude, query.max_locations, query.radius_km
    )
    if not found:
        return []
    skus = [sku for sku, _ in query.basket]
    records = ledger.availability(uow, skus, [Place.location(x.location_id) for x in found])
    locations = uow.locations([x.location_id for x in found])
    options = []
    for i, nearby in enumerate(found):
        atf = tuple(x.available_to_fulfill for x in records[i * len(skus) : (i + 1) * len(skus)])
        whole = all(units <= have for (_, units), have in zip(query.basket, atf, strict=True))
        options.append(PickupOption(locations[nearby.location_id], nearby.distance_km, atf, whole))
    return options
