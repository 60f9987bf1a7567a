"""Orders racing for the same scarce stock through RouteOrder commits."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.inventory.v1 import reservation_pb2_grpc
from omniroute.routing.v1 import routing_pb2 as rt
from omniroute.routing.v1 import routing_pb2_grpc

from server.domain import route_order
from tests.routing.network import order, publish, shipped
from tests.support import at, at_group, availability, failure, item

STOCK = {
    "miami": {"jeans": 3},
    "orlando": {"jeans": 2},
    "tampa": {"jeans": 1},
    "nj-dc": {"jeans": 4},
}


def test_a_plan_made_stale_by_a_concurrent_order_is_solved_again(
    inventory, reservations, routing, monkeypatch
):
    publish(inventory, {"miami": {"jeans": 1}, "orlando": {"jeans": 1}})
    read_snapshot = route_order.read_snapshot
    interfered = threading.Event()

    def snapshot_then_lose_miami(*args, **kwargs):
        taken = read_snapshot(*args, **kwargs)
        if not interfered.is_set():  # another order takes Miami's only unit after our read
            interfered.set()
            reservations.CreateReservation(
                res.CreateReservationRequest(
                    reservation_id="rival", items=[item("jeans", at("miami"), 1)]
                )
            )
        return taken

    monkeypatch.setattr(route_order, "read_snapshot", snapshot_then_lose_miami)
    routed = routing.RouteOrder(order(("jeans", 1), commit=rt.COMMIT_MODE_RESERVE))

    assert routed.stats.attempts == 2
    assert shipped(routed.plan) == {"orlando": {"jeans": 1}}
    view = availability(inventory, ["jeans"], ["miami", "orlando"])
    assert (view[("miami", "jeans")].reserved, view[("orlando", "jeans")].reserved) == (1, 1)


def _race(
    port: int, worker: int, commit: int, reserve_first: bool
) -> list[tuple[str, dict[str, dict[str, int]]]]:
    """One client: route 1-2 unit orders until the stock runs out; returns what it committed."""
    committed = []
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        routing = routing_pb2_grpc.RoutingServiceStub(channel)
        reservations = reservation_pb2_grpc.ReservationServiceStub(channel)
        for number in range(20):
            order_id = f"order-{worker}-{number}"
            units = 1 + (worker + number) % 2
            if reserve_first:
                try:
                    reservations.CreateReservation(
                        res.CreateReservationRequest(
                            reservation_id=order_id,
                            items=[item("jeans", at_group("us-web"), units)],
                        ),
                        timeout=30,
                    )
                except grpc.RpcError as error:
                    assert failure(error).reason == "INSUFFICIENT_STOCK"
                    continue
            try:
                routed = routing.RouteOrder(
                    order(
                        ("jeans", units),
                        order_id=order_id,
                        reservation_id=order_id,
                        location_group_id="us-web",
                        commit=commit,
                    ),
                    timeout=30,
                )
            except grpc.RpcError as error:
                assert failure(error).reason in {"NO_ROUTE", "CONFLICT"}, failure(error)
                continue
            committed.append((order_id, shipped(routed.plan)))
    return committed


def _check_no_oversell(inventory, reservations, committed) -> None:
    total = Counter()
    for _, plan in committed:
        for location, lines in plan.items():
            total[location] += lines["jeans"]
    for location, stock in STOCK.items():
        assert total[location] <= stock["jeans"], location
    view = availability(inventory, ["jeans"], list(STOCK), ["us-web"])
    for location in STOCK:
        record = view[(location, "jeans")]
        assert record.reserved == total[location]
        assert record.reserved <= record.on_hand
    listed = reservations.ListReservations(res.ListReservationsRequest(page_size=1000)).reservations
    by_place = Counter()
    for reservation in listed:
        for line in reservation.lines:
            by_place[line.place.location_id or line.place.location_group_id] += line.open
    for location in STOCK:
        assert by_place[location] == total[location]


def test_racing_reserve_commits_never_oversell(inventory, reservations, omniroute):
    publish(inventory, STOCK)
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda w: _race(omniroute.port, w, rt.COMMIT_MODE_RESERVE, False), range(8))
        )
    committed = [entry for result in results for entry in result]
    _check_no_oversell(inventory, reservations, committed)
    assert sum(sum(lines["jeans"] for lines in plan.values()) for _, plan in committed) == 10


def test_racing_checkouts_then_transfers_never_oversell(inventory, reservations, omniroute):
    publish(inventory, STOCK)
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda w: _race(omniroute.port, w, rt.COMMIT_MODE_TRANSFER, True), range(8))
        )
    committed = [entry for result in results for entry in result]
    _check_no_oversell(inventory, reservations, committed)
    assert (
        availability(inventory, ["jeans"], [], ["us-web"])[("us-web", "jeans")].group_reserved == 0
    )
