"""RouteOrder end to end over the real gRPC server, next to the same solve in-process.

One server (`python -m server`, fresh SQLite file) holds a network of 3,251 locations at distinct
real US ZIP centroids, groups `g100`, `g1000` (the first 100 and 1,000 of them) and `g3251` (all),
and a catalog of SKUs with
sparse stock: each location stocks each SKU with probability 0.2, 1-5 units, so that a typical
5-line order needs 1-3 locations (the run reports the distribution it got). Orders: 5 distinct
SKUs, 1-2 units each, shipped to another real ZIP centroid; a fixed seeded pool per group.

For each group size over gRPC (100 and 1,000 candidates by default, --sizes):

  unloaded, one caller (this process, sequential, interleaved per order):
    GetAvailability  the order's 5 SKUs x every candidate location; at 1,000 candidates this is
                     over the 100-places limit of one call, so it is 10 calls of 100 places,
                     back to back, timed together (one "GetAvailability" figure = all 10)
    RouteOrder       dry run, the same order, the group as candidate scope
    solve            the same Problem built in-process from the ATF GetAvailability returned
                     (what the server reads for a dry run), `solver.solve` timed alone; the
                     build is timed apart. Every in-process plan is checked against the
                     server's (same shipment count and distance).
  under load (several client processes, closed loop; benchmarks/support/load.py):
    dry run          RouteOrder COMMIT_MODE_DRY_RUN with random orders of the pool
    transfer         per call: CreateReservation of the order at the group (untimed set-up),
                     RouteOrder COMMIT_MODE_TRANSFER of that reservation (the timed part; its
                     latency is the only one recorded), ReleaseReservation (untimed clean-up,
                     so the run never drains the stock). RPC/s counts RouteOrder calls, each
                     thread also spending time in the two untimed RPCs. Failures are counted
                     by code, prefixed with the RPC when it is a set-up or clean-up RPC.

In-process server breakdown, per cell of candidates x order lines (1,000 and 3,251 candidates x
5 and 100 lines by default, --breakdown; this process, the server's own code on its store file, no
gRPC): RoutingServicer's dry-run parts timed one by one (snapshot, problem, solve, convert) and the
whole servicer call, wall and thread CPU: where the server's time goes. Orders carry a time limit
(--breakdown-time-limit), so a 100-line solve that cannot be proven soon stops there.

Targets: dry-run RouteOrder p50 <= 2 x (in-process solve p50 + GetAvailability p50), judged on
the unloaded figures (like for like: one call at a time); the loaded p50 is shown too. In the
breakdown, p50 of snapshot + problem (the time outside the solve) <= the solve's p50 for 5-line
orders, and <= 20 ms for 100-line orders.

  .venv/bin/python benchmarks/routing_bench.py            # full run
  .venv/bin/python benchmarks/routing_bench.py --quick    # smoke run
  .venv/bin/python benchmarks/routing_bench.py --sizes= --scenarios=   # the breakdown alone

Run from another commit's worktree (`git worktree add /tmp/before <commit>`, this benchmarks/
folder copied there) to measure that commit's server with the same instances.

Writes benchmarks/results/routing.{json,md,png} (routing-quick.* with --quick). Not a test:
never run it from the test suite.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from google.protobuf import duration_pb2
from omniroute.inventory.v1 import (
    inventory_pb2,
    inventory_pb2_grpc,
    reservation_pb2,
    reservation_pb2_grpc,
)
from omniroute.routing.v1 import routing_pb2, routing_pb2_grpc
from support import (
    REPO,
    BenchParser,
    LoadResult,
    Measured,
    SyncServicer,
    Workload,
    cell,
    errors_cell,
    footer,
    header,
    listed,
    log,
    markdown_table,
    omniroute_server,
    plots,
    process_cpu_seconds,
    run_load,
    stock_network,
    summarise,
    text_table,
)

if TYPE_CHECKING:
    import solver

# solver (OR-Tools) and the ZIP table are imported where used, in this process only: client
# processes re-import this module at start and need neither.

TARGET_FACTOR = 2.0
SIZES = (100, 1000, 3251)
GRPC_SIZES = (100, 1000)
BREAKDOWN_CELLS = ((1000, 5), (1000, 100), (3251, 5), (3251, 100))
LONG_ORDER_LIMIT_MS = 20.0  # snapshot + problem p50 for 100-line orders
LONG_ORDER_LINES = 100
ORDER_LINES = 5
MAX_ORDER_UNITS = 2
CATALOG = 200
STOCK_PROBABILITY = 0.2
MAX_STOCK_UNITS = 5
AVAILABILITY_PAGE = 100  # places per GetAvailability call (validate.MAX_AVAILABILITY_PLACES)
TIMEOUT_S = 30.0
RESERVATION_TTL_S = 600
SEED = 4


def group_id(size: int) -> str:
    return f"g{size}"


# --- the network and the orders (seeded, built in the parent, shipped to clients) ------------


@dataclass(frozen=True)
class Site:
    id: str
    latitude: float
    longitude: float
    shipment_cost: float
    priority: int


@dataclass(frozen=True)
class Network:
    sites: tuple[Site, ...]
    skus: tuple[str, ...]
    stock: dict[tuple[str, str], int]  # (sku, location id) -> on hand
    groups: dict[str, tuple[str, ...]]  # group id -> member ids (sorted)
    zips: tuple[str, ...]  # ZIP of each site (for the report)


def make_network(locations: int, catalog: int, seed: int = SEED) -> Network:
    from solver_instances import us_zip_centroids  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    codes, points = us_zip_centroids()
    picked = rng.choice(len(codes), size=locations, replace=False)
    sites = tuple(
        Site(
            id=f"loc-{codes[row]}",
            latitude=float(points[row, 0]),
            longitude=float(points[row, 1]),
            shipment_cost=float(rng.integers(500, 1500)) / 100.0,
            priority=int(rng.integers(0, 10)),
        )
        for row in picked
    )
    skus = tuple(f"sku-{index:04d}" for index in range(catalog))
    stocked = rng.random((catalog, locations)) < STOCK_PROBABILITY
    units = rng.integers(1, MAX_STOCK_UNITS + 1, size=(catalog, locations))
    stock = {
        (skus[i], sites[j].id): int(units[i, j]) for i, j in zip(*np.nonzero(stocked), strict=True)
    }
    ids = [site.id for site in sites]
    groups = {group_id(size): tuple(sorted(ids[:size])) for size in SIZES if size <= locations}
    return Network(sites, skus, stock, groups, tuple(codes[row] for row in picked))


def make_orders(
    network: Network, size: int, count: int, line_count: int = ORDER_LINES, seed: int = SEED
) -> list[dict[str, Any]]:
    """`count` orders over group g<size>: `line_count` distinct SKUs the group holds enough of, 1-2
    units each, to a random US ZIP centroid. Plain values, so they pickle to the clients."""
    rng = np.random.default_rng(
        [seed, size] if line_count == ORDER_LINES else [seed, size, line_count]
    )
    members = set(network.groups[group_id(size)])
    from solver_instances import us_zip_centroids  # noqa: PLC0415

    held: Counter[str] = Counter()
    for (sku, location_id), units in network.stock.items():
        held[sku] += units if location_id in members else 0
    codes, points = us_zip_centroids()
    orders = []
    while len(orders) < count:
        skus = rng.choice(len(network.skus), size=line_count, replace=False)
        lines = [(network.skus[i], int(rng.integers(1, MAX_ORDER_UNITS + 1))) for i in sorted(skus)]
        if any(held[sku] < 4 * quantity for sku, quantity in lines):
            continue  # keep every order routable even with other orders in flight
        row = int(rng.integers(len(codes)))
        orders.append(
            {
                "id": f"order-{size}x{line_count}-{len(orders):04d}",
                "lines": lines,
                "destination": (float(points[row, 0]), float(points[row, 1])),
                "zip": codes[row],
            }
        )
    return orders


# --- requests ------------------------------------------------------------------------------


def route_request(
    order: dict[str, Any], group: str, commit: int, **fields: Any
) -> routing_pb2.RouteOrderRequest:
    lat, lon = order["destination"]
    return routing_pb2.RouteOrderRequest(
        order_id=fields.pop("order_id", order["id"]),
        lines=[routing_pb2.OrderLine(sku=sku, quantity=q) for sku, q in order["lines"]],
        destination=routing_pb2.Destination(
            position=inventory_pb2.GeoPoint(latitude=lat, longitude=lon)
        ),
        location_group_id=group,
        commit=commit,  # type: ignore[arg-type]
        **fields,
    )


def availability_pages(
    skus: list[str], location_ids: list[str]
) -> list[inventory_pb2.GetAvailabilityRequest]:
    return [
        inventory_pb2.GetAvailabilityRequest(
            skus=skus, location_ids=location_ids[start : start + AVAILABILITY_PAGE]
        )
        for start in range(0, len(location_ids), AVAILABILITY_PAGE)
    ]


# --- workloads: each runs in a client process, one callable per thread ------------------------


def dry_run_call(channel: grpc.Channel, params: dict[str, Any], rng: random.Random) -> Any:
    route = routing_pb2_grpc.RoutingServiceStub(channel).RouteOrder
    requests = [
        route_request(order, params["group"], routing_pb2.COMMIT_MODE_DRY_RUN)
        for order in params["orders"]
    ]
    return lambda: route(rng.choice(requests), timeout=TIMEOUT_S)


class _Code:
    def __init__(self, name: str) -> None:
        self.name = name


class StepFailed(grpc.RpcError):
    """An untimed set-up or clean-up RPC failed: counted as '<rpc>:<code>'."""

    def __init__(self, rpc: str, error: grpc.RpcError) -> None:
        super().__init__(f"{rpc}: {error}")
        self._code = _Code(f"{rpc}:{error.code().name}")  # type: ignore[attr-defined]

    def code(self) -> _Code:
        return self._code


def transfer_call(channel: grpc.Channel, params: dict[str, Any], rng: random.Random) -> Any:
    """Reserve at the group (untimed), RouteOrder TRANSFER (timed), release (untimed)."""
    reservations = reservation_pb2_grpc.ReservationServiceStub(channel)
    route = routing_pb2_grpc.RoutingServiceStub(channel).RouteOrder
    group = params["group"]
    at_group = inventory_pb2.Place(location_group_id=group)
    ttl = duration_pb2.Duration(seconds=RESERVATION_TTL_S)
    prefix = uuid.uuid4().hex[:12]
    counter = itertools.count()
    clock = time.perf_counter

    def call() -> Measured:
        order = rng.choice(params["orders"])
        reservation_id = f"r-{prefix}-{next(counter)}"
        try:
            reservations.CreateReservation(
                reservation_pb2.CreateReservationRequest(
                    reservation_id=reservation_id,
                    external_ref=order["id"],
                    items=[
                        reservation_pb2.ReservationItem(sku=sku, place=at_group, quantity=q)
                        for sku, q in order["lines"]
                    ],
                    ttl=ttl,
                    request_id=f"{reservation_id}-create",
                ),
                timeout=TIMEOUT_S,
            )
        except grpc.RpcError as error:
            raise StepFailed("CreateReservation", error) from error
        request = route_request(
            order,
            group,
            routing_pb2.COMMIT_MODE_TRANSFER,
            order_id=reservation_id,
            reservation_id=reservation_id,
            request_id=f"{reservation_id}-route",
        )
        began = clock()
        try:
            response = route(request, timeout=TIMEOUT_S)
            seconds = clock() - began
        finally:
            try:
                reservations.ReleaseReservation(
                    reservation_pb2.ReleaseReservationRequest(
                        reservation_id=reservation_id,
                        release_all=True,
                        request_id=f"{reservation_id}-release",
                    ),
                    timeout=TIMEOUT_S,
                )
            except grpc.RpcError as error:
                if sys.exc_info()[0] is None:  # do not hide RouteOrder's own failure
                    raise StepFailed("ReleaseReservation", error) from error
        return Measured(seconds, f"attempts={response.stats.attempts}")

    return call


# --- seeding through the API -------------------------------------------------------------------


def seed(address: str, network: Network) -> float:
    began = time.perf_counter()
    kinds = (inventory_pb2.LOCATION_TYPE_WAREHOUSE, inventory_pb2.LOCATION_TYPE_STORE)
    locations = [
        inventory_pb2.Location(
            id=site.id,
            display_name=site.id,
            type=kinds[index % 4 != 0],
            position=inventory_pb2.GeoPoint(latitude=site.latitude, longitude=site.longitude),
            postal_code=zip_code,
            country_code="US",
            shipment_cost=site.shipment_cost,
            priority=site.priority,
        )
        for index, (site, zip_code) in enumerate(zip(network.sites, network.zips, strict=True))
    ]
    groups = [
        inventory_pb2.LocationGroup(id=gid, display_name=gid, location_ids=members)
        for gid, members in network.groups.items()
    ]
    levels = [
        inventory_pb2.StockLevel(location_id=location_id, sku=sku, on_hand=units)
        for (sku, location_id), units in network.stock.items()
    ]
    with grpc.insecure_channel(address) as channel:
        stock_network(channel, locations, levels, groups)
    return time.perf_counter() - began


# --- unloaded: GetAvailability, RouteOrder and the in-process solve, one order at a time -------


def build_problem(
    order: dict[str, Any],
    atf: dict[tuple[str, str], int],
    candidates: list[str],
    sites: dict[str, Site],
) -> solver.Problem:
    """The Problem the server builds for a dry run (server/domain/routing.problem): ATF capped
    at the line quantity, only candidates that can ship something, in the group's id order."""
    import solver  # noqa: PLC0415

    quantity = dict(order["lines"])
    capped = {(sku, loc): min(units, quantity[sku]) for (sku, loc), units in atf.items() if units}
    useful = {loc for _, loc in capped}
    locations = [
        solver.Location(x.id, x.latitude, x.longitude, x.shipment_cost, x.priority)
        for x in (sites[location_id] for location_id in candidates)
        if x.id in useful
    ]
    return solver.Problem.build(
        lines=order["lines"], locations=locations, atf=capped, destination=order["destination"]
    )


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan")}
    array = np.asarray(values, dtype=np.float64)
    p50, p90, p99 = np.percentile(array, [50, 90, 99])
    return {
        "n": len(values),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(array.mean()),
        "max_ms": float(array.max()),
    }


