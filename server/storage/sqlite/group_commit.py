"""Group commit on SQLite's one writer connection: writers that come while a batch's transaction
is open run in it one after another, and one COMMIT (under FULL, one fsync) ends it for all of
them. No writer returns before the COMMIT that holds its changes, so durability and isolation
are those of a transaction each.

Writers come from threads (`write`) and from the server's event loop (`write_on_loop`). A batch
holds the store's write lock from its BEGIN IMMEDIATE (which also takes SQLite's lock on the
file, against other processes) to its COMMIT, so the two kinds of batch take turns. A thread's
batch is continued by the next thread queued for its turn; a loop's batch takes in the loop's
writers until its COMMIT, scheduled after those already woken. A loop batch's BEGIN and COMMIT
run on a commit thread, so the loop never waits for the lock or an fsync; where a COMMIT does
not fsync (synchronous NORMAL or OFF) the loop runs them itself unless that would wait, a thread
hop costing more than they do (docs/sqlite.md).

The failure rules, the same for both kinds of writer:

1. A BEGIN that finds the file busy past the timeout raises Conflict (`connection.begin`).
2. A writer failing before it wrote anything (every domain error: the ledger checks before it
   writes) leaves its batch going, and raises its error once the batch has committed: what
   refused it (stock a batch-mate took, say) is then visible to its next read, so a caller that
   reads again and retries (RouteOrder re-solving a stale plan) is not refused again.
3. A writer failing after it wrote, or having lost the transaction, rolls the batch back and
   raises its error; the batch's earlier writers raise a retry-safe StoreUnavailable (LostBatch),
   which `transactions.retrying` runs again. This rare case buys the common one two statements
   fewer per writer than a SAVEPOINT each.
4. A failed COMMIT may or may not have landed: every writer of the batch raises a StoreUnavailable
   that is not retry-safe, and only the client can retry (with the same request_id), as with
   PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import TracebackType

from server.domain.errors import StoreUnavailable
from server.domain.port import Result
from server.storage.change_log import LoggingUnitOfWork
from server.storage.network_cache import NetworkCache
from server.storage.sqlite.connection import begin, unit_of_work

# Writers one thread batch may hold: bounds how long the first of them waits for the COMMIT.
MAX_GROUP_COMMIT = 32


class GroupCommit:
    def __init__(
        self,
        connection: sqlite3.Connection,
        lock: threading.Lock,
        network: NetworkCache,
        *,
        commit_inline: bool,
        busy_timeout_ms: int,
    ) -> None:
        """`lock`: the store's write lock, held by a batch from BEGIN to COMMIT. `commit_inline`:
        a loop batch's BEGIN and COMMIT on the loop itself, for when a COMMIT does not fsync.
        `busy_timeout_ms`: the connection's, restored after the loop's own BEGIN, which does
        not wait."""
        self._connection = connection
        self._lock = lock
        self._network = network
        self._commit_inline = commit_inline
        self._busy_timeout_ms = busy_timeout_ms
        self._turn = threading.Lock()  # a thread writer's turn on the connection
        self._queue_lock = threading.Lock()
        self.queued = 0  # thread writers waiting for their turn
        self.commits = 0  # what the metrics report: batches committed, their writers, and
        self.committed_writes = 0  # the seconds their COMMITs took (one fsync each under FULL)
        self.commit_seconds = 0.0
        self._thread_batch: _Batch | None = None  # the batch the next thread writer continues
        self._loop_batch: _Batch | None = None  # the batch writers on the loop join now
        self._opening: asyncio.Future[_Batch] | None = None
        # One thread: it takes the lock and commits in the order the loop asks.
        self._commit_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-commit")

    # --- writers on threads --------------------------------------------------------------

    @contextmanager
    def write(self, *, slow_reads: bool = True) -> Iterator[LoggingUnitOfWork]:
        """A unit of work in the open thread batch, or in a new one; leaving the `with` block
        returns once that batch has committed."""
        with self._queue_lock:
            self.queued += 1
        self._turn.acquire()
        with self._queue_lock:
            self.queued -= 1
        try:
            batch = self._thread_batch
            if batch is None:
                self._lock_and_begin()
                batch = self._thread_batch = _Batch()
            turn = _Turn(self, batch, slow_reads=slow_reads)
            try:
                with turn as uow:
                    yield uow
            finally:
                if self._thread_batch is batch and not self._continued(batch):
                    self._thread_batch = None
                    batch.finish(self._commit(batch))
        finally:
            self._turn.release()
        batch.wait()
        turn.raise_refusal()

    def _continued(self, batch: _Batch) -> bool:
        """Whether the next thread queued for its turn continues `batch` (and ends it)."""
        return bool(
            self.queued and batch.members < MAX_GROUP_COMMIT and self._connection.in_transaction
        )

    # --- writers on the event loop -------------------------------------------------------

    async def write_on_loop(self, work: Callable[[LoggingUnitOfWork], Result]) -> Result:
        """Runs `work` in the loop's open batch, or a new one, and returns its result once that
        batch has committed."""
        batch = await self._joinable_batch()
        turn = _Turn(self, batch, slow_reads=False)
        with turn as uow:
            result = work(uow)
        if not batch.closing:
            # Runs after every writer the loop has already woken for this batch. Until then,
            # writers that arrive join it: a new batch would wait for the lock this one holds.
            batch.closing = True
            asyncio.get_running_loop().call_soon(self._end_loop_batch, batch)
        await batch.wait_on_loop()
        turn.raise_refusal()
        return result

    async def _joinable_batch(self) -> _Batch:
        while True:
            if self._loop_batch is not None:  # joinable until its COMMIT is handed on
                return self._loop_batch
            if self._opening is None:
                if self._commit_inline and self._lock_and_begin_at_once():
                    return self._opened()
                self._opening = asyncio.ensure_future(self._begin_on_thread())
            batch = await asyncio.shield(self._opening)
            if batch is self._loop_batch:  # else it ended before this writer woke
                return batch

    async def _begin_on_thread(self) -> _Batch:
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._commit_thread, self._lock_and_begin
            )
            return self._opened()
        finally:
            self._opening = None

    def _opened(self) -> _Batch:
        """The loop batch whose transaction just began, open for the loop's writers to join."""
        self._loop_batch = _Batch(asyncio.get_running_loop().create_future())
        return self._loop_batch

    def _end_loop_batch(self, batch: _Batch) -> None:
        if batch is not self._loop_batch:
            return  # rolled back meanwhile
        self._loop_batch = None
        if self._commit_inline:
            batch.finish(self._commit(batch))
            return
        committed = asyncio.get_running_loop().run_in_executor(
            self._commit_thread, self._commit, batch
        )
        committed.add_done_callback(lambda done: batch.finish(done.result()))

    # --- the transaction, for both -------------------------------------------------------

    def _lock_and_begin(self) -> None:
        """Takes the write lock, waiting for it, and begins a batch's transaction (rule 1)."""
        self._lock.acquire()
        try:
            begin(self._connection)
        except BaseException:
            self._lock.release()
            raise

    def _lock_and_begin_at_once(self) -> bool:
        """The same, unless that would wait: for the write lock (a batch holds it, open or
        committing) or for SQLite's (another process writing, then BEGIN fails at once)."""
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

    def _commit(self, batch: _Batch) -> BaseException | None:
        """Ends the open batch's transaction with its COMMIT and lets go of the write lock;
        returns why the batch did not commit, if it did not (rules 3 and 4)."""
        try:
            if not self._connection.in_transaction:
                return LostBatch("the transaction was rolled back before its commit")
            started = time.perf_counter()
            try:
                self._connection.execute("COMMIT")
            except BaseException as error:
                _roll_back_quietly(self._connection)
                return error
            self.commit_seconds += time.perf_counter() - started
            self.commits += 1
            self.committed_writes += batch.members
            return None
        finally:
            self._lock.release()

    def _roll_back(self, batch: _Batch) -> None:
        """Rule 3: undoes the batch, lets go of the write lock, and tells its earlier writers to
        retry."""
        _roll_back_quietly(self._connection)
        if self._thread_batch is batch:
            self._thread_batch = None
        if self._loop_batch is batch:
            self._loop_batch = None
        self._lock.release()
        batch.finish(LostBatch("rolled back before its commit") if batch.members else None)

    def close(self) -> None:
        """Waits for the commit thread's work (the caller then takes the write lock, which
        waits for the batch that holds it, if any)."""
        self._commit_thread.shutdown(wait=True)


