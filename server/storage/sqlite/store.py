"""The embedded store: readers use a connection per thread and see a snapshot while writers go
on; writers take turns on one connection and share its commits (group_commit.py). `synchronous`
decides durability: NORMAL survives a killed process, FULL (the default) also survives power
loss."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from server.domain.port import Result, UnitOfWork
from server.storage.change_log import LoggingUnitOfWork
from server.storage.network_cache import NetworkCache
from server.storage.sqlite.checkpoint import CHECKPOINT_INTERVAL_S, Checkpointer
from server.storage.sqlite.connection import (
    SYNCHRONOUS_MODES,
    begin,
    connect,
    create_private,
    migrate,
    unit_of_work,
)
from server.storage.sqlite.group_commit import GroupCommit


class SqliteStore:
    """A `LoopStore`: its units of work take microseconds and no network round trip, so the
    server's event loop runs them itself (`read_on_loop`, `write_on_loop`), sparing the thread
    switches a worker thread costs, which cost more than the ledger's own work while sqlite3
    hands the GIL on at every statement (docs/sqlite.md). Meanwhile every other caller of the
    loop waits, so these units of work raise WouldBlock before slow work (summing a big group's
    stock), and the caller runs them again on a thread."""

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        checkpoint_interval_s: float | None = CHECKPOINT_INTERVAL_S,
    ):
        """`checkpoint_interval_s`: how often the background thread checkpoints the WAL;
        None leaves checkpoints to SQLite, inside commits."""
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous}")
        self.path = str(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._write_lock = threading.Lock()
        self._network = NetworkCache()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        create_private(self.path)
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode = WAL")
        self.migrate()
        self._group_commit = GroupCommit(
            self._writer,
            self._write_lock,
            self._network,
            commit_inline=self._synchronous in ("OFF", "NORMAL"),
            busy_timeout_ms=busy_timeout_ms,
        )
        self._checkpointer: Checkpointer | None = None
        if checkpoint_interval_s:
            self._checkpointer = Checkpointer(self._writer, self._connect(), checkpoint_interval_s)

    def _connect(self) -> sqlite3.Connection:
        return connect(
            self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
        )

    def migrate(self) -> list[int]:
        """Applies missing migrations; returns the versions applied."""
        with self._write_lock:
            return migrate(self._writer)

    def write(
        self, skus: Collection[str] = (), *, network: bool = False, slow_reads: bool = True
    ) -> AbstractContextManager[LoggingUnitOfWork]:
        """Excludes every other writer, whatever its `skus`."""
        return self._group_commit.write(slow_reads=slow_reads)

    async def write_on_loop(self, work: Callable[[UnitOfWork], Result]) -> Result:
        return await self._group_commit.write_on_loop(work)

    @contextmanager
    def read(self) -> Iterator[LoggingUnitOfWork]:
        yield from _transaction(self._reader(), self._network, slow_reads=True)

    @contextmanager
    def read_on_loop(self) -> Iterator[LoggingUnitOfWork]:
        yield from _transaction(self._reader(), self._network, slow_reads=False)

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
            with self._readers_lock:
                self._readers.append(connection)
        return connection

    def stats(self) -> dict[str, float]:
        commits = self._group_commit
        return {
            "sqlite_commits_total": commits.commits,
            "sqlite_committed_writes_total": commits.committed_writes,
            "sqlite_commit_seconds_total": commits.commit_seconds,
        }

    def close(self) -> None:
        self._group_commit.close()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._write_lock, self._readers_lock:  # once the batch holding it, if any, ended
            for connection in [self._writer, *self._readers]:
                connection.close()
            self._readers.clear()


def _transaction(
    connection: sqlite3.Connection, network: NetworkCache, *, slow_reads: bool
) -> Iterator[LoggingUnitOfWork]:
    begin(connection, "BEGIN")
    try:
        yield unit_of_work(connection, network, slow_reads=slow_reads)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
