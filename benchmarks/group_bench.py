"""Big overlapping groups: the heaviest in-limits requests, and how long a health check waits
while each runs, on the current code and on a baseline commit, side by side in one run.

The shape a national retailer has: LOCATIONS locations, GROUPS groups that each hold all of
them, SKUS SKUs stocked at every location, and a group reservation on every SKU. For each
request, its latency (client side, over loopback) and the latency of Health/Check calls sent
every few milliseconds meanwhile, from another thread on its own channel. A server that
computes on its event loop makes the health check wait as long as the request.

    .venv/bin/python benchmarks/group_bench.py                 # SQLite, and PostgreSQL if set
    .venv/bin/python benchmarks/group_bench.py --quick         # 2,000 locations, 2 repeats
    .venv/bin/python benchmarks/group_bench.py --baseline REV  # compare with commit REV

Writes benchmarks/results/groups.{json,md,png} (groups-quick.* with --quick).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc, reservation_pb2_grpc
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt
from omniroute.routing.v1 import routing_pb2_grpc
from support import (
    REPO,
    BenchParser,
    listed,
    log,
    machine_info,
    markdown_table,
    omniroute_server,
    pg_schema,
    plots,
    shared_machine_note,
    stock_network,
    text_table,
    worktree,
)

GROUPS = 10
SKUS = 100
PROBE_INTERVAL_S = 0.005
CALL_TIMEOUT_S = 600.0


def place(location: str = "", group: str = "") -> inv.Place:
    return inv.Place(location_id=location) if location else inv.Place(location_group_id=group)


def load(channel: grpc.Channel, locations: int) -> None:
    """The network, dense stock, and one group reservation on every SKU."""
    ids = [f"loc-{i:05d}" for i in range(locations)]
    sites = [
        inv.Location(
            id=location_id,
            display_name=location_id,
            type=inv.LOCATION_TYPE_STORE,
            position=inv.GeoPoint(
                latitude=30 + (i % 100) * 0.15, longitude=-120 + (i // 100) * 0.4
            ),
            ship_enabled=True,
        )
        for i, location_id in enumerate(ids)
    ]
    groups = [
        inv.LocationGroup(id=f"grp-{g}", display_name=f"grp-{g}", location_ids=ids)
        for g in range(GROUPS)
    ]
    levels = [
        inv.StockLevel(location_id=location_id, sku=f"sku-{s:03d}", on_hand=20)
        for s in range(SKUS)
        for location_id in ids
    ]
    levels += [  # the floor: the same answer shape, no group at stake
        inv.StockLevel(location_id=location_id, sku=f"plain-{s:03d}", on_hand=20)
        for s in range(SKUS)
        for location_id in sampled(locations)
    ]
    stock_network(channel, sites, levels, groups, timeout_s=CALL_TIMEOUT_S)
    reservations = reservation_pb2_grpc.ReservationServiceStub(channel)
    reservations.CreateReservation(
        res.CreateReservationRequest(
            items=[
                res.ReservationItem(sku=f"sku-{s:03d}", place=place(group="grp-0"), quantity=3)
                for s in range(SKUS)
            ]
        ),
        timeout=CALL_TIMEOUT_S,
    )


def sampled(locations: int) -> list[str]:
    """100 locations spread over the network."""
    return [f"loc-{i:05d}" for i in range(0, locations, max(1, locations // 100))][:100]


def requests(channel: grpc.Channel, locations: int) -> dict[str, Callable[[], Any]]:
    """The heaviest in-limits call of each kind, by name."""
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    reservations = reservation_pb2_grpc.ReservationServiceStub(channel)
    routing = routing_pb2_grpc.RoutingServiceStub(channel)
    skus = [f"sku-{s:03d}" for s in range(SKUS)]
    counter = iter(range(10**9))

    def availability(
        locations: list[str] = (), groups: list[str] = (), prefix: str = "sku"
    ) -> Callable[[], Any]:
        request = inv.GetAvailabilityRequest(
            skus=[f"{prefix}-{s:03d}" for s in range(SKUS)],
            location_ids=locations,
            location_group_ids=groups,
        )
        return lambda: inventory.GetAvailability(request, timeout=CALL_TIMEOUT_S)

    def reserve_at_group() -> Any:
        return reservations.CreateReservation(
            res.CreateReservationRequest(
                items=[
                    res.ReservationItem(sku=sku, place=place(group="grp-1"), quantity=1)
                    for sku in skus
                ],
                external_ref=f"bench-{next(counter)}",
            ),
            timeout=CALL_TIMEOUT_S,
        )

    def set_stock() -> Any:
        return inventory.SetStock(
            inv.SetStockRequest(
                levels=[
                    inv.StockLevel(location_id=f"loc-{i:05d}", sku=skus[i % SKUS], on_hand=20)
                    for i in range(min(1000, locations))
                ]
            ),
            timeout=CALL_TIMEOUT_S,
        )

    def route() -> Any:
        return routing.RouteOrder(
            rt.RouteOrderRequest(
                order_id=f"order-{next(counter)}",
                lines=[rt.OrderLine(sku=sku, quantity=2) for sku in skus[:20]],
                destination=rt.Destination(position=inv.GeoPoint(latitude=40.7, longitude=-74.0)),
                location_group_id="grp-2",
            ),
            timeout=CALL_TIMEOUT_S,
        )

    return {
        "GetAvailability 100 SKUs x 10 groups": availability(
            groups=[f"grp-{g}" for g in range(GROUPS)]
        ),
        "GetAvailability 100 SKUs x 100 locations": availability(locations=sampled(locations)),
        "the same, SKUs with no group reservation (floor)": availability(
            locations=sampled(locations), prefix="plain"
        ),
        "CreateReservation 100 items at a group": reserve_at_group,
        "SetStock 1,000 levels": set_stock,
        "RouteOrder 20 lines over a group (dry run)": route,
    }


@contextlib.contextmanager
def probing(address: str) -> Iterator[list[float]]:
    """Health/Check latencies (s) measured every PROBE_INTERVAL_S until the block ends, from a
    process of its own: a thread of this one would wait for this process's GIL, which decoding
    a big answer holds, and blame the server for it."""
    context = mp.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    results = context.Queue()
    prober = context.Process(target=probe, args=(address, ready, stop, results), daemon=True)
    prober.start()
    if not ready.wait(30):
        prober.kill()
        raise RuntimeError("the health prober did not start")
    latencies: list[float] = []
    try:
        yield latencies
    finally:
        stop.set()
        latencies.extend(results.get(timeout=CALL_TIMEOUT_S))
        prober.join()


def probe(address: str, ready: Any, stop: Any, results: Any) -> None:
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        health.Check(health_pb2.HealthCheckRequest(), timeout=30)
        ready.set()
        latencies = []
        while not stop.is_set():
            started = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
            latencies.append(time.perf_counter() - started)
            stop.wait(PROBE_INTERVAL_S)
    results.put(latencies)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(address: str, locations: int, repeats: int, *, warm: bool) -> dict[str, Any]:
    results = {}
    with grpc.insecure_channel(address) as channel:
        for name, call in requests(channel, locations).items():
            if warm:
                call()  # caches filled, as in steady state
            latencies, probes = [], []
            for _ in range(repeats):
                with probing(address) as probed:
                    started = time.perf_counter()
                    call()
                    latencies.append(time.perf_counter() - started)
                probes.extend(probed)
            results[name] = {
                "p50_ms": statistics.median(latencies) * 1000,
                "max_ms": max(latencies) * 1000,
                "health_p50_ms": percentile(probes, 0.5) * 1000,
                "health_p99_ms": percentile(probes, 0.99) * 1000,
                "health_probes": len(probes),
            }
            log(f"  {name}: {results[name]}")
    return results


def run_one(
    code: Path, store: str, log_path: Path, locations: int, repeats: int, *, warm: bool
) -> dict[str, Any]:
    with omniroute_server(store, cwd=code, log_path=log_path) as server:
        started = time.perf_counter()
        with grpc.insecure_channel(server.address) as channel:
            load(channel, locations)
        log(f"  loaded in {time.perf_counter() - started:.0f} s")
        return measure(server.address, locations, repeats, warm=warm)


def markdown(results: dict[str, Any]) -> str:
    return (
        "# Big overlapping groups\n\n"
        f"{results['shape']}\n\n"
        + markdown_table(*table(results))
        + f"\n\n{shared_machine_note(results['machine'])}\n"
    )


def table(results: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    headers = ["backend", "request", "code", "p50 ms", "max ms", "health p50 ms", "health p99 ms"]
    rows: list[list[object]] = []
    for backend, by_code in results["runs"].items():
        for code, by_request in by_code.items():
            for request, figures in by_request.items():
                rows.append(
                    [
                        backend,
                        request,
                        code,
                        f"{figures['p50_ms']:.1f}",
                        f"{figures['max_ms']:.1f}",
                        f"{figures['health_p50_ms']:.1f}",
                        f"{figures['health_p99_ms']:.1f}",
                    ]
                )
    return headers, rows


def plot(results: dict[str, Any]) -> Any:
    runs = results["runs"]
    backends = list(runs)
    figure, axes = plots.subplots(
        len(backends), 2, figsize=(14, 4.5 * len(backends)), squeeze=False
    )
    for row, backend in enumerate(backends):
        names = list(next(iter(runs[backend].values())))
        for column, (key, title, target_ms) in enumerate(
            (
                ("p50_ms", "request p50", 100),
                ("health_p99_ms", "Health/Check p99 meanwhile", 50),
            )
        ):
            by_code = {
                code: [found.get(name, {}).get(key, float("nan")) for name in names]
                for code, found in runs[backend].items()
            }
            plots.beside_baseline(
                axes[row][column],
                names,
                by_code,
                title=f"{backend}: {title}",
                target_ms=target_ms,
                name_labels=column == 0,
            )
    figure.suptitle(results["shape"], fontsize=10)
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = BenchParser(
        __doc__,
        "groups",
        quick={"locations": 2_000, "repeats": 2},
        quick_help="2,000 locations, 2 repeats",
    )
    parser.add_postgres(default=None)
    parser.add_baseline()
    parser.add_argument("--locations", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-repeats", type=int, default=1)
    parser.add_argument(
        "--backends", type=listed(str, ("sqlite", "postgres")), default="sqlite,postgres"
    )
    args = parser.parse(argv)
    shape = (
        f"{args.locations:,} locations, {GROUPS} groups each holding all of them, {SKUS} SKUs "
        f"stocked at every location, a group reservation on every SKU"
    )
    results: dict[str, Any] = {"shape": shape, "machine": machine_info(), "runs": {}}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        codes = [("current", REPO, args.repeats)]
        if args.baseline:
            baseline = stack.enter_context(worktree(args.baseline))
            codes.append((f"baseline {args.baseline}", baseline, args.baseline_repeats))
        for backend in args.backends:
            if backend == "postgres" and not args.postgres:
                log("postgres: skipped (no --postgres DSN)")
                continue
            for label, code, repeats in codes:
                log(f"{backend}, {label}:")
                name = f"groups-{label.split()[0]}"
                store = (
                    stack.enter_context(pg_schema(args.postgres, name))
                    if backend == "postgres"
                    else str(Path(scratch) / f"{name}.sqlite3")
                )
                # The baseline has no caches to fill, and a call can take a minute.
                results["runs"].setdefault(backend, {})[label] = run_one(
                    code,
                    store,
                    Path(scratch) / f"{backend}-{name}.log",
                    args.locations,
                    repeats,
                    warm=label == "current",
                )
    print(text_table(*table(results)))
    args.files.save(results, markdown=markdown(results), figures={"": plot(results)})


if __name__ == "__main__":
    main()
