"""Wiring: the gRPC server with its services, health and reflection, and graceful stop.

The server is grpc.aio, on an event loop of its own thread. Servicers are coroutines: on SQLite
the ledger's units of work run on the loop itself (`SqliteStore` says why), with no
thread switch per call; every PostgreSQL unit of work runs on `workers`
threads, and RouteOrder's solves on a bounded pool of their own (`solve_workers` threads,
`solve_queue` waiting), so that long solves never hold back ledger transactions
(docs/performance.md has the measurements)."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from server.domain import routing
from server.domain.ledger import Ledger
from server.domain.port import Store
from server.domain.route_order import SolvePool
from server.feed import ChangeFeed
from server.sweeper import (
    CHANGE_LOG_RETENTION_S,
    HISTORY_RETENTION_S,
    REQUEST_ID_RETENTION_S,
    Sweeper,
)
from server.transport import handlers, reflection, tracing
from server.transport.api_keys import ApiKeyServicer
from server.transport.auth import Auth, KeyRing
from server.transport.bulk import BulkServicer
from server.transport.feed import AvailabilityFeedServicer
from server.transport.inventory import InventoryServicer
from server.transport.reservation import ReservationServicer
from server.transport.routing import RoutingServicer
from server.transport.services import (
    API_KEYS,
    BULK,
    FEED,
    INVENTORY,
    RESERVATIONS,
    ROUTING,
    SERVICE_NAMES,
)
from server.transport.telemetry import Sink, Telemetry
from server.transport.tls import ServerTls
from server.transport.transactions import Transactions

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Replies stay under this (list pages end early, server/transport/paging.py); requests may be
allowed more with `max_request_bytes`."""


