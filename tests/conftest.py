"""Fixtures: a real omniroute server on a free port over a real store, and stubs on a real
channel. Backends are parametrised; PostgreSQL runs where OMNIROUTE_TEST_POSTGRES_DSN is set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2_grpc, reservation_pb2_grpc

from server.app import Running, start_server
from server.storage.contract import Store
from server.storage.sqlite import SqliteStore


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "omniroute.sqlite3"


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, sqlite_path: Path) -> Iterator[Store]:
    opened = SqliteStore(sqlite_path, synchronous="NORMAL")
    yield opened


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
