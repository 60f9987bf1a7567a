"""Embedded store: one SQLite file in WAL mode.

Writers serialise on one connection (a process-wide lock plus `BEGIN IMMEDIATE`, which also
serialises with any other process opening the same file); readers use one connection per
thread and see a consistent snapshot while writers go on. `synchronous` decides durability:
NORMAL survives a killed process, FULL (the default) also survives power loss."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from server.domain.errors import Conflict
from server.storage import migrations
from server.storage.sql import SqlUnitOfWork

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


class SqliteStore:
    def __init__(self, path: str | Path, synchronous: str = "FULL", busy_timeout_ms: int = 5000):
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous}")
        self.path = str(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode = WAL")
        self.migrate()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        connection.execute("PRAGMA foreign_keys = ON")
        return connection

    def migrate(self) -> list[int]:
        """Applies missing migrations; returns the versions applied."""
        applied = []
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                current = self._writer.execute("PRAGMA user_version").fetchone()[0]
                for migration in migrations.pending("sqlite", current):
                    for statement in _statements(migration.sql):
                        self._writer.execute(statement)
                    self._writer.execute(f"PRAGMA user_version = {migration.version}")
                    applied.append(migration.version)
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
        return applied

    @contextmanager
    def write(
        self, skus: Collection[str] = (), *, network: bool = False
    ) -> Iterator[SqlUnitOfWork]:
        with self._write_lock:
            yield from _transaction(self._writer, "BEGIN IMMEDIATE")

    @contextmanager
    def read(self) -> Iterator[SqlUnitOfWork]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
            with self._readers_lock:
                self._readers.append(connection)
        yield from _transaction(connection, "BEGIN")

    def close(self) -> None:
        with self._write_lock, self._readers_lock:
            for connection in [self._writer, *self._readers]:
                connection.close()
            self._readers.clear()


def _transaction(connection: sqlite3.Connection, begin: str) -> Iterator[SqlUnitOfWork]:
    try:
        connection.execute(begin)
    except sqlite3.OperationalError as error:  # busy past the timeout: another process writes
        raise Conflict("CONFLICT", f"the store is busy, retry: {error}") from error
    try:
        yield SqlUnitOfWork(connection.execute, "qmark")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Splits a migration into statements (migrations hold no semicolons in literals)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]
