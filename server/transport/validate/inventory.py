"""InventoryService's requests: the network, stock levels and availability."""

from __future__ import annotations

from collections.abc import Sequence

from omniroute.inventory.v1 import inventory_pb2 as inv

from server.domain import commands, nearby
from server.domain.history import MovementQuery
from server.domain.model import MAX_QUANTITY, Future, Location, LocationGroup, LocationType, Place
from server.domain.pickup_index import MAX_RADIUS_KM
from server.domain.routing import MAX_SHIPMENT_COST
from server.transport.validate.checker import MAX_POSTAL_CODE_LENGTH, Checker, page_after
from server.transport.validate.routing import postal_code_centroid

MAX_BATCH = 1000
MAX_GROUP_MEMBERS = 10_000
MAX_FUTURES = 10
MAX_EXCLUSIONS = 100
MAX_AVAILABILITY_SKUS = 100
MAX_AVAILABILITY_PLACES = 100
MAX_BASKET_LINES = 100


def locations(request: inv.UpsertLocationsRequest) -> list[Location]:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    result = []
    if check.count("locations", request.locations, MAX_BATCH):
        check.distinct("locations", [location.id for location in request.locations])
    for index, message in enumerate(request.locations):
        field = f"locations[{index}]"
        check.identifier(f"{field}.id", message.id)
        check.text(f"{field}.display_name", message.display_name)
        check.text(f"{field}.postal_code", message.postal_code, MAX_POSTAL_CODE_LENGTH)
        if message.type not in {t.value for t in LocationType}:
            check.fail(f"{field}.type", "INVALID_FIELD", "must be a known location type")
        if not message.HasField("position"):
            check.fail(f"{field}.position", "MISSING_FIELD", "latitude and longitude are required")
        else:
            check.coordinates(f"{field}.position", message.position)
        if message.country_code and not (
            len(message.country_code) == 2
            and message.country_code.isalpha()
            and message.country_code.isupper()
        ):
            check.fail(
                f"{field}.country_code", "INVALID_FIELD", "must be ISO 3166-1 alpha-2, e.g. US"
            )
        if not 0 <= message.shipment_cost <= MAX_SHIPMENT_COST:  # NaN fails every comparison
            check.fail(
                f"{field}.shipment_cost",
                "INVALID_FIELD",
                f"must be a number in [0, {MAX_SHIPMENT_COST:g}]",
            )
        if check.violations:
            continue
        result.append(
            Location(
                id=message.id,
                display_name=message.display_name,
                type=LocationType(message.type),
                latitude=message.position.latitude,
                longitude=message.position.longitude,
                postal_code=message.postal_code,
                country_code=message.country_code,
                ship_enabled=message.ship_enabled if message.HasField("ship_enabled") else True,
                shipment_cost=message.shipment_cost,
                priority=message.priority,
                pickup_enabled=message.pickup_enabled,
            )
        )
    check.done()
    return result


def location_groups(request: inv.UpsertLocationGroupsRequest) -> list[LocationGroup]:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    if check.count("location_groups", request.location_groups, MAX_BATCH):
        check.distinct("location_groups", [group.id for group in request.location_groups])
    for index, message in enumerate(request.location_groups):
        field = f"location_groups[{index}]"
        check.identifier(f"{field}.id", message.id)
        check.text(f"{field}.display_name", message.display_name)
        if check.count(f"{field}.location_ids", message.location_ids, MAX_GROUP_MEMBERS, minimum=0):
            check.distinct(f"{field}.location_ids", list(message.location_ids))
        for member, location_id in enumerate(message.location_ids):
            check.identifier(f"{field}.location_ids[{member}]", location_id)
    check.done()
    return [
        LocationGroup(
            message.id,
            message.display_name,
            tuple(message.location_ids),
            message.enabled if message.HasField("enabled") else True,
        )
        for message in request.location_groups
    ]


