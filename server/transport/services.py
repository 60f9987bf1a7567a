"""The gRPC services omniroute serves, as their descriptors: registration, health, reflection,
roles and request_id bookkeeping take every name from here."""

from __future__ import annotations

from omniroute.admin.v1 import api_keys_pb2
from omniroute.inventory.v1 import availability_feed_pb2, bulk_pb2, inventory_pb2, reservation_pb2
from omniroute.routing.v1 import routing_pb2

INVENTORY = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"]
FEED = availability_feed_pb2.DESCRIPTOR.services_by_name["AvailabilityFeedService"]
RESERVATIONS = reservation_pb2.DESCRIPTOR.services_by_name["ReservationService"]
ROUTING = routing_pb2.DESCRIPTOR.services_by_name["RoutingService"]
API_KEYS = api_keys_pb2.DESCRIPTOR.services_by_name["ApiKeyService"]
BULK = bulk_pb2.DESCRIPTOR.services_by_name["BulkService"]
SERVICES = (INVENTORY, FEED, RESERVATIONS, ROUTING, API_KEYS, BULK)
SERVICE_NAMES = tuple(service.full_name for service in SERVICES)