def measure_unloaded(
    address: str,
    server_pid: int,
    network: Network,
    size: int,
    orders: list[dict[str, Any]],
    budget_s: float,
    min_samples: int,
    warmup: int = 3,
) -> dict[str, Any]:
    import solver  # noqa: PLC0415

    group = group_id(size)
    candidates = list(network.groups[group])
    sites = {site.id: site for site in network.sites}
    timings: dict[str, list[float]] = {
        "get_availability": [],
        "route_dry_run": [],
        "server_solve_time": [],
        "build": [],
        "solve": [],
    }
    # CPU seconds per kind of work, summed over the counted orders: the server process's (from
    # /proc, 10 ms ticks, fine in sum since the server does nothing else) and this process's.
    cpu: Counter[str] = Counter()
    shipments: Counter[int] = Counter()
    methods: Counter[str] = Counter()
    mismatches: list[str] = []
    clock = time.perf_counter
    with grpc.insecure_channel(address) as channel:
        get = inventory_pb2_grpc.InventoryServiceStub(channel).GetAvailability
        route = routing_pb2_grpc.RoutingServiceStub(channel).RouteOrder
        deadline = clock() + budget_s
        for index, order in enumerate(itertools.cycle(orders)):
            counted = index >= warmup
            if counted and index - warmup >= min_samples and clock() > deadline:
                break
            skus = [sku for sku, _ in order["lines"]]
            pages = availability_pages(skus, candidates)
            server_cpu = process_cpu_seconds(server_pid)
            began = clock()
            replies = [get(page, timeout=TIMEOUT_S) for page in pages]
            availability_s = clock() - began
            availability_cpu = process_cpu_seconds(server_pid) - server_cpu
            atf = {
                (record.sku, record.place.location_id): record.available_to_fulfill
                for reply in replies
                for record in reply.records
            }
            request = route_request(order, group, routing_pb2.COMMIT_MODE_DRY_RUN)
            server_cpu = process_cpu_seconds(server_pid)
            began = clock()
            response = route(request, timeout=TIMEOUT_S)
            route_s = clock() - began
            route_cpu = process_cpu_seconds(server_pid) - server_cpu
            began = clock()
            problem = build_problem(order, atf, candidates, sites)
            build_s = clock() - began
            began, own_cpu = clock(), time.process_time()
            plan = solver.solve(problem)
            solve_s, solve_cpu = clock() - began, time.process_time() - own_cpu
            if not counted:
                continue
            cpu["get_availability"] += availability_cpu
            cpu["route_dry_run"] += route_cpu
            cpu["solve"] += solve_cpu
            timings["get_availability"].append(availability_s * 1000)
            timings["route_dry_run"].append(route_s * 1000)
            stats = response.stats.solve_time
            timings["server_solve_time"].append(stats.seconds * 1000 + stats.nanos / 1e6)
            timings["build"].append(build_s * 1000)
            timings["solve"].append(solve_s * 1000)
            shipments[plan.shipment_count] += 1
            methods[plan.method] += 1
            server = response.plan
            if server.shipment_count != plan.shipment_count or not np.isclose(
                server.total_distance_km, plan.total_distance_km, atol=1e-3
            ):
                mismatches.append(
                    f"{order['id']}: server {server.shipment_count} shipments "
                    f"{server.total_distance_km:.3f} km, in-process {plan.shipment_count} "
                    f"{plan.total_distance_km:.3f} km"
                )
    summary = {name: percentiles(values) for name, values in timings.items()}
    for name, seconds in cpu.items():
        summary[name]["cpu_ms_per_call"] = 1000 * seconds / max(1, summary[name]["n"])
    return {
        **summary,
        "availability_calls_per_order": len(availability_pages(["x"], candidates)),
        "shipments_per_order": {str(k): v for k, v in sorted(shipments.items())},
        "solve_methods": dict(methods.most_common()),
        "plan_mismatches": mismatches,
    }


