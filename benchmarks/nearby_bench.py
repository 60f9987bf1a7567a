"""FindNearbyAvailability's domain call, in-process, next to brute-force scans in the same run.

One store (a fresh SQLite file, then a fresh PostgreSQL schema when a DSN is given) holds
LOCATIONS pickup-enabled stores at distinct real US ZIP centroids (the `zipcodes` table the
solver benchmark uses), one group `web` holding all of them, and 5 SKUs each stocked at a store
with probability 0.5, 0-5 units, with a group reservation at `web` on every SKU (so ATF carries
the group rules, as in a retailer's network). Shoppers stand at other real ZIP centroids and
ask for a 5-SKU basket, 1-2 units a line:

  nearest        the 10 nearest stores (max_locations 10, no radius)
  within 50 km   at most 10 stores within 50 km

Each query is answered four ways, in one read unit of work each, caches warm (the server's
steady state). A round runs every way over every query, one way after another; rounds repeat,
so that the machine's drift falls on all alike:

  indexed         server.domain.nearby.find_nearby: the cached k-d tree, then the ledger's
                  availability of the stores found (what the RPC runs, without gRPC)
  scan, read      what a service without an index does per call: read every pickup location
                  of the snapshot, haversine to each, sort, then the same availability read
  scan, in memory the strongest brute force: every location's coordinates already in numpy
                  arrays (as a cache would hold them), haversine to each, a partial sort, then
                  the same availability read
  search alone    the tree query, and the in-memory scan's haversine + partial sort, without
                  the availability read: what the index itself saves

Every answer of the scans is checked against the indexed one (same stores, same order, same
ATF). Garbage is collected between ways, untimed, and not during them, as timeit does.
Targets (issue 15): indexed p50 <= 2 ms in-process, and >= 10x the scan; the verdicts judge
the ratio against both scans.

  .venv/bin/python benchmarks/nearby_bench.py            # SQLite, and PostgreSQL if set
  .venv/bin/python benchmarks/nearby_bench.py --quick    # smoke run

Writes benchmarks/results/nearby.{json,md,png} (nearby-quick.* with --quick). Not a test:
never run it from the test suite.
"""

from __future__ import annotations

import contextlib
import gc
import random
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from solver_instances import us_zip_centroids
from support import (
    BenchParser,
    cell,
    footer,
    header,
    listed,
    log,
    markdown_table,
    pg_schema,
    plots,
    text_table,
)

from server.domain import commands
from server.domain.ledger import Ledger
from server.domain.model import Location, LocationGroup, LocationType, Place
from server.domain.nearby import NearbyQuery, PickupOption, find_nearby
from server.domain.port import Store, UnitOfWork
from server.storage.postgres import PostgresStore
from server.storage.sqlite import SqliteStore
from solver.geo import distances_km

SKUS = [f"sku-{s}" for s in range(5)]
GROUP = "web"
SCENARIOS = {"nearest": None, "within 50 km": 50.0}
METHODS = ("indexed", "scan, read", "scan, in memory")
SEARCHES = ("tree query", "numpy haversine + partial sort")
TARGET_P50_MS = 2.0
TARGET_RATIO = 10.0
BATCH = 1000


# --- the network ------------------------------------------------------------------------------


def sites(count: int, rng: random.Random) -> tuple[list[Location], list[tuple[float, float]]]:
    """`count` stores at distinct ZIP centroids, and the other centroids (shoppers' homes)."""
    _, points = us_zip_centroids()
    distinct = [tuple(map(float, point)) for point in np.unique(points, axis=0)]
    rng.shuffle(distinct)
    stores = [
        Location(
            f"store-{i:05d}",
            f"store {i}",
            LocationType.STORE,
            lat,
            lon,
            country_code="US",
            pickup_enabled=True,
        )
        for i, (lat, lon) in enumerate(distinct[:count])
    ]
    return stores, distinct[count:]