class _Turn:
    """One writer's unit of work in a batch, under rules 2 and 3: an error before it wrote is
    held back (`raise_refusal`, once the batch has ended); after, the batch is rolled back."""

    __slots__ = ("_batch", "_changes", "_group", "_slow_reads", "refused")

    def __init__(self, group: GroupCommit, batch: _Batch, *, slow_reads: bool) -> None:
        self._group = group
        self._batch = batch
        self._slow_reads = slow_reads
        self._changes = 0
        self.refused: BaseException | None = None

    def __enter__(self) -> LoggingUnitOfWork:
        connection = self._group._connection
        self._changes = connection.total_changes
        return unit_of_work(connection, self._group._network, slow_reads=self._slow_reads)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if error is None:
            self._batch.members += 1
            return False
        connection = self._group._connection
        if connection.total_changes != self._changes or not connection.in_transaction:
            self._group._roll_back(self._batch)  # the batch cannot commit without this writer
            return False
        self.refused = error
        return True

    def raise_refusal(self) -> None:
        if self.refused is not None:
            raise self.refused


class _Batch:
    """One group-commit transaction: how many writers it holds, and how it ended."""

    __slots__ = ("_done", "_ended", "closing", "error", "members")

    def __init__(self, ended: asyncio.Future[None] | None = None) -> None:
        """`ended`: what a loop batch's writers await (it ends on the loop)."""
        self.members = 0
        self.error: BaseException | None = None
        self.closing = False  # a loop batch whose end is scheduled
        self._ended = ended
        # A held lock is the cheapest latch (an Event builds a Condition and two locks, on
        # every write): `finish` releases it, `wait` passes through it.
        self._done = threading.Lock()
        self._done.acquire()

    def finish(self, error: BaseException | None) -> None:
        self.error = error
        self._done.release()
        if self._ended is not None:
            self._ended.set_result(None)

    def wait(self) -> None:
        """Returns once the batch committed; raises if it did not."""
        with self._done:  # every writer of the batch passes through, one after another
            pass
        self._raise_failure()

    async def wait_on_loop(self) -> None:
        """`wait` for a loop batch's writers."""
        assert self._ended is not None
        await asyncio.shield(self._ended)
        self._raise_failure()

    def _raise_failure(self) -> None:
        """Rules 3 and 4: a batch undone before its COMMIT can run again; after a failed
        COMMIT only the client knows whether to."""
        if self.error is None:
            return
        failure = StoreUnavailable(
            f"the commit this change was part of failed: {self.error}",
            retry_safe=isinstance(self.error, LostBatch),
        )
        raise failure from self.error


class LostBatch(Exception):
    """A batch undone before its COMMIT: its writers can safely run again."""


def _roll_back_quietly(connection: sqlite3.Connection) -> None:
    """Ends the transaction, if SQLite has not already (after an I/O error, say)."""
    with contextlib.suppress(sqlite3.Error):
        if connection.in_transaction:
            connection.execute("ROLLBACK")
