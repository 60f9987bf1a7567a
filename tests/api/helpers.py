"""Helpers for the API tests: request builders, whole-state snapshots read through the API,
bounded waits, and an omniroute server run as a subprocess (`python -m server`)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.support import Failure, failure

REPO = Path(__file__).resolve().parents[2]
RPC_TIMEOUT_S = 10.0
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MAX_QUANTITY = 1_000_000_000_000


# --- requests in the domain's words ----------------------------------------------------


def transfer_item(sku: str, source: inv.Place, target: inv.Place, quantity: int) -> Any:
    return res.TransferItem(sku=sku, from_place=source, to_place=target, quantity=quantity)


def fulfill_item(sku: str, place: inv.Place, quantity: int) -> Any:
    return res.FulfillItem(sku=sku, place=place, quantity=quantity)


def release_item(sku: str, place: inv.Place, quantity: int) -> Any:
    return res.ReleaseItem(sku=sku, place=place, quantity=quantity)


def group(group_id: str, *members: str) -> inv.LocationGroup:
    return inv.LocationGroup(id=group_id, display_name=group_id, location_ids=list(members))


def place_id(place: inv.Place) -> str:
    return place.location_id or place.location_group_id


# --- calling and failing ---------------------------------------------------------------


def refused(method: Callable[..., Any], request: Any) -> Failure:
    """Calls `method` expecting an error with the rich status of DESIGN.md section 4."""
    with pytest.raises(grpc.RpcError) as caught:
        method(request, timeout=RPC_TIMEOUT_S)
    return failure(caught.value)


def retry_aborted(method: Callable[..., Any], request: Any, attempts: int = 20) -> Any:
    """Calls `method`, retrying ABORTED (the documented retryable conflict) a bounded number
    of times; any other error propagates."""
    for attempt in range(attempts):
        try:
            return method(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ABORTED or attempt == attempts - 1:  # type: ignore[attr-defined]
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


# --- reading the whole state -----------------------------------------------------------


def list_all(list_method: Callable[..., Any], request: Any, field: str) -> list[Any]:
    """Every element of a paginated list RPC, following next_page_token (bounded)."""
    found: list[Any] = []
    request = _copy(request)
    for _ in range(10_000):
        page = list_method(request, timeout=RPC_TIMEOUT_S)
        found.extend(getattr(page, field))
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token
    raise AssertionError("pagination did not end")


def _copy(message: Any) -> Any:
    copied = type(message)()
    copied.CopyFrom(message)
    return copied


def all_reservations(reservations: Any, state: int = 0) -> list[Any]:
    return list_all(
        reservations.ListReservations,
        res.ListReservationsRequest(page_size=1000, state=state),  # type: ignore[arg-type]
        "reservations",
    )


def snapshot(
    inventory: Any,
    reservations: Any,
    skus: Iterable[str],
    locations: Iterable[str] = (),
    groups: Iterable[str] = (),
) -> dict[str, Any]:
    """Everything a client can read: network, availability of `skus` at the places, and every
    reservation. Two equal snapshots mean nothing visible changed in between."""
    return {
        "locations": list_all(
            inventory.ListLocations, inv.ListLocationsRequest(page_size=1000), "locations"
        ),
        "groups": list_all(
            inventory.ListLocationGroups,
            inv.ListLocationGroupsRequest(page_size=1000),
            "location_groups",
        ),
        "availability": list(
            inventory.GetAvailability(
                inv.GetAvailabilityRequest(
                    skus=list(skus), location_ids=list(locations), location_group_ids=list(groups)
                ),
                timeout=RPC_TIMEOUT_S,
            ).records
        ),
        "reservations": all_reservations(reservations),
    }


def open_by_place(reservation_list: Iterable[Any], sku: str) -> dict[str, int]:
    """Sum of open reservation lines of `sku` per place id."""
    totals: dict[str, int] = {}
    for reservation in reservation_list:
        for line in reservation.lines:
            if line.sku == sku and line.open:
                key = place_id(line.place)
                totals[key] = totals.get(key, 0) + line.open
    return totals


# --- waiting ---------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], bool], timeout_s: float = 15.0, every_s: float = 0.02
) -> bool:
    """Polls `predicate` until it holds or `timeout_s` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)


# --- a server subprocess ---------------------------------------------------------------

_LISTENING = re.compile(r"omniroute listening on port (\d+)")


class ServerProcess:
    """`python -m server` on a free port; a context manager that always kills and reaps it."""

    def __init__(
        self,
        store: str | Path,
        *args: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
        flags: bool = True,
        startup_timeout_s: float = 60.0,
    ) -> None:
        """Runs `python -m server --address localhost:0 --store STORE *args` (without the two
        flags when `flags` is false: then `env` must name the address and store)."""
        self.store = str(store)
        self.log_path = log_dir / f"server-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        command = [sys.executable, "-m", "server", "serve"]
        if flags:
            command += ["--address", "localhost:0", "--store", self.store]
        self.process = subprocess.Popen(
            [*command, *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, **(env or {})},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.listening_line = ""  # what the server printed once it listened
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.port = self._wait_for_port(startup_timeout_s)

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._lines.put(raw.decode("utf-8", "replace"))
        self._lines.put(None)

    def _wait_for_port(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"no port within {timeout_s} s; log: {self.log()}") from None
            if line is None:
                self.kill()
                raise AssertionError(f"server exited before listening; log: {self.log()}")
            if found := _LISTENING.search(line):
                self.listening_line = line
                return int(found.group(1))

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def terminate(self, timeout_s: float) -> int:
        """SIGTERM, then the exit code (raises if it takes longer than `timeout_s`)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.kill()
        finally:
            self._reader.join(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self._log.close()
