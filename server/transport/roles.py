"""Which roles may call which RPC: the one table the auth interceptor reads (docs/api.md shows
it to users). An RPC named nowhere here is refused to every key, admin's included, and fails
tests/api/test_auth.py until it is given its roles."""

from __future__ import annotations

from server.domain.access import Role
from server.transport.services import API_KEYS, BULK, FEED, INVENTORY, RESERVATIONS, ROUTING


def _rpc(service_and_method: str) -> str:
    """The gRPC method path of "Service.Method"."""
    service, _, method = service_and_method.partition(".")
    descriptor = {s.name: s for s in (INVENTORY, FEED, RESERVATIONS, ROUTING, API_KEYS, BULK)}[
        service
    ]
    return f"/{descriptor.full_name}/{descriptor.methods_by_name[method].name}"


_AVAILABILITY = {
    _rpc("InventoryService.GetAvailability"),
    _rpc("InventoryService.FindNearbyAvailability"),
    _rpc("AvailabilityFeedService.WatchAvailability"),
    _rpc("AvailabilityFeedService.ListAvailabilityChanges"),
}
_STOREFRONT = _AVAILABILITY | {
    _rpc("ReservationService.CreateReservation"),
    _rpc("ReservationService.GetReservation"),
    _rpc("ReservationService.ReleaseReservation"),
    _rpc("ReservationService.UpdateReservation"),
    _rpc("ReservationService.BatchCreateReservations"),
    _rpc("ReservationService.BatchReleaseReservations"),
}
_ORDER_SYSTEM = _STOREFRONT | {
    _rpc("RoutingService.RouteOrder"),
    _rpc("ReservationService.TransferReservation"),
    _rpc("ReservationService.FulfillReservation"),
    _rpc("ReservationService.BatchTransferReservations"),
    _rpc("ReservationService.BatchFulfillReservations"),
    _rpc("ReservationService.ListReservations"),
}
_INVENTORY = _AVAILABILITY | {
    _rpc("InventoryService.UpsertLocations"),
    _rpc("InventoryService.ListLocations"),
    _rpc("InventoryService.UpsertLocationGroups"),
    _rpc("InventoryService.ListLocationGroups"),
    _rpc("InventoryService.SetStock"),
    _rpc("InventoryService.AdjustStock"),
    _rpc("InventoryService.ListStockMovements"),
    _rpc("InventoryService.DeleteLocations"),
    _rpc("InventoryService.DeleteLocationGroups"),
    _rpc("InventoryService.DeleteStock"),
    # Bulk data is the back office's: an export holds every store's stock and every order's
    # reservation, more than a storefront or an order system needs at once.
    _rpc("BulkService.ImportStock"),
    _rpc("BulkService.ExportStock"),
    _rpc("BulkService.ExportAvailability"),
    _rpc("BulkService.ExportReservations"),
}
_ADMIN_ONLY = {
    _rpc("ApiKeyService.CreateApiKey"),
    _rpc("ApiKeyService.ListApiKeys"),
    _rpc("ApiKeyService.RevokeApiKey"),
}

RPCS_OF_ROLE: dict[Role, frozenset[str]] = {
    Role.STOREFRONT: frozenset(_STOREFRONT),
    Role.ORDER_SYSTEM: frozenset(_ORDER_SYSTEM),
    Role.INVENTORY: frozenset(_INVENTORY),
    Role.ADMIN: frozenset(_ORDER_SYSTEM | _INVENTORY | _ADMIN_ONLY),
}

ROLES_OF_RPC: dict[str, frozenset[Role]] = {
    rpc: frozenset(role for role, rpcs in RPCS_OF_ROLE.items() if rpc in rpcs)
    for rpc in RPCS_OF_ROLE[Role.ADMIN]
}
"""Per gRPC method path ("/package.Service/Method"), the roles that may call it."""