class _Context:
    """Just enough of grpc.aio.ServicerContext for RouteOrder called in-process (no deadline)."""

    def time_remaining(self) -> None:
        return None

    async def abort_with_status(self, status: Any) -> None:
        raise RuntimeError(f"{status.code}: {status.details}")


BREAKDOWN_PARTS = ("snapshot", "problem", "solve", "convert")


def measure_breakdown(
    store_path: Path,
    size: int,
    orders: list[dict[str, Any]],
    budget_s: float,
    min_orders: int,
    time_limit_s: float,
) -> dict[str, Any]:
    """Where the server's time goes, without gRPC: the server's own code in this process on the
    server's store file (read-only use; WAL lets it share the file), one order at a time. Parts
    of a dry run as RoutingServicer runs them, then the whole servicer call. Wall and CPU;
    "outside_solve" is snapshot + problem per order."""
    import solver  # noqa: PLC0415
    from server.domain import route_order, routing  # noqa: PLC0415
    from server.domain.ledger import Ledger  # noqa: PLC0415
    from server.storage.sqlite import SqliteStore  # noqa: PLC0415
    from server.transport import convert  # noqa: PLC0415
    from server.transport import routing as transport  # noqa: PLC0415
    from server.transport.transactions import Transactions, query  # noqa: PLC0415
    from server.transport.validate import routing as validate  # noqa: PLC0415

    store = SqliteStore(store_path)
    ledger = Ledger()
    solves = route_order.SolvePool(1, 1)
    servicer = SyncServicer(
        transport.RoutingServicer(Transactions(store, ledger.clock), ledger, solves)
    )
    names = (*BREAKDOWN_PARTS, "outside_solve", "servicer")
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: Counter[str] = Counter()
    clock, cpu_clock = time.perf_counter, time.thread_time
    limit = duration_pb2.Duration(seconds=int(time_limit_s), nanos=round(time_limit_s % 1 * 1e9))

    def timed(name: str, step: Any, *args: Any) -> Any:
        began, began_cpu = clock(), cpu_clock()
        value = step(*args)
        wall[name].append((clock() - began) * 1000)
        cpu[name] += cpu_clock() - began_cpu
        return value

    try:
        # This store's caches start empty, and a 100-line cell times only ~15 orders: read the
        # free stock of every SKU the orders use first, timed apart as the cold read, so the
        # parts are the server's steady state (its cache outlives any one order).
        skus = sorted({sku for item in orders for sku, _ in item["lines"]})
        began = clock()
        with store.read() as uow:
            uow.free_stock(skus)
        cold_read = {"skus": len(skus), "ms": (clock() - began) * 1000}
        deadline = clock() + budget_s
        for index, item in enumerate(orders):
            if index >= min_orders and clock() > deadline:
                break
            request = route_request(
                item,
                group_id(size),
                routing_pb2.COMMIT_MODE_DRY_RUN,
                options=routing_pb2.RoutingOptions(time_limit=limit),
            )
            order = validate.route_order(request)
            read = functools.partial(routing.read_snapshot, ledger=ledger, order=order)
            snapshot = timed("snapshot", query, store, read)
            time_limit = order.options.time_limit
            problem = timed("problem", routing.problem, order, snapshot, time_limit)
            wall["outside_solve"].append(wall["snapshot"][-1] + wall["problem"][-1])
            plan = timed("solve", solver.solve, problem)
            costs = {x.id: x.shipment_cost for x in snapshot.candidates}
            timed("convert", convert.plan, plan, order, costs)
            timed("servicer", servicer.RouteOrder, request, _Context())
    finally:
        solves.shutdown()
        store.close()
    summary = {name: percentiles(values) for name, values in wall.items()}
    for name, seconds in cpu.items():
        summary[name]["cpu_ms_per_call"] = 1000 * seconds / max(1, summary[name]["n"])
    summary["outside_solve"]["cpu_ms_per_call"] = (
        summary["snapshot"]["cpu_ms_per_call"] + summary["problem"]["cpu_ms_per_call"]
    )
    summary["cold_read"] = cold_read
    return summary


