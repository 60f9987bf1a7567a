"""Scale-out benchmark: the ledger benchmark's reservation load on 1, 2 and 4 omniroute server
processes sharing one PostgreSQL, next to 1 server on SQLite, in one run.

Every configuration gets the same client load (benchmarks/support/load.py: `--clients`
processes x `--threads` threads, closed loop; with several servers, client process i talks to
server i mod N, as behind a round-robin balancer) and the same two scenarios, taken from
benchmarks/ledger_bench.py so that the load is exactly that benchmark's:

  spread     CreateReservation, 1 item x 1 unit, random SKU of many at a random location: writers
             rarely meet (distinct SKUs)
  contended  CreateReservation, all clients on one SKU at one location: every write takes the
             same SKU lock, one after another

plus `echo` (grpc.health.v1.Health/Check) on one PostgreSQL server: the transport alone.

Per configuration and scenario: RPC/s and client-side p50/p99 latency (median of repeats), and
CPU seconds per 1,000 reservations, from the kernel's own accounting (/proc/<pid>/stat utime +
stime, read at the edges of each measured window) of the omniroute server processes and of the
PostgreSQL backends serving them (found by their application_name in pg_stat_activity;
PostgreSQL's background writers are not included). Also the bytes each reservation occupies in
PostgreSQL (tables + indexes, request_id memory included).

  .venv/bin/python benchmarks/postgres_bench.py            # full run
  .venv/bin/python benchmarks/postgres_bench.py --quick    # smoke run
  .venv/bin/python benchmarks/postgres_bench.py --profile  # also py-spy one server (needs py-spy)

PostgreSQL: --postgres DSN, else OMNIROUTE_BENCH_POSTGRES_DSN or OMNIROUTE_TEST_POSTGRES_DSN, else
postgresql://root@127.0.0.1:5432/test; it works in a schema of its own, dropped at the end.
Writes benchmarks/results/postgres.{json,md,png}. Not a test: never run it from the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from ledger_bench import location_ids, seed, workload
from ledger_bench import skus as sku_ids
from support import (
    BenchParser,
    ResultFiles,
    Server,
    SyncServicer,
    cell,
    footer,
    header,
    listed,
    log,
    markdown_table,
    median,
    omniroute_server,
    pg_schema,
    plots,
    process_cpu_seconds,
    run_load,
    text_table,
)

DEFAULT_DSN = "postgresql://root@127.0.0.1:5432/test"
CONFIGS = (("sqlite", 1), ("postgres", 1), ("postgres", 2), ("postgres", 4))
SCENARIOS = {"create": "spread", "create_hot": "contended"}
PY_SPY = Path(sys.executable).parent / "py-spy"


# --- PostgreSQL: a schema per configuration, and its backends' CPU -----------------------------


def pg_backends(admin_dsn: str, application_name: str) -> list[int]:
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def pg_bytes_per_reservation(dsn: str) -> dict[str, float]:
    """Size of the schema's reservation-related tables and indexes per reservation stored."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        count = connection.execute("SELECT count(*) FROM reservations").fetchone()[0]  # type: ignore[index]
        sizes = {
            table: int(
                connection.execute(
                    "SELECT pg_total_relation_size(%s::regclass)", (table,)
                ).fetchone()[0]  # type: ignore[index]
            )
            for table in ("reservations", "reservation_lines", "remembered_responses")
        }
    return {
        "reservations": count,
        **{f"{table}_bytes": size for table, size in sizes.items()},
        "bytes_per_reservation": sum(sizes.values()) / count if count else float("nan"),
    }


def _cpu(pid: int) -> float | None:
    try:
        return process_cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return None  # gone


