"""Wiring: the gRPC server with its services, health and reflection, and graceful stop."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from omniroute.inventory.v1 import (
    inventory_pb2,
    inventory_pb2_grpc,
    reservation_pb2,
    reservation_pb2_grpc,
)
from omniroute.routing.v1 import routing_pb2, routing_pb2_grpc

from server.domain.ledger import Ledger
from server.storage.contract import Store
from server.sweeper import Sweeper
from server.transport.health import HealthServicer
from server.transport.inventory import InventoryServicer
from server.transport.reservation import ReservationServicer
from server.transport.routing import RoutingServicer
from solver import geo

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

SERVICE_NAMES = (
    inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name,
    reservation_pb2.DESCRIPTOR.services_by_name["ReservationService"].full_name,
    routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name,
)


@dataclass
class Running:
    """A started omniroute server."""

    server: grpc.Server
    port: int
    health: HealthServicer
    sweeper: Sweeper
    store: Store

    def stop(self, grace_s: float = 10.0) -> None:
        """Reports NOT_SERVING first, lets in-flight calls finish within `grace_s`, then
        closes the store."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        self.sweeper.stop()
        self.store.close()


def start_server(
    address: str,
    store: Store,
    *,
    ledger: Ledger | None = None,
    workers: int = 16,
    sweep_interval_s: float = 0.5,
) -> Running:
    """Binds `address` (port 0 picks a free port), starts serving and returns the handle."""
    ledger = ledger or Ledger()
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryServicer(store, ledger), server
    )
    reservation_pb2_grpc.add_ReservationServiceServicer_to_server(
        ReservationServicer(store, ledger), server
    )
    routing_pb2_grpc.add_RoutingServiceServicer_to_server(RoutingServicer(store, ledger), server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    sweeper = Sweeper(store, ledger, sweep_interval_s)
    # The offline ZIP table takes a second or two to load: do it now, not in the first order.
    threading.Thread(target=geo.postal_code_centroid, args=("US", "00000"), daemon=True).start()
    server.start()
    sweeper.start()
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("omniroute serving on port %d", port)
    return Running(server, port, health_servicer, sweeper, store)
