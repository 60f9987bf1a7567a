"""Shared store: PostgreSQL through a psycopg 3 connection pool, for several omniroute servers
on one database.

Concurrency uses the database's own locks, taken at the start of every write transaction in one
global order (so no interleaving can deadlock): a network advisory lock (shared by ledger
writes, exclusive for location and group changes), then one transaction-scoped advisory lock
per SKU in key order. Every rule of the ledger is per SKU (group coverage included), so writers
of different SKUs run in parallel and writers of one SKU take turns; reservation rows are read
FOR UPDATE so that writers of different SKUs of one reservation take turns on it. Reads are
REPEATABLE READ snapshots. SERIALIZABLE without explicit locks would abort and retry constantly
on a hot SKU, which is exactly the case that matters at peak (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from server.domain.errors import Conflict, StoreUnavailable
from server.storage import migrations
from server.storage.change_log import LoggingUnitOfWork
from server.storage.network_cache import NetworkCache

log = logging.getLogger(__name__)

_CONFLICTS = (
    errors.SerializationFailure,
    errors.DeadlockDetected,
    errors.UniqueViolation,
    errors.LockNotAvailable,
    # A statement psycopg believes prepared while the server does not (see _recover): it did
    # not run, and the retry finds the connection's prepared statements forgotten.
    errors.InvalidSqlStatementName,
)


class PostgresStore:
    def __init__(self, dsn: str, *, pool_size: int = 8, wait_s: float = 10.0) -> None:
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            timeout=wait_s,
            name="omniroute",
            open=True,
        )
        try:
            self._pool.wait(timeout=wait_s)
            with self._pool.connection() as connection:
                row = connection.execute("SELECT current_schema()").fetchone()
            if row is None or row[0] is None:
                raise RuntimeError("the PostgreSQL search_path names no existing schema")
            self.schema = str(row[0])
            self._network_key = self._lock_key("\0network")
            self._network = NetworkCache()
            self.migrate()
        except BaseException:
            self._pool.close()  # a refused store keeps no connections open
            raise

    def _lock_key(self, name: str) -> int:
        """Advisory locks are per database: the schema keeps two deployments apart."""
        digest = hashlib.blake2b(f"{self.schema}\0{name}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    def migrate(self) -> list[int]:
        """Applies missing migrations under a lock, so servers starting together agree."""
        applied = []
        with self._pool.connection() as connection:
            connection.execute("BEGIN")
            try:
                connection.execute(
                    "SELECT pg_advisory_xact_lock(%s)", (self._lock_key("\0migrations"),)
                )
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                row = connection.execute(
                    "SELECT coalesce(max(version), 0) FROM schema_migrations"
                ).fetchone()
                for migration in migrations.pending("postgres", int(row[0] if row else 0)):
                    connection.execute(migration.sql.encode())
                    connection.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                    applied.append(migration.version)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        if applied:
            log.info("applied schema migrations %s to schema %s", applied, self.schema)
        return applied

    @contextmanager
    def write(
        self, skus: Collection[str] = (), *, network: bool = False, slow_reads: bool = True
    ) -> Iterator[LoggingUnitOfWork]:
        calls = ["pg_advisory_xact_lock(%s)" if network else "pg_advisory_xact_lock_shared(%s)"]
        keys = [self._network_key, *sorted({self._lock_key(sku) for sku in skus})]
        calls += ["pg_advisory_xact_lock(%s)"] * (len(keys) - 1)
        # Target-list expressions run left to right: one round trip takes every lock in order.
        lock = "SELECT " + ", ".join(calls)
        yield from self._transaction(
            "BEGIN", lock, keys, lock_reservations=True, slow_reads=slow_reads
        )

    @contextmanager
    def read(self) -> Iterator[LoggingUnitOfWork]:
        yield from self._transaction(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", None, (), lock_reservations=False
        )

    def _transaction(
        self,
        begin: str,
        lock: str | None,
        keys: Sequence[int],
        *,
        lock_reservations: bool,
        slow_reads: bool = True,
    ) -> Iterator[LoggingUnitOfWork]:
        try:
            with self._pool.connection() as connection:
                yield from _run(
                    connection, begin, lock, keys, lock_reservations, slow_reads, self._network
                )
        except PoolTimeout as error:
            raise StoreUnavailable(
                f"no database connection available: {error}", retry_safe=True
            ) from error
        except StoreUnavailable:
            # One dead connection usually means the others died with it (a database restart,
            # terminated backends): drop them all now rather than fail one call per connection.
            self._pool.check()
            raise

    def stats(self) -> dict[str, float]:
        pool = self._pool.get_stats()
        return {
            "postgres_pool_connections": pool.get("pool_size", 0),
            "postgres_pool_idle_connections": pool.get("pool_available", 0),
            "postgres_pool_waiting_requests": pool.get("requests_waiting", 0),
            "postgres_connections_lost_total": pool.get("connections_lost", 0),
        }

    def close(self) -> None:
        self._pool.close()


def _run(
    connection: psycopg.Connection[Any],
    begin: str,
    lock: str | None,
    keys: Sequence[int],
    lock_reservations: bool,
    slow_reads: bool,
    network: NetworkCache,
) -> Iterator[LoggingUnitOfWork]:
    """One transaction in pipeline mode: statements whose results nobody reads yet (BEGIN, the
    locks, the writes, COMMIT) go out together and wait for their answers at the next read or
    at the end, so a reservation costs a few round trips rather than one per statement
    (docs/performance.md has the measurements). An error of a queued statement surfaces at
    that next read, or at the end, and is handled the same."""
    committing = False
    try:
        with _pipeline(connection) as sync:
            try:
                connection.execute(begin)
                if lock:
                    connection.execute(lock, keys)
                yield LoggingUnitOfWork(
                    connection.execute,
                    "format",
                    lock_reservations=lock_reservations,
                    network_cache=network,
                    sync=sync,
                    slow_reads=slow_reads,
                )
                committing = True
                connection.execute("COMMIT")
            except psycopg.Error:
                _recover(connection)  # here, so that the pipeline ends cleanly
                raise
            except BaseException:
                _rollback(connection)
                raise
    except psycopg.Error as error:
        _recover(connection)
        # A failure once COMMIT went out leaves the outcome unknown: the commit may have
        # landed, and only the client can retry safely (with the same request_id).
        raise _translate(error, retry_safe=not committing) from error


@contextmanager
def _pipeline(connection: psycopg.Connection[Any]) -> Iterator[Callable[[], None]]:
    """Pipeline mode where libpq supports it (14+; the psycopg[binary] wheel bundles one);
    yields what waits for every answer still due."""
    if not psycopg.Pipeline.is_supported():
        yield lambda: None
        return
    with connection.pipeline() as pipeline:
        yield pipeline.sync


def _recover(connection: psycopg.Connection[Any]) -> None:
    """After a database error: `Connection.rollback` also takes the pipeline out of its aborted
    state and forgets the connection's prepared statements, which an aborted pipeline can leave
    out of step with the server ("prepared statement _pg3_1 does not exist")."""
    with contextlib.suppress(psycopg.Error):
        connection.rollback()


def _rollback(connection: psycopg.Connection[Any]) -> None:
    # If the connection is gone, the server rolled back already and the pool discards it.
    with contextlib.suppress(psycopg.Error):
        connection.execute("ROLLBACK")


def _translate(error: psycopg.Error, *, retry_safe: bool) -> Exception:
    if isinstance(error, _CONFLICTS):
        return Conflict("CONFLICT", f"concurrent update, retry: {error.sqlstate}")
    if isinstance(error, psycopg.OperationalError):
        return StoreUnavailable(f"database unavailable: {error}", retry_safe=retry_safe)
    return error