class WaitSampler:
    """What the servers' PostgreSQL sessions are doing, sampled every 20 ms from
    pg_stat_activity: state and wait event (e.g. waiting for an advisory lock, for the WAL
    flush of a commit, or for the client's next statement)."""

    def __init__(self, admin_dsn: str, application_name: str) -> None:
        self.admin_dsn = admin_dsn
        self.application_name = application_name
        self.seen: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(30)
        total = sum(self.seen.values())
        return {key: count / total for key, count in self.seen.most_common(10)} if total else {}

    def _run(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            while not self._stop.wait(0.02):
                rows = admin.execute(
                    "SELECT state, wait_event, split_part(query, ' ', 1) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (self.application_name,),
                ).fetchall()
                for state, event, verb in rows:
                    self.seen[_session(state, event, verb)] += 1


def _session(state: str | None, event: str | None, verb: str | None) -> str:
    if state == "idle":
        return "idle in the pool"
    if state == "idle in transaction":
        return "in a transaction, waiting for the server's next statement"
    if event == "advisory":
        return "waiting for a SKU lock (advisory)"
    if event in {"WALSync", "WALWrite"}:
        return "committing: WAL flush"
    if event:
        return f"waiting: {event}"
    return f"executing {verb or 'a statement'}"


class CpuMeter:
    """CPU seconds used during one measured window by the servers and by their PostgreSQL
    backends; `hook` is run_load's on_window callback."""

    def __init__(
        self,
        server_pids: list[int],
        admin_dsn: str,
        application_name: str,
        sampler: WaitSampler | None = None,
    ) -> None:
        self.sampler = sampler
        self.waits: dict[str, float] = {}
        self.server_pids = server_pids
        self.admin_dsn = admin_dsn
        self.application_name = application_name
        self.start: dict[int, float] = {}
        self.pg_start: dict[int, float] = {}
        self.server_s = 0.0
        self.pg_s = 0.0
        self.pg_backends = 0
        self.pg_lost = 0

    def _pg(self) -> dict[int, float]:
        if not self.application_name:
            return {}
        found = {pid: _cpu(pid) for pid in pg_backends(self.admin_dsn, self.application_name)}
        return {pid: cpu for pid, cpu in found.items() if cpu is not None}

    def hook(self, edge: str) -> None:
        if edge == "start":
            self.start = {pid: _cpu(pid) or 0.0 for pid in self.server_pids}
            self.pg_start = self._pg()
            if self.sampler:
                self.sampler.start()
            return
        if self.sampler:
            self.waits = self.sampler.stop()
        self.server_s = sum((_cpu(pid) or 0.0) - self.start[pid] for pid in self.server_pids)
        end = self._pg()
        # A backend that appeared during the window spent all its CPU inside it; one that
        # disappeared took its last CPU with it (counted as lost, should stay 0).
        self.pg_s = sum(cpu - self.pg_start.get(pid, 0.0) for pid, cpu in end.items())
        self.pg_backends = len(end)
        self.pg_lost = len(set(self.pg_start) - set(end))


# --- one configuration -------------------------------------------------------------------------


@dataclass
class Setup:
    """One configuration's running servers (on their own schema or SQLite file), seeded."""

    backend: str
    count: int
    servers: list[Server]
    store: str
    application: str
    seed_seconds: float
    names: list[str]
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.backend} x{self.count}"


def start_config(
    stack: contextlib.ExitStack, backend: str, count: int, args: argparse.Namespace, workdir: Path
) -> Setup:
    application = f"omniroute-bench-{uuid.uuid4().hex[:8]}" if backend == "postgres" else ""
    if backend == "postgres":
        store = stack.enter_context(pg_schema(args.postgres, application))
        server_args = ["--pool-size", str(args.pool_size)]
    else:
        store = str(workdir / f"bench-{count}.sqlite3")
        server_args = ["--sqlite-synchronous", args.sqlite_synchronous]
    servers = [
        stack.enter_context(
            omniroute_server(
                store,
                args=[*server_args, "--workers", str(args.workers)],
                log_path=workdir / f"{backend}-{count}-{index}.log",
            )
        )
        for index in range(count)
    ]
    seconds = seed(servers[0].address, args.locations, args.skus)
    names = list(args.scenarios)
    if args.echo and (backend, count) == ("postgres", 1):
        names.append("echo")
    log(f"[{backend} x{count}] pids {[s.pid for s in servers]}; seeded in {seconds:.1f} s")
    return Setup(
        backend, count, servers, store, application, seconds, names, {name: [] for name in names}
    )


def run_window(
    setup: Setup, name: str, repeat: int, args: argparse.Namespace, workdir: Path
) -> None:
    """One measured window of scenario `name` on `setup`'s servers."""
    backend, count, servers = setup.backend, setup.count, setup.servers
    first = repeat == 0 and args.profile
    sampler = (
        WaitSampler(args.postgres, setup.application) if first and backend == "postgres" else None
    )
    meter = CpuMeter([s.pid for s in servers], args.postgres, setup.application, sampler)
    profiler = None
    if first and (backend, count) == ("postgres", 1):
        profiler = start_profile(servers[0].pid, name, args, workdir)
    result = run_load(
        [server.address for server in servers],
        workload(name, args.locations, args.skus),
        **args.load,
        seed=repeat * 100 + count,
        on_window=meter.hook,
    )
    if profiler is not None:
        setup.profile[name] = finish_profile(profiler)
    run = {
        "rps": result.rps,
        "ok": result.ok,
        "errors": result.errors,
        "p50_ms": result.p50_ms,
        "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms,
        "server_cpu_s": meter.server_s,
        "pg_cpu_s": meter.pg_s,
        "pg_backends": meter.pg_backends,
        "pg_backends_lost": meter.pg_lost,
        "client_cores": result.client_cpu,
        "machine_cores": result.machine_cpu,
        "duration_s": result.duration_s,
    }
    if meter.waits:
        run["pg_sessions"] = meter.waits
    setup.runs[name].append(run)
    log(
        f"[{setup.label}] {repeat + 1}/{args.repeats} {name:<10} {result.rps:7.0f} RPC/s "
        f"p50 {result.p50_ms:6.2f} p99 {result.p99_ms:7.2f} ms  errors "
        f"{result.error_count}  CPU/1k: server {per_1k(meter.server_s, result.ok)} "
        f"pg {per_1k(meter.pg_s, result.ok)}  machine {result.machine_cpu or 0:.2f}"
    )


