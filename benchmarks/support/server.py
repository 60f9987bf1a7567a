"""The server under test: `python -m server` as a subprocess (of this checkout or of a baseline
commit's worktree), its store (a SQLite file or a fresh PostgreSQL schema), seeding it through
the API, and its servicers called in-process for profiles."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import psycopg
from omniroute.inventory.v1 import inventory_pb2, inventory_pb2_grpc

from support.report import REPO

PYTHON = str(REPO / ".venv" / "bin" / "python")
LISTENING = "omniroute listening on port "
BATCH = 1000  # locations or stock levels per seeding request


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
    """Starts `python -m server serve --address localhost:0 --store STORE ARGS` and yields it
    once it says which port it listens on and answers; SIGTERM (graceful stop) on exit, SIGKILL
    if that hangs. `entry` replaces `-m server`, e.g. with a script that instruments the server
    first; `cwd` is the checkout whose code serves (a baseline commit's worktree)."""
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
            wait_ready(f"localhost:{port}", start_timeout_s)
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


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A detached worktree of `revision`, for a baseline server (`omniroute_server(cwd=...)`);
    removed on exit."""
    folder = Path(tempfile.mkdtemp(prefix="omniroute-baseline-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(folder), revision],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=REPO, check=False)


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


def stock_network(
    channel: grpc.Channel,
    locations: Sequence[inventory_pb2.Location],
    levels: Sequence[inventory_pb2.StockLevel],
    groups: Sequence[inventory_pb2.LocationGroup] = (),
    timeout_s: float = 120.0,
) -> None:
    """Locations, then groups, then stock levels, through the API in requests within its
    limits."""
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    for start in range(0, len(locations), BATCH):
        inventory.UpsertLocations(
            inventory_pb2.UpsertLocationsRequest(locations=locations[start : start + BATCH]),
            timeout=timeout_s,
        )
    if groups:
        inventory.UpsertLocationGroups(
            inventory_pb2.UpsertLocationGroupsRequest(location_groups=groups), timeout=timeout_s
        )
    for start in range(0, len(levels), BATCH):
        inventory.SetStock(
            inventory_pb2.SetStockRequest(levels=levels[start : start + BATCH]), timeout=timeout_s
        )


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
