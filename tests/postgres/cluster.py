"""Several real omniroute servers (tests/support/process.py) on one PostgreSQL schema, and an
independent reader of that schema: a snapshot of the ledger's tables read with psycopg, and the
invariants of DESIGN.md sections 2-3 recomputed from the reservation lines alone.

Every wait here is bounded and every subprocess is stopped when its `with` block ends."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from omniroute.inventory.v1 import inventory_pb2 as inv

from tests.ledger.model import GROUP, LOCATION, Ledger, Level, Place
from tests.support.process import ServerProcess

ADMIN_DSN = os.environ.get("OMNIROUTE_TEST_POSTGRES_DSN", "")
RPC_TIMEOUT_S = 20.0

# --- DSNs --------------------------------------------------------------------------------------

# The small network most of these tests share: two groups overlapping at L1.
LOCATIONS = ["L0", "L1", "L2"]
GROUPS = {"GA": ["L0", "L1"], "GB": ["L1", "L2"]}
PLACES = [*LOCATIONS, *GROUPS]


def server_dsn(
    dsn: str, *, application_name: str = "", settings: dict[str, str] | None = None
) -> str:
    """`dsn` with an application_name (to find the servers' backends in pg_stat_activity) and
    extra session settings appended to its `options` (e.g. deadlock_timeout)."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    if application_name:
        query["application_name"] = application_name
    if settings:
        extra = " ".join(f"-c{key}={value}" for key, value in settings.items())
        query["options"] = f"{query['options']} {extra}" if query.get("options") else extra
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """A DSN on a new schema of the test database, dropped afterwards (for fixtures wider
    than one test; tests/conftest.py's `postgres_dsn` is per test). Skips without the DSN."""
    if not ADMIN_DSN:
        pytest.skip("OMNIROUTE_TEST_POSTGRES_DSN is not set: PostgreSQL tests need a server")
    schema = f"omniroute_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield server_dsn(ADMIN_DSN, settings={"search_path": schema})
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def schema_of(dsn: str) -> str:
    options = dict(parse_qsl(urlsplit(dsn).query)).get("options", "")
    found = re.search(r"-c\s*search_path=([^\s,]+)", options)
    assert found, f"no search_path in {dsn}"
    return found.group(1)


# --- servers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def servers(
    dsn: str, count: int, *, pool_size: int = 4, workers: int = 8, args: Sequence[str] = ()
) -> Iterator[list[ServerProcess]]:
    """`count` servers on one store, started together; all stopped (killed if need be) on exit."""
    with tempfile.TemporaryDirectory(prefix="omniroute-pg-") as log_dir:
        started: list[ServerProcess] = []
        try:
            for _ in range(count):
                started.append(
                    ServerProcess(
                        dsn,
                        "--pool-size",
                        str(pool_size),
                        "--workers",
                        str(workers),
                        "--grace",
                        "2",
                        *args,
                        log_dir=Path(log_dir),
                        env={"OMNIROUTE_LOG_LEVEL": "WARNING"},  # several servers: their warnings
                    )
                )
            for server in started:
                server.wait_port()
            yield started
        finally:
            for server in started:
                with contextlib.suppress(Exception):
                    server.signal_stop()
            for server in started:
                server.stop()


def logs(running: Sequence[ServerProcess]) -> str:
    return "\n".join(f"--- server on {server.target}:\n{server.log()}" for server in running)


# --- calls -------------------------------------------------------------------------------------


RETRYABLE = (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE)


@dataclass
class Outcome:
    response: Any | None
    code: grpc.StatusCode
    reason: str = ""
    attempts: int = 1
    retried_codes: list[grpc.StatusCode] = field(default_factory=list)