def stock_futures(check: Checker, field: str, messages: Sequence[inv.Future]) -> tuple[Future, ...]:
    check.count(field, messages, MAX_FUTURES, minimum=0)
    futures = []
    for index, future in enumerate(messages):
        check.quantity(f"{field}[{index}].quantity", future.quantity)
        expected = (
            check.timestamp(f"{field}[{index}].expected_time", future.expected_time)
            if future.HasField("expected_time")
            else None
        )
        futures.append(Future(future.quantity, expected))
    if sum(future.quantity for future in messages) > MAX_QUANTITY:
        check.fail(field, "QUANTITY_TOO_LARGE", f"futures must total at most {MAX_QUANTITY}")
    return tuple(futures)


def stock_levels(request: inv.SetStockRequest) -> list[commands.StockLevel]:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    if check.count("levels", request.levels, MAX_BATCH):
        check.distinct("levels", [(level.location_id, level.sku) for level in request.levels])
    result = []
    for index, level in enumerate(request.levels):
        field = f"levels[{index}]"
        check.identifier(f"{field}.location_id", level.location_id)
        check.identifier(f"{field}.sku", level.sku)
        check.quantity(f"{field}.on_hand", level.on_hand, positive=False)
        check.quantity(f"{field}.safety_stock", level.safety_stock, positive=False)
        futures = stock_futures(check, f"{field}.futures", level.futures)
        excluded = f"{field}.excluded_from.location_group_ids"
        group_ids = level.excluded_from.location_group_ids
        if check.count(excluded, group_ids, MAX_EXCLUSIONS, minimum=0):
            check.distinct(excluded, list(group_ids))
        for member, group_id in enumerate(group_ids):
            check.identifier(f"{excluded}[{member}]", group_id)
        result.append(
            commands.StockLevel(
                level.location_id,
                level.sku,
                level.on_hand,
                level.safety_stock,
                futures,
                (
                    check.timestamp(f"{field}.effective_time", level.effective_time)
                    if level.HasField("effective_time")
                    else None
                ),
                frozenset(group_ids) if level.HasField("excluded_from") else None,
            )
        )
    check.done()
    return result


def stock_adjustments(request: inv.AdjustStockRequest) -> list[commands.StockAdjustment]:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    if check.count("adjustments", request.adjustments, MAX_BATCH):
        check.distinct(
            "adjustments", [(item.location_id, item.sku) for item in request.adjustments]
        )
    for index, item in enumerate(request.adjustments):
        field = f"adjustments[{index}]"
        check.identifier(f"{field}.location_id", item.location_id)
        check.identifier(f"{field}.sku", item.sku)
        check.quantity(f"{field}.on_hand_delta", abs(item.on_hand_delta))
        check.text(f"{field}.reason", item.reason)
    check.done()
    return [
        commands.StockAdjustment(item.location_id, item.sku, item.on_hand_delta, item.reason)
        for item in request.adjustments
    ]


def availability(request: inv.GetAvailabilityRequest) -> tuple[list[str], list[Place]]:
    check = Checker()
    if check.count("skus", request.skus, MAX_AVAILABILITY_SKUS):
        check.distinct("skus", list(request.skus))
    for index, sku in enumerate(request.skus):
        check.identifier(f"skus[{index}]", sku)
    places = [Place.location(i) for i in request.location_ids] + [
        Place.group(i) for i in request.location_group_ids
    ]
    if check.count("location_ids", places, MAX_AVAILABILITY_PLACES):
        check.distinct("location_ids", list(request.location_ids))
        check.distinct("location_group_ids", list(request.location_group_ids))
    for index, location_id in enumerate(request.location_ids):
        check.identifier(f"location_ids[{index}]", location_id)
    for index, group_id in enumerate(request.location_group_ids):
        check.identifier(f"location_group_ids[{index}]", group_id)
    check.done()
    return list(request.skus), places