def run_configs(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    """Every configuration's servers run at once (idle ones cost nothing measurable) and the
    repeats go round-robin over configurations and scenarios, so that slow drifts in other
    load on the machine spread over all of them alike."""
    with contextlib.ExitStack() as stack:
        setups = [start_config(stack, b, n, args, workdir) for b, n in args.configs]
        for repeat in range(args.repeats):
            for setup in setups:
                for name in setup.names:
                    run_window(setup, name, repeat, args, workdir)
        return [
            {
                "backend": setup.backend,
                "servers": setup.count,
                "seed_seconds": setup.seed_seconds,
                "scenarios": {name: summarise_runs(found) for name, found in setup.runs.items()},
                "storage": pg_bytes_per_reservation(setup.store)
                if setup.backend == "postgres"
                else None,
                "profile": setup.profile or None,
            }
            for setup in setups
        ]


def per_1k(cpu_s: float, ok: int) -> str:
    return f"{1000 * cpu_s / ok:.2f}" if ok else "-"


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the rates and percentiles; CPU per 1,000 as the ratio of the sums."""
    ok = sum(run["ok"] for run in runs)
    errors: Counter[str] = Counter()
    for run in runs:
        errors.update(run["errors"])
    server_s = sum(run["server_cpu_s"] for run in runs)
    pg_s = sum(run["pg_cpu_s"] for run in runs)
    window_s = sum(run["duration_s"] for run in runs)
    return {
        "rps": median([run["rps"] for run in runs]),
        "p50_ms": median([run["p50_ms"] for run in runs]),
        "p90_ms": median([run["p90_ms"] for run in runs]),
        "p99_ms": median([run["p99_ms"] for run in runs]),
        "ok": ok,
        "errors": dict(errors),
        "server_cpu_s_per_1k": 1000 * server_s / ok if ok else None,
        "pg_cpu_s_per_1k": 1000 * pg_s / ok if ok else None,
        "server_cores": server_s / window_s,
        "pg_cores": pg_s / window_s,
        "client_cores": median([run["client_cores"] or 0.0 for run in runs]),
        "machine_cores": median([run["machine_cores"] or 0.0 for run in runs]),
        "repeats": runs,
    }


# --- where the time goes ----------------------------------------------------------------------

# py-spy frames look like "function (path/file.py:line)"; the innermost frame that matches a
# pattern decides (first pattern wins within a frame).
CATEGORIES = (
    ("waiting for a pooled connection", r"psycopg_pool/pool\.py.*|WaitingClient"),
    ("database round trips (waiting for PostgreSQL)", r"^Connection\.wait \(psycopg/"),
    ("psycopg driver (Python)", r"psycopg/"),
    ("storage SQL layer", r"server/storage/"),
    ("ledger rules", r"server/domain/"),
    ("transport: validate, convert, idempotency", r"server/transport/"),
    ("gRPC and protobuf (Python side)", r"grpc/|google/protobuf|concurrent/futures"),
)


def start_profile(
    pid: int, name: str, args: argparse.Namespace, workdir: Path
) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy on the server for the warm-up + window with `--idle`: the wall time of every
    thread, so waits show. (Its `--gil` mode, for CPU, got too few samples on a loaded 2-core
    machine; the CPU split comes from `in_process` instead.)"""
    spy = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if not spy:
        log("--profile: py-spy is not installed (pip install py-spy into .venv); skipped")
        return None
    seconds = str(int(args.warmup + args.duration))
    wall_path = workdir / f"profile-{name}-wall.txt"
    process = subprocess.Popen(
        [
            spy,
            *("record", "--pid", str(pid), "--duration", seconds, "--rate", "100"),
            *("--idle", "--format", "raw", "-o", str(wall_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, wall_path


def finish_profile(started: tuple[subprocess.Popen[bytes], Path] | None) -> dict[str, Any]:
    if started is None:
        return {}
    process, wall_path = started
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return {"wall": categorise(wall_path, handlers_only=True)}


def categorise(path: Path, *, handlers_only: bool = False) -> dict[str, Any]:
    """Shares of samples per category; `handlers_only` keeps threads inside an RPC handler
    (idle pool threads waiting for work would swamp a wall-time profile)."""
    counts: Counter[str] = Counter()
    if not path.exists():
        return {}
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        frames = stack.split(";")
        if handlers_only and not any("server/transport/" in frame for frame in frames):
            continue
        counts[_category(frames)] += int(number)
    total = sum(counts.values())
    shares = {name: count / total for name, count in counts.most_common()} if total else {}
    return {"samples": total, "shares": shares}


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in CATEGORIES:
            if re.search(pattern, frame):
                return name
    return "other Python (threading, stdlib)"


def in_process(target: str, args: argparse.Namespace, application: str) -> dict[str, Any]:
    """The CreateReservation handler called directly, without gRPC, on one thread: its CPU
    and wall time per call, the SQL statements (round trips) per call, the PostgreSQL backend's
    CPU per call, and (under cProfile with a thread-CPU clock, a separate pass) the shares
    of its CPU time."""
    import cProfile  # noqa: PLC0415
    import pstats  # noqa: PLC0415
    import random  # noqa: PLC0415

    from omniroute.inventory.v1 import inventory_pb2 as inv  # noqa: PLC0415
    from omniroute.inventory.v1 import reservation_pb2 as res  # noqa: PLC0415

    from server.domain.ledger import Ledger  # noqa: PLC0415
    from server.storage.factory import open_store  # noqa: PLC0415
    from server.transport.inventory import InventoryServicer  # noqa: PLC0415
    from server.transport.reservation import ReservationServicer  # noqa: PLC0415
    from server.transport.transactions import Transactions  # noqa: PLC0415

    store = open_store(target, sqlite_synchronous=args.sqlite_synchronous, pool_size=1)
    ledger = Ledger()
    transactions = Transactions(store, ledger.clock)
    inventory = SyncServicer(InventoryServicer(transactions, ledger))
    reservations = SyncServicer(ReservationServicer(transactions, ledger))
    locations = location_ids(args.locations)
    skus = sku_ids(args.skus)
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[
                inv.Location(
                    id=loc,
                    display_name=loc,
                    type=inv.LOCATION_TYPE_WAREHOUSE,
                    position=inv.GeoPoint(latitude=40, longitude=-75),
                )
                for loc in locations
            ]
        ),
        None,
    )
    levels = [
        inv.StockLevel(location_id=loc, sku=sku, on_hand=1_000_000)
        for sku in skus
        for loc in locations[:5]
    ]
    for start in range(0, len(levels), 1000):
        inventory.SetStock(inv.SetStockRequest(levels=levels[start : start + 1000]), None)
    rng = random.Random(7)

    def request() -> Any:
        item = res.ReservationItem(
            sku=rng.choice(skus), place=inv.Place(location_id=rng.choice(locations[:5])), quantity=1
        )
        return res.CreateReservationRequest(items=[item], request_id=uuid.uuid4().hex)

    statements = 0
    original = psycopg.Connection.execute

    def counting(self: Any, *call_args: Any, **kwargs: Any) -> Any:
        nonlocal statements
        statements += 1
        return original(self, *call_args, **kwargs)

    calls = args.in_process_calls
    for _ in range(50):
        reservations.CreateReservation(request(), None)
    batch = [request() for _ in range(calls)]
    meter = CpuMeter([], args.postgres, application)
    meter.hook("start")
    psycopg.Connection.execute = counting  # type: ignore[method-assign]
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        for message in batch:
            reservations.CreateReservation(message, None)
    finally:
        psycopg.Connection.execute = original  # type: ignore[method-assign]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    meter.hook("end")

    profiler = cProfile.Profile(timer=time.thread_time)
    batch = [request() for _ in range(calls // 2)]
    profiler.enable()
    for message in batch:
        reservations.CreateReservation(message, None)
    profiler.disable()
    store.close()
    shares: Counter[str] = Counter()
    for (filename, _line, function), row in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        shares[_profile_category(filename, function)] += row[2]  # tottime
    total = sum(shares.values())
    return {
        "calls": calls,
        "cpu_ms_per_call": 1000 * cpu / calls,
        "wall_ms_per_call": 1000 * wall / calls,
        "statements_per_call": statements / calls if statements else None,
        "pg_cpu_ms_per_call": 1000 * meter.pg_s / calls if application else None,
        "cpu_shares_cprofile": {name: value / total for name, value in shares.most_common()},
    }


def _profile_category(filename: str, function: str) -> str:
    if "psycopg" in filename or "psycopg" in function:
        return "psycopg driver (Python and libpq)"
    if "sqlite3" in function:
        return "SQLite engine (in process)"
    for name, folder in (
        ("storage SQL layer", "server/storage/"),
        ("ledger rules", "server/domain/"),
        ("transport: validate, convert, idempotency", "server/transport/"),
    ):
        if folder in filename:
            return name
    if "protobuf" in filename or "protobuf" in function or "grpc" in filename:
        return "protobuf"
    return "other Python (stdlib: hashlib, uuid, json, threading)"


# --- output ------------------------------------------------------------------------------------

HEADERS = (
    "store",
    "servers",
    "scenario",
    "RPC/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "server CPU s/1k",
    "PG CPU s/1k",
    "total CPU s/1k",
    "server cores",
    "PG cores",
)


def rows(results: dict[str, Any]) -> list[list[object]]:
    table = []
    for config in results["configs"]:
        for name, summary in config["scenarios"].items():
            server = summary["server_cpu_s_per_1k"]
            pg = summary["pg_cpu_s_per_1k"] if config["backend"] == "postgres" else None
            table.append(
                [
                    "PostgreSQL" if config["backend"] == "postgres" else "SQLite",
                    config["servers"],
                    SCENARIOS.get(name, "echo (Health/Check)"),
                    f"{summary['rps']:,.0f}",
                    f"{summary['p50_ms']:.2f}",
                    f"{summary['p99_ms']:.2f}",
                    sum(summary["errors"].values()),
                    cell(server),
                    cell(pg),
                    cell(None if server is None else server + (pg or 0)),
                    f"{summary['server_cores']:.2f}",
                    cell(None if pg is None else summary["pg_cores"]),
                ]
            )
    return table


def findings(results: dict[str, Any]) -> list[str]:
    """Plain statements computed from the numbers (the capacity paragraph's inputs)."""
    out = []
    by = {(c["backend"], c["servers"]): c["scenarios"] for c in results["configs"]}
    pg = [by[key] for key in sorted(by) if key[0] == "postgres"]
    if not pg:
        return out
    for name, label in SCENARIOS.items():
        rates = [s[name]["rps"] for s in pg if name in s]
        costs = [
            s[name]["server_cpu_s_per_1k"] + s[name]["pg_cpu_s_per_1k"]
            for s in pg
            if name in s and s[name]["server_cpu_s_per_1k"] is not None
        ]
        if rates and costs:
            out.append(
                f"{label}: PostgreSQL x1/x2/x4 RPC/s "
                + " / ".join(f"{rate:,.0f}" for rate in rates)
                + " (x4 = "
                + f"{rates[-1] / rates[0]:.2f} of x1); total CPU s per 1,000 reservations "
                + " / ".join(f"{cost:.2f}" for cost in costs)
            )
    return out


def capacity(results: dict[str, Any]) -> dict[str, float]:
    """Per-reservation CPU costs for sizing: medians over the PostgreSQL configurations of
    the spread case (the common case at peak: many SKUs)."""
    spread = [
        c["scenarios"]["create"]
        for c in results["configs"]
        if c["backend"] == "postgres" and "create" in c["scenarios"]
    ]
    hot = [
        c["scenarios"]["create_hot"]
        for c in results["configs"]
        if c["backend"] == "postgres" and "create_hot" in c["scenarios"]
    ]
    storage = [c["storage"] for c in results["configs"] if c.get("storage")]
    return {
        "server_ms_per_reservation": median([s["server_cpu_s_per_1k"] for s in spread]),
        "pg_ms_per_reservation": median([s["pg_cpu_s_per_1k"] for s in spread]),
        "hot_sku_rps": max((s["rps"] for s in hot), default=float("nan")),
        "bytes_per_reservation": median([s["bytes_per_reservation"] for s in storage]),
    }


def capacity_text(results: dict[str, Any]) -> str:
    cap = results["capacity"]
    server_ms, pg_ms = cap["server_ms_per_reservation"], cap["pg_ms_per_reservation"]
    totals = [
        c["scenarios"]["create"]["server_cpu_s_per_1k"]
        + c["scenarios"]["create"]["pg_cpu_s_per_1k"]
        for c in results["configs"]
        if c["backend"] == "postgres" and "create" in c["scenarios"]
    ]

    def need(rate: int) -> str:
        servers = rate * server_ms / 1000 / 0.6  # cores at 60% busy
        database = rate * pg_ms / 1000 / 0.6
        return (
            f"{rate:,}/s needs ~{servers:.0f} server processes and ~{database:.0f} PostgreSQL cores"
        )

    return (
        "**Capacity (from these measurements).** In the spread case a reservation costs "
        f"~{server_ms:.1f} ms of CPU in an omniroute server (gRPC, Python ledger, psycopg) and "
        f"~{pg_ms:.1f} ms in PostgreSQL; the total stayed flat from 1 to 4 servers "
        f"({min(totals):.2f}-{max(totals):.2f} s per 1,000), so capacity grows with machines. "
        "One server process uses at most one core for its Python work (the GIL), so it "
        f"sustains ~{1000 / server_ms:,.0f} reservations/s at 100% CPU, and a PostgreSQL core "
        f"~{1000 / pg_ms:,.0f}/s. Plan one server process per core at ~60% CPU behind a "
        f"round-robin balancer, and about {pg_ms / server_ms:.2f} PostgreSQL cores per server "
        f"core: {need(1_000)}; {need(5_000)}; {need(20_000)} (past one comfortable PostgreSQL "
        "machine: shard by SKU or use a distributed Postgres-compatible database). "
        "Connections = processes x --pool-size; keep that under max_connections (or pool with "
        f"PgBouncer). Storage: ~{cap['bytes_per_reservation']:,.0f} bytes per reservation "
        f"(reservation row, line, remembered response, indexes), ~"
        f"{cap['bytes_per_reservation'] / 1000:.1f} GB per million; request ids are forgotten "
        "after 7 days, reservations are kept until deleted. A single hot SKU does not scale "
        "out: its writers take turns on the SKU's lock, and the lock is held for the "
        "transaction's round trips (4, pipelined) plus the commit's WAL flush, which capped "
        "one SKU at "
        f"~{cap['hot_sku_rps']:,.0f} reservations/s here whatever the number of servers. "
        "Measured on a 2-core machine shared with the load generator and other work; "
        "dedicated hardware should do better per reservation, not worse."
    )


def reading(results: dict[str, Any]) -> list[str]:
    """What the profile numbers say, computed from them."""
    out = []
    by = {(c["backend"], c["servers"]): c for c in results["configs"]}
    inproc = results.get("in_process") or {}
    pg_one = by.get(("postgres", 1))
    if pg_one and "echo" in pg_one["scenarios"] and "create" in pg_one["scenarios"]:
        echo = pg_one["scenarios"]["echo"]["server_cpu_s_per_1k"]
        create = pg_one["scenarios"]["create"]["server_cpu_s_per_1k"]
        out.append(
            f"Transport: a trivial RPC costs the server {echo:.2f} ms of CPU, "
            f"{echo / create:.0%} of a reservation's {create:.2f} ms."
        )
    if "postgres" in inproc and "sqlite" in inproc:
        pg, lite = inproc["postgres"], inproc["sqlite"]
        driver = pg["cpu_shares_cprofile"].get("psycopg driver (Python and libpq)", 0.0)
        out.append(
            f"Database round trips: the handler alone (no gRPC) costs {pg['cpu_ms_per_call']:.2f}"
            f" ms of CPU on PostgreSQL against {lite['cpu_ms_per_call']:.2f} ms on SQLite; "
            f"{driver:.0%} of it is psycopg issuing {pg['statements_per_call']:.0f} statements "
            "per reservation (in 4 round trips: pipeline mode). The ledger rules themselves "
            "are a few percent."
        )
        if pg_one and "create" in pg_one["scenarios"]:
            loaded = pg_one["scenarios"]["create"]["server_cpu_s_per_1k"]
            out.append(
                f"Under load the server spends {loaded:.2f} ms per reservation against "
                f"{pg['cpu_ms_per_call']:.2f} ms for the handler alone: the difference is gRPC "
                "(see the floor above) and hand-offs between the worker threads (GIL, "
                "connection pool)."
            )
    sessions = (
        pg_one["scenarios"]["create"]["repeats"][0].get("pg_sessions")
        if pg_one and "create" in pg_one["scenarios"]
        else None
    )
    if sessions:
        waiting = sessions.get("in a transaction, waiting for the server's next statement", 0)
        out.append(
            f"PostgreSQL is not the bottleneck: in the spread case its sessions spent {waiting:.0%}"
            " of the time inside a transaction waiting for the omniroute server's next "
            "statement (the server, CPU-bound in Python on a shared 2-core machine, is)."
        )
    hot = (
        pg_one["scenarios"]["create_hot"]["repeats"][0].get("pg_sessions")
        if pg_one and "create_hot" in pg_one["scenarios"]
        else None
    )
    if hot:
        out.append(
            "Hot SKU: sessions wait for the SKU lock "
            f"{hot.get('waiting for a SKU lock (advisory)', 0):.0%} of the time; the lock "
            "holder's round trips (4 per reservation, pipelined) and WAL flush set the rate."
        )
    return out


def markdown(results: dict[str, Any]) -> str:
    config = results["config"]
    text = [
        "# PostgreSQL scale-out benchmark: 1, 2, 4 servers on PostgreSQL vs 1 on SQLite",
        "",
        f"`{results['command']}`",
        "",
        f"Same client load everywhere: {config['clients']} client processes x "
        f"{config['threads']} threads, closed loop over loopback, client process i on server "
        f"i mod N; {config['warmup_s']:g} s warm-up + {config['duration_s']:g} s measured per "
        f"scenario, {config['repeats']} repeats (medians; CPU per 1,000 = sum of CPU / sum of "
        f"reservations). Workload = benchmarks/ledger_bench.py's CreateReservation (1 item x "
        f"1 unit, request_id set): spread = random SKU of {config['skus']} at a random one of "
        f"{config['locations']} locations; contended = one SKU at one location. SQLite: "
        f"synchronous={config['sqlite_synchronous']}; PostgreSQL 15: fsync and "
        f"synchronous_commit on, --pool-size {config['pool_size']} per server. CPU: utime + "
        "stime from /proc for the server processes and for the PostgreSQL backends serving "
        "them (by application_name; background writers not included).",
        "",
        f"**{results['note']}.** With 2 cores, more servers cannot add throughput here; what "
        "matters is that throughput does not collapse and CPU per reservation stays flat.",
        "",
        markdown_table(HEADERS, rows(results)),
        "",
        *[f"- {line}" for line in findings(results)],
        "",
        capacity_text(results),
        "",
    ]
    text += [
        "## Where the time goes",
        "",
        *[f"- {line}" for line in reading(results)],
        "",
        "Measurements:",
        "",
        *time_lines(results),
        "",
    ]
    text += [footer(results), ""]
    return "\n".join(text)


def time_lines(results: dict[str, Any]) -> list[str]:
    """The decomposition: transport floor (echo), handler without gRPC, profiles."""
    lines = []
    by = {(c["backend"], c["servers"]): c["scenarios"] for c in results["configs"]}
    one = by.get(("postgres", 1), {})
    if "echo" in one and "create" in one:
        echo = one["echo"]["server_cpu_s_per_1k"]
        create = one["create"]["server_cpu_s_per_1k"]
        lines.append(
            f"- Under load (PostgreSQL, 1 server, spread): {create:.2f} ms of server CPU per "
            f"reservation; a trivial RPC (Health/Check) costs {echo:.2f} ms on the same server: "
            f"the gRPC transport floor is ~{echo / create:.0%} of a reservation's server CPU."
        )
    for backend, found in (results.get("in_process") or {}).items():
        statements = found.get("statements_per_call")
        pg = found.get("pg_cpu_ms_per_call")
        shares = ", ".join(
            f"{name} {share:.0%}" for name, share in found["cpu_shares_cprofile"].items()
        )
        lines.append(
            f"- {backend}, CreateReservation handler called directly (no gRPC, one thread, "
            f"{found['calls']:,} calls): {found['cpu_ms_per_call']:.2f} ms CPU and "
            f"{found['wall_ms_per_call']:.2f} ms wall per call"
            + (f", {statements:.0f} SQL statements per call" if statements else "")
            + (f", {pg:.2f} ms PostgreSQL backend CPU per call" if pg is not None else "")
            + f". Its CPU under cProfile: {shares}."
        )
    for config in results["configs"]:
        for name, summary in config["scenarios"].items():
            sessions = summary["repeats"][0].get("pg_sessions")
            if sessions and config["servers"] in (1, 4):
                shares = ", ".join(f"{key} {share:.0%}" for key, share in sessions.items())
                lines.append(
                    f"- PostgreSQL sessions during {SCENARIOS.get(name, name)} with "
                    f"{config['servers']} server(s) (pg_stat_activity, every 20 ms): {shares}"
                )
        for name, views in (config.get("profile") or {}).items():
            for view, title in (("wall", "wall time of threads inside an RPC handler"),):
                found = views.get(view) or {}
                if not found.get("samples"):
                    continue
                shares = ", ".join(
                    f"{category} {share:.0%}" for category, share in found["shares"].items()
                )
                lines.append(
                    f"- py-spy under load ({config['backend']} x{config['servers']}, "
                    f"{SCENARIOS.get(name, name)}), {title}, {found['samples']:,} samples: "
                    f"{shares}"
                )
    return lines


def plot(results: dict[str, Any]) -> Any:
    import numpy as np  # noqa: PLC0415  (clients never need it)

    configs = results["configs"]
    labels = [
        f"{'PostgreSQL' if c['backend'] == 'postgres' else 'SQLite'}\n{c['servers']} server"
        + ("s" if c["servers"] > 1 else "")
        for c in configs
    ]
    names = [name for name in SCENARIOS if all(name in c["scenarios"] for c in configs)]
    colours = {"create": "#1f5f99", "create_hot": "#d2691e"}
    width, slots = plots.slots(len(names), len(configs))
    figure, (rate, latency, cpu) = plots.subplots(1, 3, figsize=(16, 5.4))
    for name, where in zip(names, slots, strict=True):
        label = SCENARIOS[name]
        rps = [c["scenarios"][name]["rps"] for c in configs]
        for bar in rate.bar(where, rps, width, color=colours[name], label=label):
            top = bar.get_height()
            plots.label_above(rate, bar.get_x() + bar.get_width() / 2, top, f"{top:,.0f}")
        plots.p50_p99_bars(
            latency,
            where,
            [c["scenarios"][name]["p50_ms"] for c in configs],
            [c["scenarios"][name]["p99_ms"] for c in configs],
            width,
            colours[name],
            labels=(f"{label} p50", f"{label} p99"),
            high="{:.0f}",
        )
        server = np.array(
            [c["scenarios"][name]["server_cpu_s_per_1k"] or 0 for c in configs], dtype=float
        )
        pg = np.array(
            [
                (c["scenarios"][name]["pg_cpu_s_per_1k"] or 0) if c["backend"] == "postgres" else 0
                for c in configs
            ],
            dtype=float,
        )
        cpu.bar(where, server, width, color=colours[name], label=f"{label}: omniroute")
        cpu.bar(
            where,
            pg,
            width,
            bottom=server,
            color=colours[name],
            alpha=0.4,
            hatch="//",
            label=f"{label}: PostgreSQL",
        )
        for px, low, high in zip(where, server, server + pg, strict=True):
            cpu.annotate(f"{high:.2f}", (px, high), ha="center", va="bottom", fontsize=7)
            cpu.annotate(
                f"{low:.2f}",
                (px, low / 2),
                ha="center",
                va="center",
                fontsize=7,
                color="white",
            )
    for axis in (rate, latency, cpu):
        axis.set_xticks(np.arange(len(configs)), labels, fontsize=8)
        axis.grid(axis="y", alpha=0.3, which="both")
    rate.set_ylabel("CreateReservation RPC/s (median of repeats)")
    rate.set_title("Throughput: same client load on every configuration", fontsize=10)
    rate.set_ylim(0, rate.get_ylim()[1] * 1.12)
    rate.legend(fontsize=8, loc="upper right")
    latency.set_yscale("log")
    latency.set_ylabel("client latency, ms (log scale)")
    latency.set_title("Latency: p50 (solid) and p99 (light)", fontsize=10)
    latency.set_ylim(latency.get_ylim()[0], latency.get_ylim()[1] * 2.5)
    latency.legend(fontsize=7, loc="upper left", ncol=2)
    cpu.set_ylabel("CPU seconds per 1,000 reservations")
    cpu.set_title("CPU per 1,000 reservations: server (solid) + PostgreSQL (hatched)", fontsize=10)
    cpu.set_ylim(0, cpu.get_ylim()[1] * 1.3)
    cpu.legend(fontsize=7, loc="upper left", ncol=2)
    config = results["config"]
    figure.suptitle(
        "omniroute on PostgreSQL (1, 2, 4 server processes) and SQLite (1): "
        f"{config['clients']} client processes x {config['threads']} threads, "
        f"{config['duration_s']:g} s x {config['repeats']} per scenario\n"
        f"{results['machine']['cores']} cores shared by servers, PostgreSQL and clients: "
        "flat throughput and flat CPU per reservation are the result to look for",
        fontsize=10,
    )
    return figure


# --- main --------------------------------------------------------------------------------------


def _config(item: str) -> tuple[str, int]:
    backend, _, count = item.partition(":")
    if backend not in {"sqlite", "postgres"}:
        raise ValueError(f"{backend!r} is neither sqlite nor postgres")
    return backend, int(count)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = BenchParser(
        __doc__,
        "postgres",
        load={"duration": 8.0, "threads": 4, "repeats": 2},
        quick={"duration": 3.0, "warmup": 1.0, "repeats": 1, "skus": 200},
        quick_help="3 s windows, 1 s warm-up, 1 repeat, 200 SKUs",
    )
    parser.add_postgres(default=DEFAULT_DSN)
    parser.add_argument("--locations", type=int, default=20)
    parser.add_argument("--skus", type=int, default=500)
    parser.add_argument(
        "--pool-size",
        type=int,
        default=6,
        help="connections per server (every configuration's servers are up at once: "
        "1+2+4 servers x 6 = 42 connections)",
    )
    parser.add_argument("--workers", type=int, default=16, help="RPC threads per server")
    parser.add_argument("--sqlite-synchronous", default="FULL", choices=("FULL", "NORMAL"))
    parser.add_argument(
        "--configs",
        type=listed(_config),
        default=",".join(f"{backend}:{count}" for backend, count in CONFIGS),
        help="backend:servers list",
    )
    parser.add_argument("--scenarios", type=listed(str, SCENARIOS), default=",".join(SCENARIOS))
    parser.add_argument("--no-echo", dest="echo", action="store_false", help="skip echo")
    parser.add_argument("--profile", action="store_true", help="py-spy one PostgreSQL server")
    parser.add_argument(
        "--in-process-calls",
        type=int,
        default=1000,
        help="CreateReservation handler calls without gRPC, per store (0: skip)",
    )
    parser.add_argument(
        "--replot", type=Path, default=None, help="only redraw .md and .png from this JSON"
    )
    return parser.parse(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replot:
        results = json.loads(args.replot.read_text())
        files = ResultFiles(args.replot.parent, args.replot.stem)
        files.save(markdown=markdown(results), figures={"": plot(results)})
        return 0
    results: dict[str, Any] = {
        **header("postgres"),
        "config": {
            **args.load,
            "repeats": args.repeats,
            "locations": args.locations,
            "skus": args.skus,
            "pool_size": args.pool_size,
            "workers": args.workers,
            "sqlite_synchronous": args.sqlite_synchronous,
            "configs": args.configs,
            "scenarios": args.scenarios,
        },
        "configs": [],
    }
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="postgres-bench-") as workdir:
        if args.in_process_calls:
            results["in_process"] = {}
            if any(backend == "postgres" for backend, _ in args.configs):
                application = f"omniroute-inproc-{uuid.uuid4().hex[:8]}"
                with pg_schema(args.postgres, application) as dsn:
                    results["in_process"]["postgres"] = in_process(dsn, args, application)
            if any(backend == "sqlite" for backend, _ in args.configs):
                target = str(Path(workdir) / "in-process.sqlite3")
                results["in_process"]["sqlite"] = in_process(target, args, "")
        results["configs"] = run_configs(args, Path(workdir))
    results["seconds"] = time.perf_counter() - began
    if any(c["backend"] == "postgres" for c in results["configs"]):
        results["capacity"] = capacity(results)

    print()
    print(results["note"])
    print(
        f"{args.clients} client processes x {args.threads} threads; {args.duration:g} s windows "
        f"x {args.repeats} repeats; latencies client-side; CPU s per 1,000 reservations"
    )
    print(text_table(HEADERS, rows(results), left=3))
    for line in findings(results):
        print(line)
    if "capacity" in results:
        print()
        print(capacity_text(results))
    print()
    for line in [*reading(results), *time_lines(results)]:
        print(line)
    args.files.save(results, markdown=markdown(results), figures={"": plot(results)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
