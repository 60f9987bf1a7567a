"""Group commit on the real SQLite file (synchronous=FULL): writers that queue share one COMMIT.
A writer failing before it writes leaves its batch-mates' changes to commit; one failing after
it wrote takes the batch down, and its batch-mates learn it as a retry-safe StoreUnavailable;
a failed COMMIT fails every writer of its batch, not retry-safe, and the store goes on."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from server.domain.errors import StoreUnavailable
from server.domain.model import Location, LocationType
from server.storage.sqlite import SqliteStore


def site(location_id: str) -> Location:
    return Location(location_id, location_id, LocationType.WAREHOUSE, 40.0, -75.0)


@pytest.fixture
def store(sqlite_path):
    opened = SqliteStore(sqlite_path, synchronous="FULL")
    yield opened
    close_within(opened, 10)


def close_within(store: SqliteStore, seconds: float) -> None:
    """Closes `store`, failing rather than hanging if it never lets go of its write lock."""
    closing = threading.Thread(target=store.close, daemon=True)
    closing.start()
    closing.join(seconds)
    assert not closing.is_alive(), "the store never let go of its write lock"


def stored(sqlite_path) -> set[str]:
    """What a fresh connection finds on disk: only committed writes."""
    other = SqliteStore(sqlite_path, synchronous="FULL", checkpoint_interval_s=None)
    try:
        with other.read() as uow:
            return {location.id for location in uow.list_locations("", 1_000_000)}
    finally:
        other.close()


def in_one_batch(store: SqliteStore, second: Callable[[], None]) -> BaseException | None:
    """Runs a first writer that puts location `first` and keeps the transaction open until
    `second` (another writer) queues behind it, so both land in one batch. Returns what the
    first writer raised, if anything."""
    outcome: list[BaseException | None] = []

    def first() -> None:
        try:
            with store.write() as uow:
                uow.put_locations([site("first")])
                started.set()
                deadline = time.monotonic() + 10
                while not store._group_commit.queued and time.monotonic() < deadline:
                    time.sleep(0.001)
                assert store._group_commit.queued, "the second writer never queued"
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    started = threading.Event()
    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(10)
    second()
    thread.join(10)
    return outcome[0]


def test_a_writer_failing_before_it_writes_leaves_the_batch_to_commit(store, sqlite_path):
    def refuse() -> None:
        with store.write() as uow:
            uow.known_locations(["nowhere"])
            raise LookupError("refused before writing, as every domain error is")

    def second() -> None:
        with pytest.raises(LookupError):
            refuse()

    assert in_one_batch(store, second) is None
    assert stored(sqlite_path) == {"first"}


def test_a_writer_failing_after_it_wrote_rolls_the_batch_back_for_a_retry(store, sqlite_path):
    def write_then_fail() -> None:
        with store.write() as uow:
            uow.put_locations([site("second")])
            raise RuntimeError("failed after writing")

    def second() -> None:
        with pytest.raises(RuntimeError):
            write_then_fail()

    error = in_one_batch(store, second)

    assert isinstance(error, StoreUnavailable)
    assert error.retry_safe
    assert stored(sqlite_path) == set()
    with store.write() as uow:  # the store goes on: the retry commits
        uow.put_locations([site("first")])
    assert stored(sqlite_path) == {"first"}


@contextmanager
def commits_refused(connection: sqlite3.Connection) -> Iterator[None]:
    """SQLite's authorizer refuses every COMMIT on `connection` until the block ends: each
    fails, and leaves its transaction open for the store to roll back."""

    def authorize(action: int, argument: str | None, *_: str | None) -> int:
        if action == sqlite3.SQLITE_TRANSACTION and argument == "COMMIT":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    connection.set_authorizer(authorize)
    try:
        yield
    finally:
        connection.set_authorizer(None)


def test_a_failed_commit_fails_every_writer_of_its_batch_and_the_store_goes_on(store, sqlite_path):
    def second() -> None:
        with pytest.raises(StoreUnavailable) as failed, store.write() as uow:
            uow.put_locations([site("second")])
        assert not failed.value.retry_safe  # the COMMIT may have landed: only the client knows

    with commits_refused(store._writer):
        first = in_one_batch(store, second)

    assert isinstance(first, StoreUnavailable)
    assert not first.retry_safe
    assert stored(sqlite_path) == set()

    def write_after() -> None:
        with store.write() as uow:
            uow.put_locations([site("after")])

    after = threading.Thread(target=write_after, daemon=True)
    after.start()
    after.join(10)
    assert not after.is_alive(), "the write after the failed COMMIT never got its turn"
    assert stored(sqlite_path) == {"after"}


def test_many_writers_share_commits_and_every_acknowledged_write_is_on_disk(store, sqlite_path):
    def put(index: int) -> None:
        with store.write() as uow:
            uow.put_locations([site(f"site-{index:03d}")])

    threads = [threading.Thread(target=put, args=(index,)) for index in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert stored(sqlite_path) == {f"site-{index:03d}" for index in range(64)}
