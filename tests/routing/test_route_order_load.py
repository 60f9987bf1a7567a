"""RouteOrder under load and tight deadlines, through the real server: long solves run on their
own bounded pool and never hold back reservations, and a tight deadline still gets a plan."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2_grpc, reservation_pb2_grpc
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt
from omniroute.routing.v1 import routing_pb2_grpc

from tests.routing.network import publish_scattered, scattered_order
from tests.support import at, failure, item
from tests.support.process import ServerProcess

LOCATIONS, SKUS = 1000, 60
"""Sixty-line orders over these need five shipments, which the solver cannot prove in seconds."""


@pytest.fixture
def busy_server(postgres_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """PostgreSQL, one ledger thread, one solve thread and one queued solve: one long solve
    would hold every ledger transaction if they shared a pool."""
    flags = ("--pool-size", "2", "--workers", "1", "--solve-workers", "1", "--solve-queue", "1")
    with ServerProcess(postgres_dsn, *flags, log_dir=tmp_path) as server:
        yield server


def _reserve_seconds(reservations, places: list[tuple[str, str]]) -> list[float]:
    """Latency of one one-unit CreateReservation at each (location, SKU)."""
    seconds = []
    for site, sku in places:
        began = time.perf_counter()
        reservations.CreateReservation(
            res.CreateReservationRequest(items=[item(sku, at(site), 1)]), timeout=30
        )
        seconds.append(time.perf_counter() - began)
    return seconds


def test_long_solves_leave_reservations_about_as_fast_as_idle_and_extra_orders_are_refused(
    busy_server: ServerProcess,
):
    with grpc.insecure_channel(busy_server.target) as channel:
        inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
        reservations = reservation_pb2_grpc.ReservationServiceStub(channel)
        routing = routing_pb2_grpc.RoutingServiceStub(channel)
        stocked = sorted(publish_scattered(inventory, LOCATIONS, SKUS))
        idle = statistics.median(_reserve_seconds(reservations, stocked[:15]))

        long_orders = [
            routing.RouteOrder.future(scattered_order(f"long-{n}", SKUS, 4.0), timeout=60)
            for n in range(2)  # one solving, one queued: the solve pool is full
        ]
        refused, waited = None, time.monotonic()
        while refused is None and time.monotonic() - waited < 10:
            began = time.perf_counter()
            try:
                routing.RouteOrder(scattered_order("extra", 1, 0.1), timeout=30)
            except grpc.RpcError as error:
                refused, refusal_s = failure(error), time.perf_counter() - began
        busy = statistics.median(_reserve_seconds(reservations, stocked[15:30]))
        still_solving = [not future.done() for future in long_orders]
        plans = [future.result() for future in long_orders]

    assert refused is not None, "a third RouteOrder was never refused"
    assert (refused.code, refused.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "ROUTING_BUSY")
    assert refusal_s < 1.0
    assert all(still_solving), "the long solves ended before reservations were timed"
    assert busy <= 10 * idle + 0.25, f"CreateReservation p50 idle {idle:.3f} s, busy {busy:.3f} s"
    assert all(len(plan.plan.shipments) > 0 for plan in plans)


def test_a_deadline_shorter_than_the_time_limit_still_returns_and_commits_the_best_plan_found(
    inventory, reservations, routing
):
    publish_scattered(inventory, LOCATIONS, SKUS)

    dry_run = routing.RouteOrder(scattered_order("dry-run", SKUS, 30.0), timeout=1.0)
    reserved = routing.RouteOrder(
        scattered_order("reserved", SKUS, 30.0, commit=rt.COMMIT_MODE_RESERVE), timeout=1.5
    )

    for routed in (dry_run, reserved):
        assert routed.plan.shipments
        assert not routed.plan.unrouted
        assert not routed.plan.proven_optimal
    held = reservations.GetReservation(res.GetReservationRequest(reservation_id="reserved"))
    assert {line.place.location_id for line in held.reservation.lines} == {
        shipment.location_id for shipment in reserved.plan.shipments
    }