def breakdown_target(size: int, lines: int, parts: dict[str, Any]) -> dict[str, Any]:
    """The target: the time outside the solve, at p50, within the solve's own for 5-line orders
    and within LONG_ORDER_LIMIT_MS for 100-line orders."""
    outside = parts["outside_solve"]["p50_ms"]
    limit = parts["solve"]["p50_ms"] if lines < LONG_ORDER_LINES else LONG_ORDER_LIMIT_MS
    return {
        "candidates": size,
        "lines": lines,
        "outside_solve_p50_ms": outside,
        "solve_p50_ms": parts["solve"]["p50_ms"],
        "limit_ms": limit,
        "limit_is": "solve p50" if lines < LONG_ORDER_LINES else f"{LONG_ORDER_LIMIT_MS:g} ms",
        "met": bool(outside <= limit),
    }


# --- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, network: Network, workdir: Path) -> dict[str, Any]:
    store = workdir / "routing.sqlite3"
    sizes: dict[str, Any] = {}
    server_args = ["--sqlite-synchronous", args.sqlite_synchronous]
    with omniroute_server(store, args=server_args) as server:
        log(f"server pid {server.pid} on port {server.port}; seeding...")
        seconds = seed(server.address, network)
        log(
            f"seeded {len(network.sites)} locations, {len(network.skus)} SKUs, "
            f"{len(network.stock):,} stock rows in {seconds:.1f} s"
        )
        for size in args.sizes:
            group = group_id(size)
            orders = make_orders(network, size, args.orders)
            log(f"[{size}] unloaded: GetAvailability, RouteOrder dry run, in-process solve...")
            unloaded = measure_unloaded(
                server.address,
                server.pid,
                network,
                size,
                orders,
                args.unloaded_seconds,
                args.min_samples,
            )
            log(
                f"[{size}] unloaded p50: RouteOrder {unloaded['route_dry_run']['p50_ms']:.1f} ms, "
                f"GetAvailability x{unloaded['availability_calls_per_order']} "
                f"{unloaded['get_availability']['p50_ms']:.1f} ms, solve "
                f"{unloaded['solve']['p50_ms']:.2f} ms (build {unloaded['build']['p50_ms']:.2f}"
                f" ms); shipments {unloaded['shipments_per_order']}; "
                f"{len(unloaded['plan_mismatches'])} plan mismatches"
            )
            load: dict[str, Any] = {}
            params = {"group": group, "orders": orders}
            for scenario, factory in (("dry_run", dry_run_call), ("transfer", transfer_call)):
                if scenario not in args.scenarios:
                    continue
                result: LoadResult = run_load(
                    server.address,
                    Workload(f"{scenario}-{size}", factory, params),
                    **args.load,
                    server_pid=server.pid,
                    seed=size,
                )
                load[scenario] = summarise([result])
                log(
                    f"[{size}] {scenario:<9} {result.rps:7.1f} RPC/s  p50 {result.p50_ms:7.1f} ms"
                    f"  p99 {result.p99_ms:7.1f} ms  errors {result.errors or 0}  "
                    f"notes {result.notes}  server cores {result.server_cpu or 0:.2f}"
                )
            sizes[str(size)] = {"group": group, "unloaded": unloaded, "load": load}
            sizes[str(size)]["target"] = target(sizes[str(size)])
        breakdown: dict[str, Any] = {}
        for size, lines in args.breakdown:
            orders = make_orders(network, size, args.orders, lines)
            parts = measure_breakdown(
                store,
                size,
                orders,
                args.unloaded_seconds / 3,
                args.min_samples,
                args.breakdown_time_limit,
            )
            parts["target"] = breakdown_target(size, lines, parts)
            breakdown[f"{size}x{lines}"] = parts
            log(
                f"[{size} x {lines} lines] in-process servicer p50 "
                f"{parts['servicer']['p50_ms']:.1f} ms: "
                + ", ".join(f"{k} {parts[k]['p50_ms']:.2f}" for k in BREAKDOWN_PARTS)
                + f"; snapshot + problem {parts['outside_solve']['p50_ms']:.2f}"
            )
    return {"seed_seconds": seconds, "sizes": sizes, "breakdown": breakdown}


