"""The SQLite database and the -wal and -shm files SQLite creates beside it hold stock and
reservations: they are readable and writable by their owner only, whatever the umask allows."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc

from server.app import start_server
from server.storage.sqlite import SqliteStore
from tests.api.helpers import RPC_TIMEOUT_S
from tests.support import location


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The common default (0022), under which files are created world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_database_and_its_wal_and_shm_files_are_created_owner_only(
    tmp_path: Path, permissive_umask: None
) -> None:
    path = tmp_path / "omniroute.sqlite3"
    running = start_server("localhost:0", SqliteStore(path, synchronous="NORMAL"))
    try:
        with grpc.insecure_channel(f"localhost:{running.port}") as channel:
            inventory_pb2_grpc.InventoryServiceStub(channel).UpsertLocations(
                inv.UpsertLocationsRequest(locations=[location("wh-1")]), timeout=RPC_TIMEOUT_S
            )
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        modes = {file.name: stat.S_IMODE(os.stat(file).st_mode) for file in files}
    finally:
        running.stop(grace_s=1)

    assert modes == {file.name: 0o600 for file in files}


def test_an_existing_database_file_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    path.touch(mode=0o640)
    path.chmod(0o640)

    SqliteStore(path, synchronous="NORMAL").close()

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
