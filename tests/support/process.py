"""The one launcher of an omniroute server as a subprocess (`python -m server serve`), on a free
port: tests of the process itself, several servers over one PostgreSQL, a server with small pools.
Every wait is bounded and whatever it starts is stopped and reaped."""

from __future__ import annotations

import functools
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from omniroute.inventory.v1 import inventory_pb2_grpc, reservation_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"omniroute listening on port (\d+)")


class ServerProcess:
    """`python -m server serve --address localhost:0 --store STORE *args`, started at once so
    that several can start together; `with` waits for its port and stops it on the way out."""

    def __init__(
        self,
        store: str | Path,
        *args: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
        flags: bool = True,
        command: Sequence[str] = (sys.executable, "-m", "server"),
        cwd: Path = REPO,
    ) -> None:
        """Without `flags` the command has no --address and --store: `env` must name them.
        `command` and `cwd` replace the checkout's `python -m server` (an installed one)."""
        self.log_path = log_dir / f"server-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        serve = [*command, "serve"]
        if flags:
            serve += ["--address", "localhost:0", "--store", str(store)]
        self.process = subprocess.Popen(
            [*serve, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, **(env or {})},
        )
        self.port = 0
        self.listening_line = ""  # what the server printed once it listened
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._channel: grpc.Channel | None = None

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._lines.put(raw.decode("utf-8", "replace"))
        self._lines.put(None)

    def wait_port(self, timeout_s: float = 60.0) -> int:
        """The port the server printed; if it exits first or takes longer, stops it and fails."""
        if not self.port:
            found = self.wait_printed(_LISTENING, timeout_s)
            self.listening_line, self.port = found.string, int(found.group(1))
        return self.port

    def wait_printed(self, pattern: re.Pattern[str], timeout_s: float = 60.0) -> re.Match[str]:
        """The next line on stdout that matches `pattern` (lines before it are passed over)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise AssertionError(
                    f"no {pattern.pattern!r} within {timeout_s} s; log: {self.log()}"
                ) from None
            if line is None:
                self.stop()
                raise AssertionError(f"server exited before {pattern.pattern!r}; log: {self.log()}")
            if found := pattern.search(line):
                return found

    def output(self, timeout_s: float = 30.0) -> str:
        """What the server printed on stdout after the lines already read, until it exited."""
        lines = []
        while (line := self._lines.get(timeout=timeout_s)) is not None:
            lines.append(line)
        return "".join(lines)

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"

    @property
    def channel(self) -> grpc.Channel:
        """One channel for the stubs below, closed when the server is told to stop."""
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.target)
        return self._channel

    @functools.cached_property
    def inventory(self) -> inventory_pb2_grpc.InventoryServiceStub:
        return inventory_pb2_grpc.InventoryServiceStub(self.channel)

    @functools.cached_property
    def reservations(self) -> reservation_pb2_grpc.ReservationServiceStub:
        return reservation_pb2_grpc.ReservationServiceStub(self.channel)

    def log(self) -> str:
        """The end of what the server wrote to stderr."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def signal_stop(self) -> None:
        """SIGTERM (graceful stop) without waiting, so that several servers stop together."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def terminate(self, timeout_s: float) -> int:
        """SIGTERM, then the exit code (raises if it takes longer than `timeout_s`)."""
        self.signal_stop()
        return self.process.wait(timeout=timeout_s)

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM, `grace_s` to exit, then SIGKILL; always reaps it and closes its files."""
        try:
            self.signal_stop()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process.wait(timeout=30)
        finally:
            self._reader.join(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self._log.close()

    def __enter__(self) -> ServerProcess:
        self.wait_port()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