def publish(store: Store, locations: list[Location], rng: random.Random) -> None:
    ledger = Ledger()
    for start in range(0, len(locations), BATCH):
        with store.write(network=True) as uow:
            ledger.upsert_locations(uow, locations[start : start + BATCH])
    with store.write(network=True) as uow:
        ledger.upsert_groups(uow, [LocationGroup(GROUP, GROUP, tuple(x.id for x in locations))])
    levels = [
        commands.StockLevel(x.id, sku, rng.randint(0, 5), 0, (), None)
        for x in locations
        for sku in SKUS
        if rng.random() < 0.5
    ]
    for start in range(0, len(levels), BATCH):
        batch = levels[start : start + BATCH]
        with store.write({level.sku for level in batch}) as uow:
            ledger.set_stock(uow, batch)
    with store.write(SKUS) as uow:
        ledger.create_reservation(
            uow,
            commands.CreateReservation(
                "",
                "",
                tuple(commands.Item(sku, Place.group(GROUP), 50) for sku in SKUS),
                False,
                None,
            ),
        )


def queries(homes: list[tuple[float, float]], count: int, rng: random.Random) -> list[NearbyQuery]:
    chosen = rng.sample(homes, count)
    return [
        NearbyQuery(lat, lon, tuple((sku, rng.randint(1, 2)) for sku in SKUS))
        for lat, lon in chosen
    ]


# --- the ways of answering --------------------------------------------------------------------


def nearest_by_scan(distances: np.ndarray, query: NearbyQuery) -> np.ndarray:
    """Positions of the nearest (ties by position, which is id order) within the radius, from
    every location's distance: a partial sort, then a full sort of the few that can be in."""
    if query.radius_km is not None:
        distances = np.where(distances <= query.radius_km, distances, np.inf)
    k = min(query.max_locations, len(distances))
    kth = distances[np.argpartition(distances, k - 1)[k - 1]]
    near = np.flatnonzero(distances <= kth)  # the k nearest and any tied with the k-th
    near = near[np.isfinite(distances[near])]
    return near[np.lexsort((near, distances[near]))][:k]


def answer_from(
    uow: UnitOfWork,
    ledger: Ledger,
    query: NearbyQuery,
    ids: list[str],
    distances: np.ndarray,
) -> list[PickupOption]:
    """The brute force's last step: the same availability read as the indexed answer."""
    order = nearest_by_scan(distances, query).tolist()
    if not order:
        return []
    found = [ids[j] for j in order]
    skus = [sku for sku, _ in query.basket]
    records = ledger.availability(uow, skus, [Place.location(x) for x in found])
    locations = uow.locations(found)
    options = []
    for i, j in enumerate(order):
        atf = tuple(x.available_to_fulfill for x in records[i * len(skus) : (i + 1) * len(skus)])
        whole = all(units <= have for (_, units), have in zip(query.basket, atf, strict=True))
        options.append(PickupOption(locations[found[i]], float(distances[j]), atf, whole))
    return options


