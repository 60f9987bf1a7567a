"""Opening the database: the file created owner-only, connections with the store's pragmas, the
schema migrated, transactions begun, and the unit of work on a connection."""

from __future__ import annotations

import contextlib
import os
import sqlite3

from server.domain.errors import Conflict
from server.storage import migrations
from server.storage.change_log import LoggingUnitOfWork
from server.storage.network_cache import NetworkCache

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def create_private(path: str) -> None:
    """Creates the database file readable by its owner only (0600), unless it exists: stock and
    reservations are private, and SQLite gives the -wal and -shm files it creates later the
    database file's permissions. An existing file keeps the mode its owner gave it."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(path: str, *, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are begun explicitly), usable from any
    thread that holds the right to it."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def migrate(connection: sqlite3.Connection) -> list[int]:
    """Applies missing migrations in one transaction; returns the versions applied."""
    applied = []
    connection.execute("BEGIN IMMEDIATE")
    try:
        current = connection.execute("PRAGMA user_version").fetchone()[0]
        for migration in migrations.pending("sqlite", current):
            for statement in _statements(migration.sql):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {migration.version}")
            applied.append(migration.version)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return applied


def _statements(script: str) -> list[str]:
    """Splits a migration into statements (a trigger's body keeps its own semicolons;
    migrations hold no semicolons in literals)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    statements, pending = [], ""
    for piece in "\n".join(lines).split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements


def begin(connection: sqlite3.Connection, statement: str = "BEGIN IMMEDIATE") -> None:
    """Begins a transaction; a file still busy past the timeout (another process writing) is a
    Conflict, which the caller retries."""
    try:
        connection.execute(statement)
    except sqlite3.OperationalError as error:
        raise Conflict("CONFLICT", "the store is busy; retry") from error


def unit_of_work(
    connection: sqlite3.Connection, network: NetworkCache, *, slow_reads: bool
) -> LoggingUnitOfWork:
    return LoggingUnitOfWork(
        connection.execute,
        "qmark",
        network_cache=network,
        json_rows=True,
        slow_reads=slow_reads,
    )