@dataclass
class Running:
    """A started omniroute server."""

    port: int
    store: Store
    sweeper: Sweeper
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    loop: asyncio.AbstractEventLoop
    loop_thread: threading.Thread
    workers: ThreadPoolExecutor
    solves: SolvePool
    keys: KeyRing
    changes: ChangeFeed

    def stop(self, grace_s: float = 10.0) -> None:
        """Reports NOT_SERVING first, lets in-flight calls finish within `grace_s`, then
        closes the store."""
        asyncio.run_coroutine_threadsafe(self._stop_serving(grace_s), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.loop_thread.join()
        self.loop.close()
        self.workers.shutdown(wait=True)
        self.solves.shutdown()  # a solve past the grace period ends within its limit
        self.sweeper.stop()
        self.store.close()

    async def _stop_serving(self, grace_s: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        await self.keys.stop()
        await self.changes.stop()


def start_server(
    address: str,
    store: Store,
    *,
    ledger: Ledger | None = None,
    workers: int = 16,
    solve_workers: int = 2,
    solve_queue: int = 8,
    sweep_interval_s: float = 0.5,
    max_concurrent_rpcs: int | None = None,
    tls: ServerTls | None = None,
    telemetry: Sequence[Sink] = (),
    max_request_bytes: int = MAX_MESSAGE_BYTES,
    request_id_retention_s: float = REQUEST_ID_RETENTION_S,
    change_log_retention_s: float = CHANGE_LOG_RETENTION_S,
    history_retention_s: float = HISTORY_RETENTION_S,
    tracer_provider: TracerProvider | None = None,
    require_auth: bool = False,
    reflection_on: bool = True,
) -> Running:
    """Binds `address` (port 0 picks a free port), starts serving and returns the handle.
    Beyond `max_concurrent_rpcs` RPCs at once (None: no bound), grpc refuses a call at once with
    RESOURCE_EXHAUSTED rather than queue it: an overloaded server sheds load instead of growing
    its queue, and every latency with it. Without `tls` the port is plaintext. Every unary RPC
    is reported to each of `telemetry` (the access log, the metrics). A request_id is
    answered from memory for `request_id_retention_s`, then forgotten; the change log keeps
    `change_log_retention_s` and the stock movements `history_retention_s`. With `tracer_provider`
    every RPC is traced. Every RPC but health and reflection (served only with
    `reflection_on`) needs an API key once a key exists or with `require_auth`."""
    ledger = ledger or Ledger()
    loop = asyncio.new_event_loop()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc")
    loop.set_default_executor(pool)
    solves = SolvePool(solve_workers, solve_queue)
    loop_thread = threading.Thread(target=loop.run_forever, name="grpc-loop", daemon=True)
    loop_thread.start()
    try:
        server, port, health_servicer, keys, changes = asyncio.run_coroutine_threadsafe(
            _serve(
                address,
                store,
                ledger,
                solves,
                max_concurrent_rpcs,
                tls,
                telemetry,
                max_request_bytes,
                tracer_provider,
                require_auth,
                reflection_on,
            ),
            loop,
        ).result()
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join()
        loop.close()
        pool.shutdown()
        solves.shutdown()
        raise
    sweeper = Sweeper(
        store,
        ledger,
        sweep_interval_s,
        int(request_id_retention_s * 1e6),
        int(change_log_retention_s * 1e6),
        int(history_retention_s * 1e6),
    )
    sweeper.start()
    log.info("omniroute serving on port %d", port)
    return Running(
        port,
        store,
        sweeper,
        server,
        health_servicer,
        loop,
        loop_thread,
        pool,
        solves,
        keys,
        changes,
    )


async def _serve(
    address: str,
    store: Store,
    ledger: Ledger,
    solves: SolvePool,
    max_concurrent_rpcs: int | None,
    tls: ServerTls | None,
    telemetry: Sequence[Sink],
    max_request_bytes: int,
    tracer_provider: TracerProvider | None,
    require_auth: bool,
    reflection_on: bool,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer, KeyRing, ChangeFeed]:
    transactions = Transactions(store, ledger.clock)
    changes = ChangeFeed(transactions)
    transactions.committed = changes.committed
    keys = KeyRing(transactions, ledger.clock, required=require_auth)
    await keys.refresh()  # a server never starts open while its deployment has keys
    open_services = (health.SERVICE_NAME, *(reflection.SERVICE_NAMES if reflection_on else ()))
    server = grpc.aio.server(
        interceptors=[
            *([tracing.server_interceptor(tracer_provider)] if tracer_provider else []),
            *([Telemetry(telemetry)] if telemetry else []),
            Auth(keys, open_services),
        ],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # gRPC shares a port with another process by default: a second server on a port
            # already served would start silently and split the traffic (and, on SQLite, the
            # file). Binding such a port fails instead.
            ("grpc.so_reuseport", 0),
        ],
    )
    for service, servicer in (
        (INVENTORY, InventoryServicer(transactions, ledger)),
        (FEED, AvailabilityFeedServicer(transactions, ledger, changes)),
        (RESERVATIONS, ReservationServicer(transactions, ledger)),
        (ROUTING, RoutingServicer(transactions, ledger, solves)),
        (API_KEYS, ApiKeyServicer(transactions, keys, ledger.clock)),
        (BULK, BulkServicer(transactions, ledger)),
    ):
        handlers.add_servicer(server, service, servicer)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflection_on:
        reflection.enable(server, (*SERVICE_NAMES, health.SERVICE_NAME))
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls.credentials())
    except RuntimeError as error:  # grpc's way of saying the bind failed
        raise OSError(f"cannot listen on {address}: it is in use or not available") from error
    if port == 0:
        raise OSError(f"cannot listen on {address}: it is in use or not available")
    # The offline ZIP table takes a second or two to load: do it now, not in the first order.
    threading.Thread(target=_load_postal_codes, daemon=True).start()
    await changes.start()
    await server.start()
    keys.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer, keys, changes


def _load_postal_codes() -> None:
    """Loads the offline ZIP table, then hides everything alive from the cyclic garbage
    collector (gc.freeze): its full passes scan every tracked object while holding the GIL,
    the postal-code package's data is most of them, and each pass stalled the event loop
    (docs/performance.md)."""
    routing.postal_code_centroid("US", "00000")
    gc.collect()
    gc.freeze()
