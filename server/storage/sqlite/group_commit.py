"""Group commit for writers that run on the gRPC server's event loop, on SQLite's one writer
connection.

Each writer's work runs inline on the loop, with no thread switch: Python's sqlite3 hands the
GIL to other threads on every statement, and under load each hand-over cost a switch, which
made the ledger cost more than the transport (benchmarks/ledger_bench.py). Under FULL, the
COMMIT with its fsync runs on a thread of its own, and so does the BEGIN IMMEDIATE of the next
batch, queued behind it: writers that arrive while one COMMIT runs form the next batch, which
commits once for all of them. Under NORMAL or OFF, where a COMMIT does not fsync, the loop
also begins each batch itself, unless a thread's writer holds the write lock or another
process holds SQLite's: then the thread waits for it, not the loop.

The lock is the store's process-wide write lock, so threads that write through
`SqliteStore.write` (the sweeper, RouteOrder) take turns with the loop's batches. No writer
returns before the COMMIT that holds its changes, and the failure rules are those of
`SqliteStore.write`: a writer refused before it wrote leaves the batch going; one that fails
after writing rolls the batch back, and its batch-mates retry."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from server.domain.errors import StoreUnavailable
from server.storage.sql import SqlUnitOfWork
from server.storage.sqlite.connection import begin

Result = TypeVar("Result")


class _Batch:
    __slots__ = ("closing", "committed", "members")

    def __init__(self, committed: asyncio.Future[None]) -> None:
        self.committed = committed
        self.members = 0
        self.closing = False


class LoopCommitter:
    def __init__(
        self,
        connection: sqlite3.Connection,
        lock: threading.Lock,
        unit_of_work: Callable[[], SqlUnitOfWork],
        *,
        commit_inline: bool,
        busy_timeout_ms: int,
    ) -> None:
        """`commit_inline`: BEGIN and COMMIT on the loop itself, for when a COMMIT does not
        fsync (synchronous NORMAL or OFF): a thread hop costs more than such a COMMIT (-7%
        server CPU per CreateReservation under NORMAL) or such a BEGIN (+4-13%
        CreateReservation RPC/s under NORMAL, in paired runs). `busy_timeout_ms` is the
        connection's, restored after the loop's own BEGIN, which does not wait."""
        self._connection = connection
        self._lock = lock
        self._unit_of_work = unit_of_work
        # One thread: it takes the lock and commits in the order the loop asks.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-commit")
        self._open: _Batch | None = None  # the batch writers on the loop join now
        self._opening: asyncio.Future[_Batch] | None = None
        self._commit_inline = commit_inline
        self._busy_timeout_ms = busy_timeout_ms

    async def write(self, work: Callable[[SqlUnitOfWork], Result]) -> Result:
        """Runs `work` in the current batch and returns its result once the batch commits."""
        batch = await self._joinable_batch()
        changes = self._connection.total_changes
        refused: BaseException | None = None
        try:
            result = work(self._unit_of_work())
        except BaseException as error:
            if wrote(self._connection, changes):
                self._roll_back(batch)
                raise
            refused = error
        else:
            batch.members += 1
        if not batch.closing:
            # Runs after every writer the loop has already woken for this batch. Until then,
            # writers that arrive join it: a new batch would wait for the lock this one holds.
            batch.closing = True
            asyncio.get_running_loop().call_soon(self._commit, batch)
        # A refused writer too waits: what refused it is then visible to its next read.
        await asyncio.shield(batch.committed)
        if refused is not None:
            raise refused
        return result

    async def _joinable_batch(self) -> _Batch:
        while True:
            if self._open is not None:  # joinable until its COMMIT is handed to the thread
                return self._open
            if self._opening is None:
                if self._commit_inline and self._begin_here():
                    return self._opened()
                self._opening = asyncio.ensure_future(self._begin())
            batch = await asyncio.shield(self._opening)
            if batch is self._open:  # else it committed or rolled back before this writer woke
                return batch

    async def _begin(self) -> _Batch:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._lock_and_begin)
            return self._opened()
        finally:
            self._opening = None

    def _opened(self) -> _Batch:
        """The batch whose transaction just began, open for writers to join."""
        self._open = _Batch(asyncio.get_running_loop().create_future())
        return self._open

    def _begin_here(self) -> bool:
        """Begins a batch on the loop if nothing makes that wait: the lock held by a thread's
        writer, or SQLite's file lock by another process (then BEGIN fails at once)."""
        if not self._lock.acquire(blocking=False):
            return False
        connection = self._connection
        try:
            connection.execute("PRAGMA busy_timeout = 0")
            try:
                connection.execute("BEGIN IMMEDIATE")
            finally:
                connection.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        except sqlite3.OperationalError:
            self._lock.release()
            return False
        except BaseException:
            self._lock.release()
            raise
        return True

    def _lock_and_begin(self) -> None:
        self._lock.acquire()
        try:
            begin(self._connection)
        except BaseException:
            self._lock.release()
            raise

    def _commit(self, batch: _Batch) -> None:
        if batch is not self._open:
            return  # rolled back meanwhile
        self._open = None
        if self._commit_inline:
            try:
                self._commit_and_unlock()
            except BaseException as error:
                _settle(batch, error)
            else:
                _settle(batch, None)
            return
        done = asyncio.get_running_loop().run_in_executor(self._thread, self._commit_and_unlock)
        done.add_done_callback(lambda finished: _settle(batch, finished.exception()))

    def _commit_and_unlock(self) -> None:
        try:
            self._connection.execute("COMMIT")
        except BaseException:
            roll_back_quietly(self._connection)
            raise
        finally:
            self._lock.release()

    def _roll_back(self, batch: _Batch) -> None:
        """Undoes the batch (if SQLite has not already); its earlier writers retry."""
        roll_back_quietly(self._connection)
        self._open = None
        self._lock.release()
        _settle(batch, LostBatch("rolled back before commit") if batch.members else None)

    def close(self) -> None:
        self._thread.shutdown(wait=True)


def _settle(batch: _Batch, error: BaseException | None) -> None:
    if batch.committed.done():
        return
    if error is None:
        batch.committed.set_result(None)
    else:
        batch.committed.set_exception(commit_failure(error))


# --- shared with SqliteStore.write's group commit -------------------------------------------


class LostBatch(Exception):
    """A batch undone before its COMMIT: its writers can safely run again."""


def commit_failure(error: BaseException) -> StoreUnavailable:
    """What a batch's writers learn when it did not commit. A failed COMMIT may or may not have
    landed: only the client can retry safely (with the same request_id), as with PostgreSQL."""
    failure = StoreUnavailable(
        f"the commit this change was part of failed: {error}",
        retry_safe=isinstance(error, LostBatch),
    )
    failure.__cause__ = error
    return failure


def roll_back_quietly(connection: sqlite3.Connection) -> None:
    """Ends the transaction, if SQLite has not already (after an I/O error, say)."""
    with contextlib.suppress(sqlite3.Error):
        if connection.in_transaction:
            connection.execute("ROLLBACK")


def wrote(connection: sqlite3.Connection, changes_before: int) -> bool:
    """Whether a writer that failed had changed anything (or lost the transaction): then its
    batch cannot commit without it."""
    return connection.total_changes != changes_before or not connection.in_transaction
