"""Domain results to protobuf messages."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import duration_pb2, timestamp_pb2
from omniroute.admin.v1 import api_keys_pb2 as ak
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt

from server.domain import commands, nearby, routing
from server.domain.access import ApiKey, Role
from server.domain.history import RecordedMovement
from server.domain.model import Future, Location, LocationGroup, Place, Reservation
from server.domain.route_order import Routed


def timestamp(us: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(**timestamp_fields(us))


def timestamp_fields(us: int) -> dict[str, int]:
    seconds, micros = divmod(us, 1_000_000)
    return {"seconds": seconds, "nanos": micros * 1000}


def place(value: Place) -> inv.Place:
    return inv.Place(**place_fields(value))


def place_fields(value: Place) -> dict[str, str]:
    return {"location_id" if value.is_location else "location_group_id": value.id}


def location(value: Location) -> inv.Location:
    return inv.Location(
        id=value.id,
        display_name=value.display_name,
        type=int(value.type),  # type: ignore[arg-type]
        position=inv.GeoPoint(latitude=value.latitude, longitude=value.longitude),
        postal_code=value.postal_code,
        country_code=value.country_code,
        ship_enabled=value.ship_enabled,
        shipment_cost=value.shipment_cost,
        priority=value.priority,
        pickup_enabled=value.pickup_enabled,
    )


def location_group(value: LocationGroup) -> inv.LocationGroup:
    return inv.LocationGroup(
        id=value.id,
        display_name=value.display_name,
        location_ids=list(value.location_ids),
        enabled=value.enabled,
    )


def future(value: Future) -> inv.Future:
    message = inv.Future(quantity=value.quantity)
    if value.expected_us is not None:
        message.expected_time.CopyFrom(timestamp(value.expected_us))
    return message


def stock_update(value: commands.StockUpdateResult) -> inv.StockUpdateResult:
    return inv.StockUpdateResult(
        location_id=value.location_id,
        sku=value.sku,
        outcome=(
            inv.STOCK_UPDATE_OUTCOME_APPLIED
            if value.applied
            else inv.STOCK_UPDATE_OUTCOME_SKIPPED_STALE
        ),
        stored_effective_time=timestamp(value.stored_effective_us),
    )


def adjustment(value: commands.AdjustmentResult) -> inv.AdjustmentResult:
    return inv.AdjustmentResult(
        location_id=value.location_id,
        sku=value.sku,
        on_hand=value.on_hand,
        applied_delta=value.applied_delta,
    )


def availability_response(values: list[commands.Availability]) -> inv.GetAvailabilityResponse:
    """Records are built in place (`records.add`) field by field, and zeros (proto3 defaults)
    are left unset: keyword arguments and messages built apart cost more, and a reply may hold
    10,000 records."""
    response = inv.GetAvailabilityResponse()
    add = response.records.add
    for value in values:
        record = add()
        if value.place.is_location:
            record.place.location_id = value.place.id
        else:
            record.place.location_group_id = value.place.id
        record.sku = value.sku
        record.exists = value.exists
        record.on_hand = value.on_hand
        if value.reserved:
            record.reserved = value.reserved
        if value.group_reserved:
            record.group_reserved = value.group_reserved
        if value.safety_stock:
            record.safety_stock = value.safety_stock
        if value.futures:
            record.futures.extend(future(item) for item in value.futures)
        if value.futures_total:
            record.futures_total = value.futures_total
        record.available_to_fulfill = value.available_to_fulfill
        record.available_to_order = value.available_to_order
        if value.effective_us is not None:
            seconds, micros = divmod(value.effective_us, 1_000_000)
            record.effective_time.seconds = seconds
            record.effective_time.nanos = micros * 1000
    return response


def nearby_response(
    query: nearby.NearbyQuery, options: list[nearby.PickupOption]
) -> inv.FindNearbyAvailabilityResponse:
    return inv.FindNearbyAvailabilityResponse(
        locations=[
            inv.NearbyLocation(
                location=location(option.location),
                distance_km=option.distance_km,
                lines=[
                    inv.BasketLineAvailability(sku=sku, quantity=units, available_to_fulfill=atf)
                    for (sku, units), atf in zip(
                        query.basket, option.available_to_fulfill, strict=True
                    )
                ],
                has_whole_basket=option.has_whole_basket,
            )
            for option in options
        ],
        origin=inv.GeoPoint(latitude=query.latitude, longitude=query.longitude),
    )


def reservation(value: Reservation) -> res.Reservation:
    message = res.Reservation(
        id=value.id,
        external_ref=value.external_ref,
        state=int(value.state),  # type: ignore[arg-type]
        lines=[
            res.ReservationLine(
                sku=line.sku,
                place=place(line.place),
                quantity=line.quantity,
                fulfilled=line.fulfilled,
                released=line.released,
                transferred_out=line.transferred_out,
                open=line.open,
            )
            for line in value.sorted_lines()
        ],
        create_time=timestamp(value.create_us),
        update_time=timestamp(value.update_us),
    )
    if value.expire_us is not None:
        message.expire_time.CopyFrom(timestamp(value.expire_us))
    return message


def reserved_item(value: commands.ReservedItem) -> res.ReservedItem:
    return res.ReservedItem(
        sku=value.sku, place=place(value.place), requested=value.requested, reserved=value.reserved
    )


def route_order_response(order: routing.Order, routed: Routed) -> rt.RouteOrderResponse:
    """A routed order's answer, without the reservation a commit adds."""
    costs = {location.id: location.shipment_cost for location in routed.candidates}
    return rt.RouteOrderResponse(
        plan=plan(routed.plan, order, costs),
        alternatives=[plan(x, order, costs) for x in routed.plan.alternatives],
        stats=rt.SolveStats(
            candidates=len(routed.candidates),
            method=routed.plan.method,
            solve_time=duration(routed.solve_time_s),
            attempts=routed.attempt,
        ),
    )