def target(found: dict[str, Any]) -> dict[str, Any]:
    unloaded = found["unloaded"]
    budget = unloaded["solve"]["p50_ms"] + unloaded["get_availability"]["p50_ms"]
    route = unloaded["route_dry_run"]["p50_ms"]
    loaded = found["load"].get("dry_run", {}).get("p50_ms")
    ratio = route / budget if budget else float("nan")
    cpu = [unloaded[key].get("cpu_ms_per_call") for key in ("route_dry_run", "solve")]
    cpu.append(unloaded["get_availability"].get("cpu_ms_per_call"))
    cpu_ratio = None if None in cpu or not (cpu[1] + cpu[2]) else cpu[0] / (cpu[1] + cpu[2])
    return {
        "solve_plus_availability_p50_ms": budget,
        "limit_ms": TARGET_FACTOR * budget,
        "route_dry_run_p50_ms": route,
        "ratio": ratio,
        "met": bool(ratio <= TARGET_FACTOR),
        "loaded_route_dry_run_p50_ms": loaded,
        "loaded_ratio": None if loaded is None or not budget else loaded / budget,
        # The same ratio in CPU time (server CPU per RouteOrder / (solve CPU + server CPU per
        # GetAvailability)): what other work on a shared machine distorts least.
        "cpu_ratio": cpu_ratio,
    }


# --- reporting -----------------------------------------------------------------------------------


HEADERS = (
    "candidates",
    "measurement",
    "calls",
    "RPC/s",
    "p50 ms",
    "p99 ms",
    "CPU ms/call",
    "errors",
    "notes",
)


def rows(results: dict[str, Any]) -> list[list[object]]:
    config = results["config"]
    load_label = f"{config['clients']}x{config['threads']} callers"
    table: list[list[object]] = []
    for size, found in results["sizes"].items():
        unloaded, load = found["unloaded"], found["load"]
        pages = unloaded["availability_calls_per_order"]
        for scenario, label in (("dry_run", "dry run"), ("transfer", "transfer")):
            if scenario not in load:
                continue
            summary = load[scenario]
            notes = [f"server {summary['server_cpu'] or 0:.2f} cores"]
            if scenario == "transfer":
                notes.append("CPU per create+route+release")
            notes += [_notes(summary)] if summary.get("notes") else []
            table.append(
                [
                    f"{int(size):,}",
                    f"RouteOrder {label}, {load_label}",
                    f"{summary['rpcs']:,}",
                    f"{summary['rps']:,.1f}",
                    f"{summary['p50_ms']:.1f}",
                    f"{summary['p99_ms']:.1f}",
                    cell(summary.get("server_cpu_ms_per_rpc"), ".1f"),
                    errors_cell(summary),
                    "; ".join(notes),
                ]
            )
        for key, label, note in (
            (
                "route_dry_run",
                "RouteOrder dry run, 1 caller",
                f"server solve_time p50 {unloaded['server_solve_time']['p50_ms']:.1f} ms",
            ),
            (
                "get_availability",
                f"GetAvailability 5 SKUs x {int(size):,}, 1 caller",
                f"{pages} call{'s' if pages > 1 else ''} of {AVAILABILITY_PAGE} places, summed",
            ),
            ("solve", "solver.solve in-process", f"methods {_methods(unloaded)}"),
            ("build", "Problem.build in-process", ""),
        ):
            figures = unloaded[key]
            table.append(
                [
                    f"{int(size):,}",
                    label,
                    f"{figures['n']:,}",
                    "",
                    f"{figures['p50_ms']:.2f}",
                    f"{figures['p99_ms']:.2f}",
                    cell(figures.get("cpu_ms_per_call"), ".1f"),
                    "",
                    note,
                ]
            )
    return table


BREAKDOWN_HEADERS = (
    "candidates",
    "lines",
    "orders",
    "snapshot",
    "problem",
    "snapshot + problem",
    "solve",
    "convert",
    "servicer",
    "CPU ms: snapshot + problem",
    "target",
)


def breakdown_rows(results: dict[str, Any]) -> list[list[object]]:
    table: list[list[object]] = []
    for parts in results.get("breakdown", {}).values():
        t = parts["target"]
        table.append(
            [
                f"{t['candidates']:,}",
                t["lines"],
                parts["servicer"]["n"],
                *(
                    f"{parts[name]['p50_ms']:.2f}"
                    for name in ("snapshot", "problem", "outside_solve", "solve", "convert")
                ),
                f"{parts['servicer']['p50_ms']:.2f}",
                cell(parts["outside_solve"].get("cpu_ms_per_call"), ".1f"),
                f"{'meets' if t['met'] else 'MISSES'} <= {t['limit_is']}",
            ]
        )
    return table


def _methods(unloaded: dict[str, Any]) -> str:
    total = sum(unloaded["solve_methods"].values()) or 1
    return ", ".join(f"{m} {100 * n / total:.0f}%" for m, n in unloaded["solve_methods"].items())


