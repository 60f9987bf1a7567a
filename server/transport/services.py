"""The gRPC services omniroute serves, as their descriptors: registration, health, reflection
and request_id bookkeeping take every name from here."""

from __future__ import annotations

from omniroute.inventory.v1 import inventory_pb2, reservation_pb2
from omniroute.routing.v1 import routing_pb2

INVENTORY = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"]
RESERVATIONS = reservation_pb2.DESCRIPTOR.services_by_name["ReservationService"]
ROUTING = routing_pb2.DESCRIPTOR.services_by_name["RoutingService"]
SERVICES = (INVENTORY, RESERVATIONS, ROUTING)
SERVICE_NAMES = tuple(service.full_name for service in SERVICES)
