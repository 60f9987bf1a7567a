"""Fixtures: a real omniroute server on a free port over a real store, and stubs on a real
channel. Backends are parametrised; PostgreSQL runs where OMNIROUTE_TEST_POSTGRES_DSN is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import grpc
import psycopg
import pytest
from omniroute.inventory.v1 import inventory_pb2_grpc, reservation_pb2_grpc
from omniroute.routing.v1 import routing_pb2_grpc

from server.app import Running, start_server
from server.domain.port import Store
from server.storage.postgres import PostgresStore
from server.storage.sqlite import SqliteStore

POSTGRES_DSN = os.environ.get("OMNIROUTE_TEST_POSTGRES_DSN", "")
BACKENDS = ["sqlite", "postgres"]


def with_schema(dsn: str, schema: str) -> str:
    """The DSN with `schema` as its search_path, so each test gets a private schema."""
    parts = urlsplit(dsn)
    option = "options=" + quote(f"-csearch_path={schema}")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit(parts._replace(query=query))


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "omniroute.sqlite3"


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped after the test."""
    if not POSTGRES_DSN:
        pytest.skip(
            "OMNIROUTE_TEST_POSTGRES_DSN is not set: PostgreSQL tests need a server "
            "(.ci/run sets it to postgresql://root@127.0.0.1:5432/test)"
        )
    schema = f"omniroute_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    yield with_schema(POSTGRES_DSN, schema)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def store_target(request: pytest.FixtureRequest, sqlite_path: Path) -> str:
    """A `--store` value of each backend, for servers started as subprocesses."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_dsn"))
    return str(sqlite_path)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, sqlite_path: Path) -> Iterator[Store]:
    """A real, empty store of each backend."""
    if request.param == "postgres":
        opened: Store = PostgresStore(request.getfixturevalue("postgres_dsn"), pool_size=4)
    else:
        opened = SqliteStore(sqlite_path, synchronous="NORMAL")
    yield opened
    opened.close()  # idempotent: the server may have closed it already


@pytest.fixture
def omniroute(store: Store) -> Iterator[Running]:
    running = start_server("localhost:0", store, sweep_interval_s=0.05)
    yield running
    running.stop(grace_s=1)


@pytest.fixture
def channel(omniroute: Running) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"localhost:{omniroute.port}") as opened:
        yield opened


@pytest.fixture
def inventory(channel: grpc.Channel) -> inventory_pb2_grpc.InventoryServiceStub:
    return inventory_pb2_grpc.InventoryServiceStub(channel)


@pytest.fixture
def reservations(channel: grpc.Channel) -> reservation_pb2_grpc.ReservationServiceStub:
    return reservation_pb2_grpc.ReservationServiceStub(channel)


@pytest.fixture
def routing(channel: grpc.Channel) -> routing_pb2_grpc.RoutingServiceStub:
    return routing_pb2_grpc.RoutingServiceStub(channel)