def _notes(summary: dict[str, Any]) -> str:
    notes = summary.get("notes") or {}
    if not notes:
        return ""
    return ", ".join(f"{k} {v}" for k, v in sorted(notes.items()))


def verdicts(results: dict[str, Any]) -> list[str]:
    lines = []
    for size, found in results["sizes"].items():
        t = found["target"]
        unloaded = found["unloaded"]
        lines.append(
            f"{int(size):,} candidates: dry-run RouteOrder p50 {t['route_dry_run_p50_ms']:.1f} ms"
            f" / (solve p50 {unloaded['solve']['p50_ms']:.2f} ms + GetAvailability p50 "
            f"{unloaded['get_availability']['p50_ms']:.1f} ms = "
            f"{t['solve_plus_availability_p50_ms']:.1f} ms) = {t['ratio']:.2f}x; "
            f"{'meets' if t['met'] else 'MISSES'} the target <= {TARGET_FACTOR:g}x"
            + (
                f"; under load p50 {t['loaded_route_dry_run_p50_ms']:.1f} ms = "
                f"{t['loaded_ratio']:.2f}x"
                if t["loaded_ratio"] is not None
                else ""
            )
            + (f"; in CPU time {t['cpu_ratio']:.2f}x" if t.get("cpu_ratio") is not None else "")
        )
        shipments = ", ".join(
            f"{k} location{'s' if k != '1' else ''} {v}"
            for k, v in unloaded["shipments_per_order"].items()
        )
        lines.append(
            f"{int(size):,} candidates: orders needed {shipments}; in-process plans equal to the "
            f"server's: {unloaded['solve']['n'] - len(unloaded['plan_mismatches'])}/"
            f"{unloaded['solve']['n']}"
        )
    for parts in results.get("breakdown", {}).values():
        t = parts["target"]
        lines.append(
            f"{t['candidates']:,} candidates x {t['lines']} lines, in-process: snapshot + problem "
            f"p50 {t['outside_solve_p50_ms']:.2f} ms vs solve p50 {t['solve_p50_ms']:.2f} ms; "
            f"{'meets' if t['met'] else 'MISSES'} the target <= {t['limit_is']}" + _cold_read(parts)
        )
    return lines


def _cold_read(parts: dict[str, Any]) -> str:
    cold = parts.get("cold_read")
    if not cold:
        return ""
    return (
        f" (before timing, the cold read of its {cold['skus']} SKUs' free stock took "
        f"{cold['ms']:.0f} ms, {cold['ms'] / max(1, cold['skus']):.2f} ms per SKU)"
    )


def markdown(results: dict[str, Any]) -> str:
    config = results["config"]
    network = results["network"]
    text = [
        "# RouteOrder benchmark: end to end over gRPC vs the same solve in-process",
        "",
        f"`{results['command']}`",
        "",
        f"Network: {network['locations']:,} locations at distinct real US ZIP centroids, groups "
        f"g100, g1000 and g{network['locations']} (the candidate scope), {network['skus']} SKUs, "
        f"each stocked at a location with probability {network['stock_probability']} "
        f"(1-{MAX_STOCK_UNITS} units; "
        f"{network['stock_rows']:,} stock rows). Orders: {ORDER_LINES} lines of 1-"
        f"{MAX_ORDER_UNITS} units to a random US ZIP centroid, {config['orders']} per group. "
        f"SQLite synchronous={config['sqlite_synchronous']}.",
        "",
        f"Under load: {config['clients']} client processes x {config['threads']} threads, "
        f"closed loop, {config['warmup_s']:g} s warm-up + {config['duration_s']:g} s measured. "
        "Transfer: each call reserves the order at the group (CreateReservation, untimed), "
        "routes it with COMMIT_MODE_TRANSFER (timed: the only latency recorded) and releases it "
        "(untimed), so stock never drains; RPC/s counts RouteOrder calls. 'attempts=N' counts "
        "RouteOrders whose commit took N solves (re-solved on stale stock). 1 caller: this "
        "process, one call at a time, per order: GetAvailability for its 5 SKUs x every "
        f"candidate ({AVAILABILITY_PAGE} places per call, calls summed), RouteOrder dry run, then "
        "the same Problem built in-process from that ATF and `solver.solve` timed alone. "
        "Latencies are client-side. CPU ms/call: the server process's CPU per call (under "
        "load: per RouteOrder, for transfer per create + route + release cycle; 1 caller: "
        "summed over those calls from /proc), and for the in-process rows this process's CPU.",
        "",
        f"**{results['note']}.**",
        "",
        markdown_table(HEADERS, rows(results)),
        "",
        "In-process breakdown: the server's own RoutingServicer in this process on the same store "
        "file, no gRPC, its dry-run parts timed one by one (snapshot = ledger reads and ATF, "
        "problem = candidates to solver.Problem incl. Problem.build, solve, convert = plan to "
        "protobuf, servicer = the whole call), one order at a time, for orders of 5 and 100 "
        f"lines (time limit {config['breakdown_time_limit_s']:g} s): where the server's time "
        "goes. p50 ms of each part; snapshot + problem is the p50 of their sum per order, the "
        "time outside the solve that issue 12 bounds. Each cell opens the store afresh and "
        "first reads the free stock of every SKU its orders use (the cold read, timed apart), "
        "so the parts are the steady state of a server whose cache holds them.",
        "",
        markdown_table(BREAKDOWN_HEADERS, breakdown_rows(results)),
        "",
        *[f"- {line}" for line in verdicts(results)],
        "",
        footer(
            results,
            f" plus uncommitted changes to {', '.join(results['uncommitted'])}"
            if results.get("uncommitted")
            else "",
        ),
        "",
    ]
    return "\n".join(text)


def plot(results: dict[str, Any]) -> Any:
    sizes = list(results["sizes"])
    if not sizes:  # the breakdown alone (--sizes=)
        figure, parts = plots.subplots(figsize=(7, 6))
        _plot_breakdown(parts, results)
        return figure
    figure, (left, middle, parts, right) = plots.subplots(
        1, 4, figsize=(20, 6), gridspec_kw={"width_ratios": [1.7, 1.0, 1.1, 0.75]}
    )
    _plot_latency(left, results, sizes)
    _plot_target(middle, results, sizes)
    _plot_breakdown(parts, results)
    _plot_throughput(right, results, sizes)
    config = results["config"]
    figure.suptitle(
        "omniroute RouteOrder over gRPC on SQLite: 5-line orders, sparse stock at real US ZIP "
        f"centroids; load = {config['clients']} client processes x {config['threads']} threads\n"
        f"{results['machine']['cores']} cores shared by server, clients and other work "
        f"(load average at start {results['machine']['load_average_at_start'][0]:.1f}): "
        "relative figures for this machine",
        fontsize=10,
    )
    return figure