def reason_of(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def call(
    targets: Sequence[ServerProcess], service: str, method: str, request: Any, *, attempts: int = 20
) -> Outcome:
    """Sends `request` (same request_id every time) to targets[0] and, after a retryable code,
    to the next server, up to `attempts` times: what a well-behaved client behind a load
    balancer does. `service` is "reservations" or "inventory"."""
    retried: list[grpc.StatusCode] = []
    for attempt in range(1, attempts + 1):
        stub = getattr(targets[(attempt - 1) % len(targets)], service)
        try:
            response = getattr(stub, method)(request, timeout=RPC_TIMEOUT_S)
            return Outcome(response, grpc.StatusCode.OK, "", attempt, retried)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            if code in RETRYABLE and attempt < attempts:
                retried.append(code)
                time.sleep(0.02 * attempt)
                continue
            return Outcome(None, code, reason_of(error), attempt, retried)
    raise AssertionError("unreachable")


# --- network -----------------------------------------------------------------------------------


def place(place_id: str) -> inv.Place:
    """Ids starting with "G" are groups, the rest locations (a convention of these tests)."""
    if place_id.startswith("G"):
        return inv.Place(location_group_id=place_id)
    return inv.Place(location_id=place_id)


def seed(
    server: ServerProcess,
    locations: Sequence[str],
    groups: dict[str, Sequence[str]],
    on_hand: dict[tuple[str, str], int],
) -> None:
    """Locations, groups and absolute stock (sku, location) -> on hand, through the API."""
    inventory = server.inventory
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[
                inv.Location(
                    id=location_id,
                    display_name=location_id,
                    type=inv.LOCATION_TYPE_WAREHOUSE,
                    position=inv.GeoPoint(latitude=40.0 + index, longitude=-75.0),
                    country_code="US",
                )
                for index, location_id in enumerate(locations)
            ]
        ),
        timeout=RPC_TIMEOUT_S,
    )
    if groups:
        inventory.UpsertLocationGroups(
            inv.UpsertLocationGroupsRequest(
                location_groups=[
                    inv.LocationGroup(id=group_id, display_name=group_id, location_ids=members)
                    for group_id, members in groups.items()
                ]
            ),
            timeout=RPC_TIMEOUT_S,
        )
    inventory.SetStock(
        inv.SetStockRequest(
            levels=[
                inv.StockLevel(location_id=location_id, sku=sku, on_hand=units)
                for (sku, location_id), units in sorted(on_hand.items())
            ]
        ),
        timeout=RPC_TIMEOUT_S,
    )


# --- the client's own account of what it was told: the reference ledger ------------------------


def reference(groups: dict[str, Sequence[str]], on_hand: dict[tuple[str, str], int]) -> Ledger:
    """The reference ledger as `seed` sets it up, (sku, location) -> on hand, into which
    clients enter every OK answer: the expectation for the database at the end."""
    return Ledger(
        {group: tuple(members) for group, members in groups.items()},
        {(location, sku): Level(units) for (sku, location), units in on_hand.items()},
    )


def place_key(place_id: str) -> Place:
    """The reference ledger's (kind, id) of a place id named by the convention of `place`."""
    return (GROUP, place_id) if place_id.startswith("G") else (LOCATION, place_id)


def record_created(model: Ledger, response: Any) -> None:
    """Enters an OK CreateReservation answer: the reservation and what each item got."""
    reservation = response.reservation
    expire_us = (
        reservation.expire_time.ToMicroseconds() if reservation.HasField("expire_time") else None
    )
    with model.lock:
        model.create(reservation.id, reservation.create_time.ToMicroseconds(), expire_us)
        for item in response.items:
            if item.reserved:
                kind = GROUP if item.place.HasField("location_group_id") else LOCATION
                where = item.place.location_group_id or item.place.location_id
                model.reserve(reservation.id, item.sku, (kind, where), item.reserved)


def open_lines(model: Ledger, rid: str) -> list[tuple[str, str, int]]:
    """(sku, place id, open units) of the reservation's open lines, in line order."""
    return [(sku, place_id, units) for sku, (_, place_id), units in model.open_lines(rid)]


