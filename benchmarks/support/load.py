"""Closed-loop load on a gRPC server from several client processes over loopback, the CPU the
server, the clients and the rest of the machine use meanwhile, and the repeats' medians.

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

import multiprocessing as mp
import os
import queue
import random
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

Call = Callable[[], object]
Factory = Callable[[grpc.Channel, dict[str, Any], random.Random], Call]


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


# --- CPU time from /proc ----------------------------------------------------------------------


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


# --- repeats ----------------------------------------------------------------------------------


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