_BARS = (
    ("solve", "solver.solve\nin-process", "#6a9f58", "unloaded"),
    ("get_availability", "GetAvailability\n5 SKUs x all", "#5b8fc7", "unloaded"),
    ("route_dry_run", "RouteOrder\ndry run, 1 caller", "#1f5f99", "unloaded"),
    ("dry_run", "RouteOrder\ndry run, load", "#e08a1e", "load"),
    ("transfer", "RouteOrder\ntransfer, load", "#b5451b", "load"),
)


_label = functools.partial(plots.label_above, fontsize=7.5, offset=1.5)


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def _plot_latency(axes: Any, results: dict[str, Any], sizes: list[str]) -> None:
    width, slots = plots.slots(len(sizes), len(_BARS))
    x = np.arange(len(_BARS))
    for offset, (size, where) in enumerate(zip(sizes, slots, strict=True)):
        found = results["sizes"][size]
        for position, (key, _, colour, kind) in zip(where, _BARS, strict=True):
            figures = found[kind].get(key)
            if not figures:
                continue
            hatch = "//" if offset else None
            axes.bar(position, figures["p99_ms"], width * 0.9, color=colour, alpha=0.3)
            axes.bar(
                position,
                figures["p50_ms"],
                width * 0.9,
                color=colour,
                hatch=hatch,
                edgecolor="white",
                linewidth=0,
            )
            _label(axes, position, figures["p50_ms"], _ms(figures["p50_ms"]))
            axes.text(
                position,
                -0.012,
                f"{int(size):,}",
                transform=axes.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize=7,
                color="#444",
            )
    axes.set_yscale("log")
    axes.set_xticks(x, [label for _, label, _, _ in _BARS], fontsize=8)
    axes.tick_params(axis="x", pad=13, length=0)
    axes.set_ylabel("client latency, ms (log scale)")
    axes.set_title(
        "Latency per call at 100 and 1,000 candidates (hatched)\nsolid: p50 (labelled), light: p99",
        fontsize=9,
    )
    axes.grid(axis="y", alpha=0.3, which="both")


def _plot_target(axes: Any, results: dict[str, Any], sizes: list[str]) -> None:
    """Per size: solve + GetAvailability (the budget, stacked), its 2x line, and RouteOrder."""
    x = np.arange(len(sizes))
    width = 0.26
    for index, size in enumerate(sizes):
        found = results["sizes"][size]
        unloaded, target = found["unloaded"], found["target"]
        budget = target["solve_plus_availability_p50_ms"]
        solve = unloaded["solve"]["p50_ms"]
        stacked = x[index] - width
        axes.bar(
            stacked, solve, width * 0.9, color="#6a9f58", label="solve p50" if not index else None
        )
        axes.bar(
            stacked,
            budget - solve,
            width * 0.9,
            bottom=solve,
            color="#5b8fc7",
            label="+ GetAvailability p50" if not index else None,
        )
        _label(axes, stacked, budget, _ms(budget))
        axes.hlines(
            target["limit_ms"],
            x[index] - 1.6 * width,
            x[index] + 1.6 * width,
            colors="black",
            linestyles="--",
            linewidth=1.2,
            zorder=0.9,  # behind the bars: a bar over the line is over the target
            label=f"target: {TARGET_FACTOR:g} x (solve + GetAvailability)" if not index else None,
        )
        for shift, value, colour, label in (
            (0.0, target["route_dry_run_p50_ms"], "#1f5f99", "RouteOrder dry run p50, 1 caller"),
            (
                width,
                target["loaded_route_dry_run_p50_ms"],
                "#e08a1e",
                "RouteOrder dry run p50, load",
            ),
        ):
            if value is None:
                continue
            axes.bar(
                x[index] + shift,
                value,
                width * 0.9,
                color=colour,
                label=label if not index else None,
            )
            _label(axes, x[index] + shift, value, _ms(value))
            axes.annotate(
                f"{value / budget:.2f}x",
                (x[index] + shift, value),
                ha="center",
                va="top",
                fontsize=7.5,
                color="white",
                fontweight="bold",
                xytext=(0, -3),
                textcoords="offset points",
            )
    axes.set_yscale("log")
    axes.set_xticks(x, [f"{int(s):,} candidates" for s in sizes], fontsize=9)
    axes.set_ylabel("ms (log scale)")
    axes.set_ylim(0.3, axes.get_ylim()[1] * 4)
    axes.set_title(
        "Target: RouteOrder dry-run p50 <= 2 x budget\n(label: p50 ms; in the bar: x budget)",
        fontsize=9,
    )
    axes.legend(fontsize=7, loc="upper left")
    axes.grid(axis="y", alpha=0.3, which="both")


def _plot_breakdown(axes: Any, results: dict[str, Any]) -> None:
    """Per breakdown cell, in-process p50: snapshot + problem (stacked) beside the solve, with
    the limit on the time outside the solve."""
    cells = list(results.get("breakdown", {}).values())
    x = np.arange(len(cells))
    width = 0.38
    for index, parts in enumerate(cells):
        first = not index
        snapshot, problem = parts["snapshot"]["p50_ms"], parts["problem"]["p50_ms"]
        left = x[index] - width / 2
        axes.bar(left, snapshot, width * 0.9, color="#5b8fc7", label="snapshot" if first else None)
        axes.bar(
            left,
            problem,
            width * 0.9,
            bottom=snapshot,
            color="#9b7bc4",
            label="problem" if first else None,
        )
        _label(axes, left, snapshot + problem, _ms(parts["outside_solve"]["p50_ms"]))
        solve = parts["solve"]["p50_ms"]
        axes.bar(
            x[index] + width / 2,
            solve,
            width * 0.9,
            color="#6a9f58",
            label="solve" if first else None,
        )
        _label(axes, x[index] + width / 2, solve, _ms(solve))
        axes.hlines(
            parts["target"]["limit_ms"],
            x[index] - width,
            x[index] + width,
            colors="black",
            linestyles="--",
            linewidth=1.2,
            label="limit on snapshot + problem" if first else None,
        )
    axes.set_yscale("log")
    if cells:  # a sub-millisecond snapshot must still show under its problem bar
        axes.set_ylim(bottom=min(p["snapshot"]["p50_ms"] for p in cells) / 2)
    axes.set_xticks(
        x,
        [f"{p['target']['candidates']:,} cand.\n{p['target']['lines']} lines" for p in cells],
        fontsize=8,
    )
    axes.set_ylabel("p50 ms per dry-run RouteOrder, in-process (log scale)")
    axes.set_title("Outside the solve vs the solve\n(no gRPC, one order at a time)", fontsize=9)
    axes.legend(fontsize=7, loc="upper left")
    axes.grid(axis="y", alpha=0.3, which="both")