def received(model: Ledger) -> dict[tuple[str, str], int]:
    """(sku, location) -> the units the OK answers put on hand (seeded stock and adjustments):
    on hand now plus what was shipped, for `problems` to take off what the database shipped."""
    with model.lock:
        shipped: dict[tuple[str, str], int] = defaultdict(int)
        for booking in model.bookings.values():
            for (sku, kind, place_id), line in booking.lines.items():
                if kind == LOCATION:
                    shipped[(sku, place_id)] += line.fulfilled
        return {
            (sku, location): level.on_hand + shipped[(sku, location)]
            for (location, sku), level in model.levels.items()
        }


# --- the database, read directly ---------------------------------------------------------------

LineKey = tuple[str, str, int, str]  # reservation id, sku, place kind, place id


@dataclass
class Snapshot:
    stock: dict[tuple[str, str], tuple[int, int, int]]  # (sku, location): on_hand, reserved, safety
    group_reserved: dict[tuple[str, str], int]  # (sku, group): reserved
    members: dict[str, set[str]]
    reservations: dict[str, tuple[int, int | None]]  # id: state, expire_us
    lines: dict[LineKey, tuple[int, int, int, int]]


def snapshot(dsn: str) -> Snapshot:
    """One consistent (REPEATABLE READ) read of the ledger tables of the DSN's schema."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        stock = {
            (sku, loc): (on_hand, reserved, safety)
            for sku, loc, on_hand, reserved, safety in connection.execute(
                "SELECT sku, location_id, on_hand, reserved, safety_stock FROM stock"
            )
        }
        group_reserved = {
            (sku, group): reserved
            for sku, group, reserved in connection.execute(
                "SELECT sku, group_id, reserved FROM group_reserved"
            )
        }
        members: dict[str, set[str]] = defaultdict(set)
        for group, loc in connection.execute("SELECT group_id, location_id FROM group_members"):
            members[group].add(loc)
        reservations = {
            rid: (state, expire_us)
            for rid, state, expire_us in connection.execute(
                "SELECT id, state, expire_us FROM reservations"
            )
        }
        lines = {
            (rid, sku, kind, place_id): (q, f, r, t)
            for rid, sku, kind, place_id, q, f, r, t in connection.execute(
                "SELECT reservation_id, sku, place_kind, place_id, quantity, fulfilled, released,"
                " transferred_out FROM reservation_lines"
            )
        }
        connection.execute("COMMIT")
    return Snapshot(stock, group_reserved, dict(members), reservations, lines)


def problems(
    state: Snapshot, expected_on_hand: dict[tuple[str, str], int] | None = None
) -> list[str]:
    """Every invariant of DESIGN.md sections 2-3 violated by `state`, recomputed from the
    reservation lines (stock has no futures and no safety stock in these tests)."""
    found: list[str] = []
    open_at: dict[tuple[int, str, str], int] = defaultdict(int)
    fulfilled_at: dict[tuple[str, str], int] = defaultdict(int)
    open_of: dict[str, int] = defaultdict(int)
    for (rid, sku, kind, place_id), (q, f, r, t) in state.lines.items():
        if min(q, f, r, t) < 0 or f + r + t > q:
            found.append(f"line arithmetic broken: {(rid, sku, kind, place_id)} = {(q, f, r, t)}")
        open_at[(kind, sku, place_id)] += q - f - r - t
        open_of[rid] += q - f - r - t
        if kind == LOCATION:
            fulfilled_at[(sku, place_id)] += f
        elif f:
            found.append(f"fulfilled at a group: {(rid, sku, place_id)}")
        if rid not in state.reservations:
            found.append(f"line of a missing reservation: {rid}")
    for (sku, loc), (on_hand, reserved, safety) in state.stock.items():
        if reserved != open_at.get((LOCATION, sku, loc), 0):
            found.append(
                f"stock {sku}@{loc}: reserved {reserved} != open lines "
                f"{open_at.get((LOCATION, sku, loc), 0)}"
            )
        if reserved < 0 or reserved + safety > on_hand:
            found.append(f"stock {sku}@{loc}: reserved {reserved} > on hand {on_hand} (oversold)")
    for (kind, sku, place_id), units in open_at.items():
        if kind == LOCATION and units and (sku, place_id) not in state.stock:
            found.append(f"{units} open at {sku}@{place_id} without a stock record")
        if kind == GROUP and units != state.group_reserved.get((sku, place_id), 0):
            found.append(
                f"group {sku}@{place_id}: reserved {state.group_reserved.get((sku, place_id), 0)}"
                f" != open lines {units}"
            )
    for (sku, group), units in state.group_reserved.items():
        if units <= 0 or open_at.get((GROUP, sku, group), 0) != units:
            found.append(f"group_reserved {sku}@{group} = {units} without matching open lines")
    found += _uncoverable(state)
    for rid, (status, _expire) in state.reservations.items():
        has_open = open_of.get(rid, 0) > 0
        if (status == 1) != has_open:
            found.append(f"reservation {rid}: state {status} but open units {open_of.get(rid, 0)}")
    if expected_on_hand is not None:
        for key, units in expected_on_hand.items():
            on_hand = state.stock.get(key, (0, 0, 0))[0]
            if on_hand != units - fulfilled_at.get(key, 0):
                found.append(
                    f"stock {key}: on hand {on_hand} != initial/adjusted {units} - fulfilled "
                    f"{fulfilled_at.get(key, 0)}"
                )
    return found


def _uncoverable(state: Snapshot) -> list[str]:
    """Hall's condition, by enumerating sets of groups: every set of group reservations of a
    SKU fits in the stock its member locations have left after location-level reservations."""
    found = []
    by_sku: dict[str, dict[str, int]] = defaultdict(dict)
    for (sku, group), units in state.group_reserved.items():
        by_sku[sku][group] = units
    for sku, demand in by_sku.items():
        groups = sorted(demand)
        for size in range(1, len(groups) + 1):
            for chosen in itertools.combinations(groups, size):
                union = set().union(*(state.members.get(group, set()) for group in chosen))
                supply = 0
                for loc in union:
                    on_hand, reserved, safety = state.stock.get((sku, loc), (0, 0, 0))
                    supply += max(0, on_hand - reserved - safety)
                need = sum(demand[group] for group in chosen)
                if need > supply:
                    found.append(
                        f"{sku}: groups {chosen} hold {need} units but their members have "
                        f"only {supply} left"
                    )
    return found


def lines_differ(state: Snapshot, model: Ledger) -> list[str]:
    """Lines where the database and the client's account of its OK answers disagree."""
    found = []
    with model.lock:
        expected = {
            (rid, *key): astuple(line)
            for rid, booking in model.bookings.items()
            for key, line in booking.lines.items()
            if any(astuple(line))
        }
        known = set(model.bookings)
    for key in sorted(set(expected) | {k for k in state.lines if k[0] in known}):
        if expected.get(key, (0, 0, 0, 0)) != state.lines.get(key, (0, 0, 0, 0)):
            found.append(
                f"{key}: acknowledged {expected.get(key)} but stored {state.lines.get(key)}"
            )
    return found


def backends(application_name: str) -> list[int]:
    """Pids of the PostgreSQL backends whose application_name is `application_name`."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> "
            "pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return [row[0] for row in rows]


def terminate(application_name: str) -> int:
    """pg_terminate_backend for every backend of `application_name`; returns how many."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
            " AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return sum(1 for row in rows if row[0])


def run_threads(targets: Sequence[Callable[[], None]], timeout_s: float) -> list[str]:
    """Runs each target in a thread; returns the errors raised and names threads still running
    after `timeout_s` (a hang), so a test fails instead of waiting forever."""
    errors: list[str] = []

    def guard(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as error:  # reported to the test, not swallowed
            errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=guard, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = sum(1 for thread in threads if thread.is_alive())
    if hung:
        errors.append(f"{hung} threads still running after {timeout_s} s")
    return errors


TABLES = (
    "locations",
    "location_groups",
    "group_members",
    "stock",
    "group_reserved",
    "reservations",
    "reservation_lines",
    "remembered_responses",
)


def dump(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table, sorted: to show that a call changed nothing."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        tables = {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in TABLES
        }
        connection.execute("COMMIT")
    return tables
