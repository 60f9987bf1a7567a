"""Reusable pieces of the gRPC benchmarks: the real server as a subprocess, closed-loop load
from several client processes over loopback, percentiles, machine facts, and result files.

The load model: `clients` processes (multiprocessing, spawn), each with its own channel and
`threads` threads; every thread issues one RPC after another (closed loop) for a warm-up and
then a measured window. Every process starts its window at the same moment (CLOCK_MONOTONIC is
system-wide on Linux). A call counts in the window if it starts inside it; latencies are wall
time per call as the client sees it. Failed calls are counted by status code, apart from the
successful ones, and are not in the latency figures.

A workload is a picklable `Workload(factory, params)`: `factory(channel, params, rng)` runs in
the client process, once per thread, and returns a zero-argument callable making one RPC. A call
that also makes untimed RPCs (set-up, clean-up) returns `Measured(seconds, note)`: its latency is
then `seconds`, the timed part only, and non-empty notes are counted per window (`notes`).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing as mp
import os
import platform
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import numpy as np
import psycopg

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PYTHON = str(REPO / ".venv" / "bin" / "python")
LISTENING = "omniroute listening on port "

Call = Callable[[], object]
Factory = Callable[[grpc.Channel, dict[str, Any], random.Random], Call]


# --- the server under test -------------------------------------------------------------------


@dataclass
class Server:
    """A running `python -m server` subprocess."""

    process: subprocess.Popen[str]
    port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (all its threads)."""
        return process_cpu_seconds(self.pid)


@contextmanager
def omniroute_server(
    store: str | Path,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    entry: Sequence[str] = ("-m", "server"),
    start_timeout_s: float = 60.0,
    stop_timeout_s: float = 30.0,
    cwd: Path = REPO,
) -> Iterator[Server]:
    """Starts `python -m server --address localhost:0 --store STORE ARGS` and yields it once it
    says which port it listens on; SIGTERM (graceful stop) on exit, SIGKILL if that hangs.
    `entry` replaces `-m server`, e.g. with a script that instruments the server first; `cwd`
    is the checkout whose code serves (another commit's worktree, for a baseline)."""
    log_path = log_path or Path(f"{store}.server.log")
    # Checkouts from before the `omniroute` command serve without a subcommand.
    serve = ["serve"] if (cwd / "server" / "cli.py").exists() else []
    command = [PYTHON, *entry, *serve, "--address", "localhost:0", "--store", str(store), *args]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "OMNIROUTE_LOG_LEVEL": "WARNING", **(env or {})},
        )
        try:
            port = _await_port(process, start_timeout_s, log_path)
            yield Server(process, port, log_path)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(stop_timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout:
                process.stdout.close()


def _await_port(process: subprocess.Popen[str], timeout_s: float, log_path: Path) -> int:
    found: list[int] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(LISTENING):
                found.append(int(line[len(LISTENING) :].split()[0]))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not found:
        process.kill()
        raise RuntimeError(
            f"server did not start within {timeout_s} s; log:\n{log_path.read_text()[-3000:]}"
        )
    return found[0]


def wait_ready(address: str, timeout_s: float = 30.0) -> None:
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)


# --- load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """What a call returns when only part of it is timed (see the module doc)."""

    seconds: float
    note: str = ""