def _plot_throughput(axes: Any, results: dict[str, Any], sizes: list[str]) -> None:
    scenarios = [("dry_run", "dry run", "#e08a1e"), ("transfer", "transfer", "#b5451b")]
    width, slots = plots.slots(len(scenarios), len(sizes))
    for (key, label, colour), where in zip(scenarios, slots, strict=True):
        values = [results["sizes"][s]["load"].get(key, {}).get("rps", 0.0) for s in sizes]
        for position, value in zip(where, values, strict=True):
            axes.bar(
                position,
                value,
                width * 0.9,
                color=colour,
                label=label if position == where[0] else None,
            )
            _label(axes, position, value, f"{value:,.1f}" if value < 10 else f"{value:,.0f}")
    axes.set_xticks(np.arange(len(sizes)), [f"{int(s):,}\ncandidates" for s in sizes], fontsize=9)
    axes.set_ylabel("RouteOrder calls/s")
    axes.set_ylim(0, axes.get_ylim()[1] * 1.12)
    axes.set_title(
        "Throughput under load\n(transfer: + 2 untimed RPCs per call)",
        fontsize=9,
    )
    axes.legend(fontsize=8, loc="upper right", title="RouteOrder", title_fontsize=8)
    axes.grid(axis="y", alpha=0.3)


# --- command line --------------------------------------------------------------------------------


def _cell(text: str) -> tuple[int, int]:
    """A breakdown cell, candidates x order lines: 1000x5."""
    size, lines = (int(part) for part in text.split("x"))
    if size not in SIZES:
        raise ValueError(f"candidates must be among {SIZES}")
    return size, lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = BenchParser(
        __doc__,
        "routing",
        load={"duration": 10.0, "threads": 2},
        quick={"duration": 2.0, "warmup": 0.5, "unloaded_seconds": 4.0, "min_samples": 10},
        quick_help="2 s windows, 0.5 s warm-up, 4 s one-caller budget, 10 samples",
    )
    parser.add_argument(
        "--unloaded-seconds",
        type=float,
        default=15.0,
        help="time budget per group for the one-caller measurements",
    )
    parser.add_argument(
        "--min-samples", type=int, default=30, help="one-caller orders measured at least"
    )
    parser.add_argument("--orders", type=int, default=200, help="orders in each group's pool")
    parser.add_argument(
        "--sizes",
        type=listed(int, SIZES),
        default=",".join(map(str, GRPC_SIZES)),
        help="candidate counts over gRPC",
    )
    parser.add_argument(
        "--breakdown",
        type=listed(_cell),
        default=",".join(f"{size}x{lines}" for size, lines in BREAKDOWN_CELLS),
        help="in-process breakdown cells, candidates x order lines",
    )
    parser.add_argument(
        "--breakdown-time-limit",
        type=float,
        default=2.0,
        help="the breakdown orders' time_limit, s (100-line solves may not prove sooner)",
    )
    parser.add_argument(
        "--scenarios", type=listed(str, ("dry_run", "transfer")), default="dry_run,transfer"
    )
    parser.add_argument("--sqlite-synchronous", default="FULL", type=str.upper)
    return parser.parse(argv)


_BENCH_CODE = (
    "benchmarks/support",
    "benchmarks/routing_bench.py",
    "benchmarks/solver_instances.py",
)


def uncommitted_code() -> list[str]:
    """Code paths that differ from the commit in machine_info (a shared working tree): the run
    measured them as they were on disk."""
    try:
        listing = subprocess.run(
            ["git", "status", "--porcelain", "-uall", "--", "server", "solver", *_BENCH_CODE],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except OSError:
        return []
    return [line[3:] for line in listing.splitlines() if line.endswith(".py")]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    network = make_network(max(SIZES), CATALOG)
    results: dict[str, Any] = {
        **header("routing"),
        "uncommitted": uncommitted_code(),
        "target": {"route_dry_run_p50_vs_solve_plus_availability_p50": TARGET_FACTOR},
        "config": {
            **args.load,
            "unloaded_seconds": args.unloaded_seconds,
            "min_samples": args.min_samples,
            "orders": args.orders,
            "sizes": args.sizes,
            "breakdown": [f"{size}x{lines}" for size, lines in args.breakdown],
            "breakdown_time_limit_s": args.breakdown_time_limit,
            "scenarios": args.scenarios,
            "sqlite_synchronous": args.sqlite_synchronous,
        },
        "network": {
            "locations": len(network.sites),
            "skus": len(network.skus),
            "stock_rows": len(network.stock),
            "stock_probability": STOCK_PROBABILITY,
            "max_stock_units": MAX_STOCK_UNITS,
            "order_lines": ORDER_LINES,
            "max_order_units": MAX_ORDER_UNITS,
            "seed": SEED,
        },
    }
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as workdir:
        results.update(run(args, network, Path(workdir)))

    print()
    print(results["note"])
    print(
        f"{args.clients} client processes x {args.threads} threads under load; {args.duration:g}"
        " s windows; latencies client-side"
    )
    print(text_table(HEADERS, rows(results), left=2))
    print()
    print("In-process breakdown, p50 ms per dry-run RouteOrder (no gRPC):")
    print(text_table(BREAKDOWN_HEADERS, breakdown_rows(results), left=2))
    for line in verdicts(results):
        print(line)
    args.files.save(results, markdown=markdown(results), figures={"": plot(results)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