def nearby_query(request: inv.FindNearbyAvailabilityRequest) -> nearby.NearbyQuery:
    check = Checker()
    origin = request.WhichOneof("origin")
    latitude, longitude = 0.0, 0.0
    if origin == "position":
        check.coordinates("position", request.position)
        latitude, longitude = request.position.latitude, request.position.longitude
    elif origin == "postal_code":
        latitude, longitude = postal_code_centroid(check, "postal_code", request.postal_code)
    else:
        check.fail("origin", "MISSING_FIELD", "set position or postal_code")
    radius_km = request.radius_km if request.HasField("radius_km") else None
    if radius_km is not None and not 0 < radius_km <= MAX_RADIUS_KM:  # NaN fails too
        check.fail("radius_km", "INVALID_FIELD", f"must be a number in (0, {MAX_RADIUS_KM:g}]")
    if not 0 <= request.max_locations <= nearby.MAX_LOCATIONS:
        check.fail(
            "max_locations", "INVALID_FIELD", f"must be between 0 and {nearby.MAX_LOCATIONS}"
        )
    if check.count("lines", request.lines, MAX_BASKET_LINES):
        check.distinct("lines", [line.sku for line in request.lines])
    for index, line in enumerate(request.lines):
        check.identifier(f"lines[{index}].sku", line.sku)
        check.quantity(f"lines[{index}].quantity", line.quantity)
    if request.location_group_id:
        check.identifier("location_group_id", request.location_group_id)
    check.done()
    return nearby.NearbyQuery(
        latitude=latitude,
        longitude=longitude,
        basket=tuple((line.sku, line.quantity) for line in request.lines),
        max_locations=request.max_locations or nearby.DEFAULT_LOCATIONS,
        radius_km=radius_km,
        group_id=request.location_group_id,
    )


def page(request: inv.ListLocationsRequest | inv.ListLocationGroupsRequest) -> tuple[int, str]:
    """(page size, id to continue after) of a list request."""
    check = Checker()
    size, token = check.page(request.page_size, request.page_token)
    after = page_after(check, token)
    check.done()
    return size, after


def movement_query(request: inv.ListStockMovementsRequest) -> MovementQuery:
    check = Checker()
    if request.sku:
        check.identifier("sku", request.sku)
    place = check.place("place", request.place) if request.HasField("place") else None
    start = (
        check.timestamp("start_time", request.start_time)
        if request.HasField("start_time")
        else None
    )
    end = check.timestamp("end_time", request.end_time) if request.HasField("end_time") else None
    if start is not None and end is not None and start > end:
        check.fail("end_time", "INVALID_FIELD", "must not be before start_time")
    size, token = check.page(request.page_size, request.page_token)
    after = page_after(check, token)
    if after and not after.isdigit():
        check.fail("page_token", "INVALID_FIELD", "is not a token this service issued")
    check.done()
    return MovementQuery(request.sku, place, start, end, size, int(after or 0))


def deleted_ids(check: Checker, field: str, ids: Sequence[str]) -> list[str]:
    if check.count(field, ids, MAX_BATCH):
        check.distinct(field, list(ids))
    for index, identifier in enumerate(ids):
        check.identifier(f"{field}[{index}]", identifier)
    return list(ids)


def deleted_locations(request: inv.DeleteLocationsRequest) -> list[str]:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    ids = deleted_ids(check, "location_ids", request.location_ids)
    check.done()
    return ids


def deleted_groups(request: inv.DeleteLocationGroupsRequest) -> list[str]:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    ids = deleted_ids(check, "location_group_ids", request.location_group_ids)
    check.done()
    return ids


def deleted_stock(request: inv.DeleteStockRequest) -> list[tuple[str, str]]:
    """(sku, location id) of each record to delete."""
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    if check.count("records", request.records, MAX_BATCH):
        check.distinct("records", [(key.location_id, key.sku) for key in request.records])
    for index, key in enumerate(request.records):
        check.identifier(f"records[{index}].location_id", key.location_id)
        check.identifier(f"records[{index}].sku", key.sku)
    check.done()
    return [(key.sku, key.location_id) for key in request.records]