@dataclass(frozen=True)
class Workload:
    """What each client thread calls: `factory(channel, params, rng)` -> one-RPC callable."""

    name: str
    factory: Factory
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadResult:
    name: str
    duration_s: float
    clients: int
    threads: int
    ok: int
    errors: dict[str, int]
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    server_cpu: float | None = None  # cores the server process used during the window
    client_cpu: float | None = None  # cores all client processes used during the window
    machine_cpu: float | None = None  # cores busy on the whole machine during the window
    notes: dict[str, int] = field(default_factory=dict)  # Measured.note counts in the window

    @property
    def other_cpu(self) -> float | None:
        """Cores busy with neither the server nor the clients: other work on the machine."""
        if self.machine_cpu is None or self.server_cpu is None or self.client_cpu is None:
            return None
        return max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run_load(
    address: str | Sequence[str],
    workload: Workload,
    *,
    clients: int,
    threads: int,
    warmup_s: float,
    duration_s: float,
    server_pid: int | None = None,
    seed: int = 0,
    on_window: Callable[[str], None] | None = None,
) -> LoadResult:
    """Closed-loop load from `clients` processes x `threads` threads; see the module doc.
    Several addresses (several servers): client process i uses address i mod their number.
    `on_window("start")` and `on_window("end")` run at the window's edges, e.g. to read the
    CPU time of other processes."""
    addresses = [address] if isinstance(address, str) else list(address)
    context = mp.get_context("spawn")
    ready = context.Queue()
    results = context.Queue()
    go = context.Event()
    start_at = context.Value("d", 0.0)
    workers = [
        context.Process(
            target=_client_main,
            args=(
                addresses[index % len(addresses)],
                workload,
                threads,
                seed * 1000 + index,
                warmup_s,
                duration_s,
                ready,
                go,
                start_at,
                results,
            ),
            daemon=True,
        )
        for index in range(clients)
    ]
    for worker in workers:
        worker.start()
    try:
        _await_clients(ready, workers, timeout_s=120)
        start_at.value = time.monotonic() + 0.1
        go.set()
        window_start = start_at.value + warmup_s
        window_end = window_start + duration_s
        server_cpu = machine_cpu = None
        _sleep_until(window_start)
        server_before = process_cpu_seconds(server_pid) if server_pid else None
        machine_before = machine_busy_seconds()
        if on_window:
            on_window("start")
        _sleep_until(window_end)
        if on_window:
            on_window("end")
        if server_before is not None and server_pid:
            server_cpu = (process_cpu_seconds(server_pid) - server_before) / duration_s
        machine_cpu = (machine_busy_seconds() - machine_before) / duration_s
        latencies = array("d")
        errors: Counter[str] = Counter()
        notes: Counter[str] = Counter()
        client_cpu_s = 0.0
        for _ in workers:
            kind, payload = results.get(timeout=duration_s + 120)
            if kind != "done":
                raise RuntimeError(f"client failed: {payload}")
            latencies.frombytes(payload["latencies"])
            errors.update(payload["errors"])
            notes.update(payload.get("notes", {}))
            client_cpu_s += payload["cpu_s"]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    sample = np.frombuffer(latencies, dtype=np.float64) if latencies else np.zeros(1)
    p50, p90, p99 = np.percentile(sample, [50, 90, 99])
    return LoadResult(
        name=workload.name,
        duration_s=duration_s,
        clients=clients,
        threads=threads,
        ok=len(latencies),
        errors=dict(errors),
        rps=(len(latencies) + sum(errors.values())) / duration_s,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=float(sample.mean()),
        max_ms=float(sample.max()),
        server_cpu=server_cpu,
        client_cpu=client_cpu_s / duration_s,
        machine_cpu=machine_cpu,
        notes=dict(notes),
    )


def _await_clients(ready: Any, workers: Sequence[Any], timeout_s: float) -> None:
    """Waits for every client's "ready"; fails fast if one reports an error or dies."""
    deadline = time.monotonic() + timeout_s
    waiting = len(workers)
    while waiting:
        try:
            status = ready.get(timeout=0.5)
        except queue.Empty:
            dead = [worker.exitcode for worker in workers if worker.exitcode is not None]
            if dead:
                raise RuntimeError(f"a client process exited with code {dead[0]}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"clients not ready after {timeout_s} s") from None
            continue
        if status != "ready":
            raise RuntimeError(f"client failed to start: {status}")
        waiting -= 1


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _client_main(
    address: str,
    workload: Workload,
    threads: int,
    seed: int,
    warmup_s: float,
    duration_s: float,
    ready: Any,
    go: Any,
    start_at: Any,
    results: Any,
) -> None:
    try:
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=60)
        calls = [
            workload.factory(channel, workload.params, random.Random(seed * 100 + index))
            for index in range(threads)
        ]
        calls[0]()  # one call each way before the clock starts: lazy imports, HTTP/2 setup
    except BaseException as error:
        ready.put(f"{type(error).__name__}: {error}")
        return
    ready.put("ready")
    go.wait()
    window_start = start_at.value + warmup_s
    window_end = window_start + duration_s
    per_thread: list[tuple[array[float], Counter[str], Counter[str]]] = [
        (array("d"), Counter(), Counter()) for _ in range(threads)
    ]

    def loop(
        call: Call, latencies: array[float], errors: Counter[str], notes: Counter[str]
    ) -> None:
        clock = time.perf_counter  # CLOCK_MONOTONIC on Linux, like time.monotonic
        _sleep_until(start_at.value)
        while True:
            began = clock()
            if began >= window_end:
                return
            try:
                outcome = call()
            except grpc.RpcError as error:
                if began >= window_start:
                    errors[error.code().name] += 1  # type: ignore[attr-defined]
                continue
            if began >= window_start:
                if isinstance(outcome, Measured):
                    latencies.append(outcome.seconds * 1000.0)
                    if outcome.note:
                        notes[outcome.note] += 1
                else:
                    latencies.append((clock() - began) * 1000.0)

    workers = [
        threading.Thread(target=loop, args=(call, *state), daemon=True)
        for call, state in zip(calls, per_thread, strict=True)
    ]
    try:
        for worker in workers:
            worker.start()
        _sleep_until(window_start)
        cpu_before = time.process_time()
        _sleep_until(window_end)
        cpu_seconds = time.process_time() - cpu_before
        for worker in workers:
            worker.join()
        merged = array("d")
        errors: Counter[str] = Counter()
        notes: Counter[str] = Counter()
        for latencies, thread_errors, thread_notes in per_thread:
            merged.extend(latencies)
            errors.update(thread_errors)
            notes.update(thread_notes)
        results.put(
            (
                "done",
                {
                    "latencies": merged.tobytes(),
                    "errors": dict(errors),
                    "notes": dict(notes),
                    "cpu_s": cpu_seconds,
                },
            )
        )
    except BaseException as error:
        results.put(("failed", f"{type(error).__name__}: {error}"))
    finally:
        channel.close()


