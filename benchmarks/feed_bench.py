"""Commit-to-consumer latency of the availability change feed, with 1, 10 and 100 watchers.

Starts `python -m server` on SQLite (and, with --postgres, two servers on one PostgreSQL
schema), seeds a network with groups, then runs a steady CreateReservation load (--rate calls
per second, at locations and at groups) while W watchers stream every change
(WatchAvailability, no filter) from client processes. Each change carries its commit time
(the server's clock); a watcher notes when it received it (the same machine's clock): the
difference is what a storefront waits between a commit and knowing of it. On PostgreSQL the
load goes through both servers and the watchers are split between them, so most changes
cross from one server to the other.

  .venv/bin/python benchmarks/feed_bench.py              # SQLite
  .venv/bin/python benchmarks/feed_bench.py --postgres   # and two PostgreSQL servers
  .venv/bin/python benchmarks/feed_bench.py --quick

Writes benchmarks/results/feed.{json,md,png}. Not a test: never run it from the test suite.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from omniroute.inventory.v1 import availability_feed_pb2 as fd
from omniroute.inventory.v1 import (
    availability_feed_pb2_grpc,
    inventory_pb2,
    reservation_pb2,
    reservation_pb2_grpc,
)
from support import (
    BenchParser,
    header,
    listed,
    log,
    markdown_table,
    omniroute_server,
    pg_schema,
    plots,
    stock_network,
    text_table,
)
from support.cli import POSTGRES_ENV

LOCATIONS = [f"loc-{n:03d}" for n in range(20)]
GROUPS = {"east": LOCATIONS[:12], "west": LOCATIONS[8:]}  # overlapping at 8 stores
SKUS = [f"sku-{n:03d}" for n in range(50)]
PROCESSES = 4
DRAIN_S = 3.0
HEADERS = ("backend", "watchers", "changes seen", "per watcher", "p50 ms", "p90 ms", "p99 ms")


def seed(address: str) -> None:
    sites = [
        inventory_pb2.Location(
            id=name,
            display_name=name,
            type=inventory_pb2.LOCATION_TYPE_STORE,
            position=inventory_pb2.GeoPoint(latitude=35 + n % 10, longitude=-100 + n % 20),
            country_code="US",
        )
        for n, name in enumerate(LOCATIONS)
    ]
    groups = [
        inventory_pb2.LocationGroup(id=name, display_name=name, location_ids=members)
        for name, members in GROUPS.items()
    ]
    levels = [
        inventory_pb2.StockLevel(location_id=location, sku=sku, on_hand=1_000_000)
        for location in LOCATIONS
        for sku in SKUS
    ]
    with grpc.insecure_channel(address) as channel:
        stock_network(channel, sites, levels, groups)


def watch(addresses: Sequence[str], count: int, seconds: float, out: Any) -> None:
    """`count` watcher threads (spread over `addresses`) for `seconds`; puts every latency."""
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(count + 1)

    def one(address: str) -> None:
        mine = []
        with grpc.insecure_channel(address) as channel:
            stub = availability_feed_pb2_grpc.AvailabilityFeedServiceStub(channel)
            stream = stub.WatchAvailability(
                fd.WatchAvailabilityRequest(heartbeat_interval={"seconds": 1}),
                timeout=seconds + DRAIN_S + 30,
            )
            next(stream)  # the opening token: watching from now
            ready.wait()
            deadline = time.time() + seconds + DRAIN_S  # the load's last changes arrive too
            with contextlib.suppress(grpc.RpcError):
                for message in stream:
                    now = time.time()
                    for change in message.changes:
                        commit = change.commit_time.seconds + change.commit_time.nanos / 1e9
                        mine.append(now - commit)
                    if now > deadline:
                        stream.cancel()
        with lock:
            latencies.extend(mine)

    threads = [
        threading.Thread(target=one, args=(addresses[n % len(addresses)],), daemon=True)
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    out.put(("ready", None))
    for thread in threads:
        thread.join()
    out.put(("latencies", latencies))


def load(addresses: Sequence[str], rate: float, seconds: float) -> int:
    """CreateReservation at `rate` calls per second (alternating servers); returns how many."""
    channels = [grpc.insecure_channel(address) for address in addresses]
    stubs = [reservation_pb2_grpc.ReservationServiceStub(channel) for channel in channels]
    sent, start = 0, time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            place = (
                inventory_pb2.Place(location_group_id=list(GROUPS)[sent % 2])
                if sent % 3 == 0
                else inventory_pb2.Place(location_id=LOCATIONS[sent % len(LOCATIONS)])
            )
            item = reservation_pb2.ReservationItem(
                sku=SKUS[sent % len(SKUS)], place=place, quantity=1
            )
            stubs[sent % len(stubs)].CreateReservation(
                reservation_pb2.CreateReservationRequest(items=[item]), timeout=30
            )
            sent += 1
            time.sleep(max(0.0, sent / rate - elapsed))
    finally:
        for channel in channels:
            channel.close()
    return sent


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def measure(backend: str, addresses: Sequence[str], watchers: int, args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    per = [watchers // PROCESSES + (n < watchers % PROCESSES) for n in range(PROCESSES)]
    workers = [
        context.Process(target=watch, args=(addresses, count, args.duration, out))
        for count in per
        if count
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        assert out.get(timeout=120)[0] == "ready"
    sent = load(addresses, args.rate, args.duration)
    latencies: list[float] = []
    for _ in workers:
        _kind, found = out.get(timeout=args.duration + 120)
        latencies.extend(found)
    for worker in workers:
        worker.join()
    row = {
        "backend": backend,
        "watchers": watchers,
        "calls": sent,
        "changes_seen": len(latencies),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p90_ms": percentile(latencies, 0.9) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }
    log(
        f"[{backend}] {watchers:>3} watchers: {len(latencies):,} changes seen, p50 "
        f"{row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms"
    )
    return row


@contextlib.contextmanager
def sqlite_servers(workdir: Path) -> Iterator[list[str]]:
    with omniroute_server(workdir / "feed.sqlite3") as server:
        seed(server.address)
        yield [server.address]


@contextlib.contextmanager
def postgres_servers(dsn: str) -> Iterator[list[str]]:
    with (
        pg_schema(dsn, "omniroute-feed-bench") as schema,
        omniroute_server(schema, log_path=Path(tempfile.gettempdir()) / "feed-pg-1.log") as first,
        omniroute_server(schema, log_path=Path(tempfile.gettempdir()) / "feed-pg-2.log") as second,
    ):
        seed(first.address)
        yield [first.address, second.address]


def plot(rows: Sequence[dict[str, Any]]) -> Any:
    backends = list(dict.fromkeys(row["backend"] for row in rows))
    counts = sorted({row["watchers"] for row in rows})
    width, slots = plots.slots(len(backends), len(counts))
    figure, axes = plots.subplots(1, 1, figsize=(8, 4.8))
    colours = ["#1f5f99", "#e08a1e"]
    for backend, where, colour in zip(backends, slots, colours, strict=False):
        mine = {row["watchers"]: row for row in rows if row["backend"] == backend}
        plots.p50_p99_bars(
            axes,
            where,
            [mine[n]["p50_ms"] for n in counts],
            [mine[n]["p99_ms"] for n in counts],
            width,
            colour,
            labels=(f"p50 ({backend})", f"p99 ({backend})"),
        )
    axes.set_xticks(range(len(counts)), [f"{n} watcher{'s' * (n > 1)}" for n in counts])
    axes.set_yscale("log")
    axes.set_ylabel("commit to consumer, ms (log scale)")
    axes.set_title("Availability feed latency under a steady CreateReservation load", fontsize=10)
    axes.legend(fontsize=8, loc="upper left", ncol=2)
    axes.grid(axis="y", alpha=0.3, which="both")
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = BenchParser(
        __doc__,
        "feed",
        quick={"duration": 3.0, "watchers": [1, 10]},
        quick_help="3 s windows, 1 and 10 watchers",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per window")
    parser.add_argument("--rate", type=float, default=100.0, help="CreateReservation calls/s")
    parser.add_argument("--watchers", type=listed(int), default="1,10,100")
    parser.add_argument("--postgres", action="store_true", help="also two PostgreSQL servers")
    args = parser.parse(argv)
    backends = {"SQLite": sqlite_servers}
    if args.postgres:
        dsn = next((os.environ[name] for name in POSTGRES_ENV if os.environ.get(name)), "")
        if not dsn:
            parser.error(f"--postgres needs {' or '.join(POSTGRES_ENV)}")
        backends["PostgreSQL x2"] = lambda _workdir: postgres_servers(dsn)
    results: dict[str, Any] = {
        **header("feed"),
        "config": {"duration_s": args.duration, "rate": args.rate, "watchers": args.watchers},
        "rows": [],
    }
    with tempfile.TemporaryDirectory(prefix="feed-bench-") as workdir:
        for backend, servers in backends.items():
            with servers(Path(workdir)) as addresses:
                for watchers in args.watchers:
                    results["rows"].append(measure(backend, addresses, watchers, args))
    table = [
        [
            row["backend"],
            row["watchers"],
            f"{row['changes_seen']:,}",
            f"{row['changes_seen'] / row['watchers']:,.0f}",
            f"{row['p50_ms']:.1f}",
            f"{row['p90_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
        ]
        for row in results["rows"]
    ]
    print()
    print(results["note"])
    print(
        f"CreateReservation at {args.rate:g}/s for {args.duration:g} s per row; every watcher "
        "streams every change; latency = receipt (client clock) - commit time (server clock)"
    )
    print(text_table(HEADERS, table, left=2))
    markdown = "\n".join(
        [
            "# Availability feed latency",
            "",
            results["note"],
            "",
            markdown_table(HEADERS, table, left=2),
            "",
        ]
    )
    args.files.save(results, markdown=markdown, figures={"": plot(results["rows"])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