class Answers:
    """The four ways, each `(query) -> answer` in a fresh read unit of work."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ledger = Ledger()
        with store.read() as uow:
            every = uow.list_locations("", 10**9)
        self.ids = [x.id for x in every]
        self.latitudes = np.array([x.latitude for x in every])
        self.longitudes = np.array([x.longitude for x in every])
        with store.read() as uow:
            self.index = uow.pickup_index()

    def indexed(self, query: NearbyQuery) -> list[PickupOption]:
        with self.store.read() as uow:
            return find_nearby(uow, self.ledger, query)

    def scan_read(self, query: NearbyQuery) -> list[PickupOption]:
        with self.store.read() as uow:
            every = [x for x in uow.list_locations("", 10**9) if x.pickup_enabled]
            distances = distances_km(
                [x.latitude for x in every],
                [x.longitude for x in every],
                query.latitude,
                query.longitude,
            )
            return answer_from(uow, self.ledger, query, [x.id for x in every], distances)

    def scan_in_memory(self, query: NearbyQuery) -> list[PickupOption]:
        with self.store.read() as uow:
            distances = distances_km(
                self.latitudes, self.longitudes, query.latitude, query.longitude
            )
            return answer_from(uow, self.ledger, query, self.ids, distances)

    def tree_query(self, query: NearbyQuery) -> object:
        return self.index.nearest(
            query.latitude, query.longitude, query.max_locations, query.radius_km
        )

    def numpy_scan(self, query: NearbyQuery) -> object:
        distances = distances_km(self.latitudes, self.longitudes, query.latitude, query.longitude)
        return nearest_by_scan(distances, query)

    def ways(self) -> dict[str, Callable[[NearbyQuery], object]]:
        return {
            "indexed": self.indexed,
            "scan, read": self.scan_read,
            "scan, in memory": self.scan_in_memory,
            "tree query": self.tree_query,
            "numpy haversine + partial sort": self.numpy_scan,
        }


def same(got: list[PickupOption], expected: list[PickupOption]) -> bool:
    def key(options: list[PickupOption]) -> list[tuple[str, float, tuple[int, ...], bool]]:
        return [
            (x.location.id, round(x.distance_km, 6), x.available_to_fulfill, x.has_whole_basket)
            for x in options
        ]

    return key(got) == key(expected)


# --- measuring --------------------------------------------------------------------------------


def measure(store: Store, asked: list[NearbyQuery], repeats: int) -> dict[str, Any]:
    answers = Answers(store)
    ways = answers.ways()
    results: dict[str, Any] = {}
    for scenario, radius in SCENARIOS.items():
        pool = [NearbyQuery(q.latitude, q.longitude, q.basket, radius_km=radius) for q in asked]
        found = []
        for query in pool:  # warm every cache; check the brute force agrees
            expected = answers.indexed(query)
            for name in ("scan, read", "scan, in memory"):
                got = ways[name](query)
                assert same(got, expected), f"{name} disagrees at {query}"  # type: ignore[arg-type]
            found.append(len(expected))
        timings: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(repeats):
            for name, way in ways.items():
                gc.collect()  # untimed, as timeit does: no way pays for garbage another
                gc.disable()  # left (the read scan leaves the most)
                try:
                    for query in pool:
                        started = time.perf_counter_ns()
                        way(query)
                        timings[name].append((time.perf_counter_ns() - started) / 1e6)
                finally:
                    gc.enable()
        results[scenario] = {
            "queries": len(pool),
            "calls_per_way": len(pool) * repeats,
            "stores_found_median": statistics.median(found),
            "stores_found_min": min(found),
            "ways": {name: summary(values) for name, values in timings.items()},
        }
        log(
            f"  {scenario}: "
            + ", ".join(
                f"{name} p50 {figures['p50_ms']:.3f} ms"
                for name, figures in results[scenario]["ways"].items()
            )
        )
    return results


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "mean_ms": statistics.fmean(ordered),
    }


@contextlib.contextmanager
def opened(backend: str, scratch: Path, dsn: str | None) -> Iterator[Store]:
    with contextlib.ExitStack() as stack:
        if backend == "postgres":
            assert dsn
            store: Store = PostgresStore(stack.enter_context(pg_schema(dsn, "nearby")))
        else:
            store = SqliteStore(scratch / "nearby.sqlite3", synchronous="NORMAL")
        try:
            yield store
        finally:
            store.close()


# --- reporting --------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    headers = ["backend", "query", "way", "p50 ms", "p99 ms", "p50 / indexed p50"]
    rows: list[list[object]] = []
    for backend, by_scenario in results["runs"].items():
        for scenario, figures in by_scenario.items():
            ways = figures["ways"]
            for name in (*METHODS, *SEARCHES):
                base = ways["indexed" if name in METHODS else "tree query"]["p50_ms"]
                rows.append(
                    [
                        backend,
                        scenario,
                        name,
                        cell(ways[name]["p50_ms"], ".3f"),
                        cell(ways[name]["p99_ms"], ".3f"),
                        cell(ways[name]["p50_ms"] / base, ".1f") + "x",
                    ]
                )
    return headers, rows


def verdicts(results: dict[str, Any]) -> list[str]:
    lines = []
    for backend, by_scenario in results["runs"].items():
        for scenario, figures in by_scenario.items():
            ways = figures["ways"]
            indexed = ways["indexed"]["p50_ms"]
            read = ways["scan, read"]["p50_ms"] / indexed
            memory = ways["scan, in memory"]["p50_ms"] / indexed
            lines.append(
                f"{backend}, {scenario}: indexed p50 {indexed:.3f} ms "
                f"({'meets' if indexed <= TARGET_P50_MS else 'misses'} <= {TARGET_P50_MS:g} ms); "
                f"{read:.1f}x the scan that reads the locations per call "
                f"({'meets' if read >= TARGET_RATIO else 'misses'} >= {TARGET_RATIO:g}x), "
                f"{memory:.1f}x the in-memory scan "
                f"({'meets' if memory >= TARGET_RATIO else 'misses'} >= {TARGET_RATIO:g}x)"
            )
    return lines


def markdown(results: dict[str, Any]) -> str:
    return (
        "# Pickup at a nearby store: FindNearbyAvailability in-process\n\n"
        f"{results['shape']}\n\n"
        + markdown_table(*table(results), left=3)
        + "\n\n"
        + "\n".join(f"- {line}" for line in verdicts(results))
        + f"\n\n{results['note']}\n\n{footer(results)}\n"
    )


def plot(results: dict[str, Any]) -> Any:
    runs = results["runs"]
    backends = list(runs)
    names = [*METHODS, *SEARCHES]
    figure, axes = plots.subplots(
        len(backends), len(SCENARIOS), figsize=(12, 4.5 * len(backends)), squeeze=False
    )
    for row, backend in enumerate(backends):
        for column, scenario in enumerate(SCENARIOS):
            ways = runs[backend][scenario]["ways"]
            ax = axes[row][column]
            where = np.arange(len(names))
            p50 = [ways[name]["p50_ms"] for name in names]
            p99 = [ways[name]["p99_ms"] for name in names]
            ax.bar(where, p99, 0.6, color="tab:blue", alpha=0.35, label="p99")
            ax.bar(where, p50, 0.6, color="tab:blue", label="p50")
            for x, low, high in zip(where, p50, p99, strict=True):
                plots.label_above(ax, x, high, f"{high:.2f}", fontsize=7)
                plots.label_above(ax, x, low, f"{low:.2f}", fontsize=7, color="white", offset=-9)
            ax.set_xticks(where)
            ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
            ax.set_yscale("log")
            ax.set_ylabel("ms per call (log)")
            ax.axhline(TARGET_P50_MS, color="grey", linestyle="--", linewidth=1)
            ax.text(
                len(names) - 0.5,
                TARGET_P50_MS,
                f"target p50 {TARGET_P50_MS:g} ms",
                fontsize=7,
                color="grey",
                ha="right",
                va="bottom",
            )
            ax.set_title(f"{backend}: {scenario}", fontsize=10)
            ax.legend(fontsize=8, loc="upper right")
    figure.suptitle(textwrap.fill(results["shape"], 150), fontsize=9)
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = BenchParser(
        __doc__,
        "nearby",
        quick={"locations": 1_000, "queries": 50, "repeats": 2},
        quick_help="1,000 locations, 50 queries, 2 repeats",
    )
    parser.add_postgres(default=None)
    parser.add_argument("--locations", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=500, help="shoppers per scenario")
    parser.add_argument("--repeats", type=int, default=4, help="rounds over the queries")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument(
        "--backends", type=listed(str, ("sqlite", "postgres")), default="sqlite,postgres"
    )
    args = parser.parse(argv)
    shape = (
        f"{args.locations:,} pickup stores at distinct US ZIP centroids, one group of all of "
        f"them, {len(SKUS)} SKUs (each at a store with p 0.5, 0-5 units; a group reservation "
        f"on each); baskets of {len(SKUS)} SKUs from {args.queries} other ZIP centroids, "
        f"{args.repeats} rounds"
    )
    results: dict[str, Any] = {**header("nearby"), "shape": shape, "runs": {}}
    results["config"] = {
        key: getattr(args, key) for key in ("locations", "queries", "repeats", "seed")
    }
    with tempfile.TemporaryDirectory() as scratch:
        for backend in args.backends:
            if backend == "postgres" and not args.postgres:
                log("postgres: skipped (no --postgres DSN)")
                continue
            rng = random.Random(args.seed)
            locations, homes = sites(args.locations, rng)
            asked = queries(homes, args.queries, rng)
            with opened(backend, Path(scratch), args.postgres) as store:
                started = time.perf_counter()
                publish(store, locations, rng)
                log(f"{backend}: published in {time.perf_counter() - started:.1f} s")
                results["runs"][backend] = measure(store, asked, args.repeats)
    print(text_table(*table(results), left=3))
    for line in verdicts(results):
        print(line)
    args.files.save(results, markdown=markdown(results), figures={"": plot(results)})


if __name__ == "__main__":
    main()