# --- machine facts ---------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_busy_seconds() -> float:
    """CPU-seconds spent not idle on the whole machine since boot (all cores)."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
        "git_commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def shared_machine_note(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['cores']} cores ({info['cpu_model'] or 'unknown CPU'}), shared by the "
        "server, every client process and anything else running (load average at start "
        f"{info['load_average_at_start']}); figures are noisy and relative to this machine"
    )


# --- aggregation and output ------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64))) if values else float("nan")


def summarise(runs: Sequence[LoadResult]) -> dict[str, Any]:
    """Repeats of one scenario: median RPC/s and median of each percentile; sums of counts."""
    errors: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    for run in runs:
        errors.update(run.errors)
        notes.update(run.notes)
    cpu = [run.server_cpu for run in runs if run.server_cpu is not None]
    clients = [run.client_cpu for run in runs if run.client_cpu is not None]
    other = [run.other_cpu for run in runs if run.other_cpu is not None]
    machine = [run.machine_cpu for run in runs if run.machine_cpu is not None]
    return {
        "rpcs": sum(run.ok + run.error_count for run in runs),
        "ok": sum(run.ok for run in runs),
        "errors": sum(errors.values()),
        "errors_by_code": dict(errors),
        "notes": dict(notes),
        "rps": median([run.rps for run in runs]),
        "p50_ms": median([run.p50_ms for run in runs]),
        "p90_ms": median([run.p90_ms for run in runs]),
        "p99_ms": median([run.p99_ms for run in runs]),
        "server_cpu": median(cpu) if cpu else None,
        "server_cpu_ms_per_rpc": median(
            [1000 * run.server_cpu / run.rps for run in runs if run.server_cpu and run.rps]
        )
        if cpu
        else None,
        "client_cpu": median(clients) if clients else None,
        "other_cpu": median(other) if other else None,
        "machine_cpu": median(machine) if machine else None,
        "repeats": [{**asdict(run), "other_cpu": run.other_cpu} for run in runs],
    }


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """The first `left` columns left-aligned, the rest right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i < left else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """Fixed-width table: the first `left` columns left-aligned, the rest right-aligned."""
    cells = [list(map(str, headers)), *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([fmt(cells[0]), rule, *[fmt(row) for row in cells[1:]]])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- PostgreSQL: a fresh schema per run ----------------------------------------------------


@contextmanager
def pg_schema(admin_dsn: str, application_name: str) -> Iterator[str]:
    """A fresh schema; yields a DSN on it whose sessions carry `application_name`."""
    schema = f"omniroute_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    joiner = "&" if "?" in admin_dsn else "?"
    try:
        yield (
            f"{admin_dsn}{joiner}options={quote(f'-csearch_path={schema}')}"
            f"&application_name={quote(application_name)}"
        )
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


# --- the command line and the result files every load benchmark shares -----------------------


def load_parser(
    doc: str | None, *, duration: float, threads: int, repeats: int | None = None
) -> argparse.ArgumentParser:
    """A parser with the load flags (window, warm-up, clients, threads, repeats, output)."""
    parser = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=duration, help="measured s per window")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up s before each window")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--threads", type=int, default=threads, help="threads per client process")
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats, help="repeats (median)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    return parser


def save_results(
    out: Path,
    name: str,
    results: Any,
    write_markdown: Callable[[Path, Any], None],
    plot: Callable[[Path, Any], None],
) -> None:
    """`name`.json, .md and .png under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", results)
    write_markdown(out / f"{name}.md", results)
    plot(out / f"{name}.png", results)
    print(f"wrote {out}/{name}.json, .md and .png")


# --- servicers called in-process, for profiles ------------------------------------------------


class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs what the server would hand to its worker threads on the calling thread, so one
    thread's CPU clock sees all of a handler's work."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # handed to the awaiting handler
            future.set_exception(error)
        return future


class SyncServicer:
    """A servicer's coroutines called to completion, one at a time, on this thread."""

    def __init__(self, servicer: Any) -> None:
        self._servicer = servicer
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(InlineExecutor())

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._servicer, name)
        return lambda request, context: self._loop.run_until_complete(method(request, context))