def duration(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))


def plan(value: routing.Plan, order: routing.Order, shipment_cost: Mapping[str, float]) -> rt.Plan:
    """A plan as the API shows it; costs only under the cost objective."""
    by_cost = order.options.objective is routing.Objective.COST
    shipments = [
        rt.Shipment(
            location_id=shipment.location_id,
            lines=[
                rt.ShipmentLine(sku=sku, quantity=units)
                for sku, units in shipment.units.items()
                if units
            ],
            distance_km=shipment.distance_km,
            cost=(
                shipment_cost[shipment.location_id]
                + order.options.cost_per_km * shipment.distance_km
                if by_cost
                else 0.0
            ),
        )
        for shipment in sorted(value.shipments, key=lambda s: (s.distance_km, s.location_id))
    ]
    return rt.Plan(
        shipments=shipments,
        shipment_count=len(shipments),
        total_distance_km=value.total_distance_km,
        total_cost=sum(shipment.cost for shipment in shipments),
        unrouted=[
            rt.OrderLine(sku=sku, quantity=units) for sku, units in value.unrouted.items() if units
        ],
        proven_optimal=value.proven_optimal,
    )


ROLES = {
    Role.STOREFRONT: ak.ROLE_STOREFRONT,
    Role.ORDER_SYSTEM: ak.ROLE_ORDER_SYSTEM,
    Role.INVENTORY: ak.ROLE_INVENTORY,
    Role.ADMIN: ak.ROLE_ADMIN,
}


def api_key(value: ApiKey) -> ak.ApiKey:
    message = ak.ApiKey(
        id=value.id,
        role=ROLES[value.role],
        tenant=value.tenant,
        description=value.description,
        create_time=timestamp(value.created_us),
    )
    for field, us in (
        ("expire_time", value.expires_us),
        ("revoke_time", value.revoked_us),
        ("last_use_time", value.last_used_us),
    ):
        if us is not None:
            getattr(message, field).CopyFrom(timestamp(us))
    return message


def stock_movement(value: RecordedMovement) -> inv.StockMovement:
    movement = value.movement
    return inv.StockMovement(
        sequence=value.seq,
        time=timestamp(value.at_us),
        kind=int(movement.kind),  # type: ignore[arg-type]
        sku=movement.sku,
        place=place(movement.place),
        on_hand_delta=movement.on_hand_delta,
        reserved_delta=movement.reserved_delta,
        on_hand=movement.on_hand,
        safety_stock=movement.safety_stock,
        futures_total=movement.futures_total,
        reserved=movement.reserved,
        reservation_id=movement.reservation_id,
        reason=movement.reason,
        rpc=value.cause.rpc,
        request_id=value.cause.request_id,
        api_key_id=value.cause.key_id,
    )
