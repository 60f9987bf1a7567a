"""Group commit for writers on the event loop (`SqliteStore.write_on_loop`), on the real SQLite
file: the same rules as the threads' group commit, and the two kinds of
writer take turns on the one connection."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

from server.domain.errors import StoreUnavailable
from server.storage.sqlite import SqliteStore
from tests.storage.test_sqlite_group_commit import close_within, site, stored


@pytest.fixture(params=["FULL", "NORMAL"])  # COMMIT on its thread, and on the loop
def store(request, sqlite_path):
    opened = SqliteStore(sqlite_path, synchronous=request.param)
    yield opened
    close_within(opened, 10)


def put(store: SqliteStore, location_id: str):
    def work(uow) -> str:
        uow.put_locations([site(location_id)])
        return location_id

    return store.write_on_loop(work)


def counting_commits(store: SqliteStore) -> list[str]:
    commits: list[str] = []
    store._writer.set_trace_callback(
        lambda statement: commits.append(statement) if statement == "COMMIT" else None
    )
    return commits


def test_writers_arriving_together_share_a_commit_and_all_land(store, sqlite_path):
    commits = counting_commits(store)

    async def main() -> list[str]:
        return await asyncio.gather(*(put(store, f"site-{i:02d}") for i in range(40)))

    assert asyncio.run(main()) == [f"site-{i:02d}" for i in range(40)]
    assert len(commits) == 1
    assert stored(sqlite_path) == {f"site-{i:02d}" for i in range(40)}


def test_a_writer_refused_before_writing_leaves_its_batch_to_commit(store, sqlite_path):
    def refuse(uow) -> None:
        uow.known_locations(["nowhere"])
        raise LookupError("refused before writing, as every domain error is")

    async def main() -> list[object]:
        return await asyncio.gather(
            put(store, "a"), store.write_on_loop(refuse), put(store, "c"), return_exceptions=True
        )

    first, refused, last = asyncio.run(main())

    assert (first, last) == ("a", "c")
    assert isinstance(refused, LookupError)
    assert stored(sqlite_path) == {"a", "c"}


def test_a_writer_failing_after_it_wrote_rolls_back_the_batch_for_a_retry(store, sqlite_path):
    def write_then_fail(uow) -> None:
        uow.put_locations([site("b")])
        raise RuntimeError("failed after writing")

    async def main() -> list[object]:
        return await asyncio.gather(
            put(store, "a"),
            store.write_on_loop(write_then_fail),
            put(store, "c"),
            return_exceptions=True,
        )

    first, failed, last = asyncio.run(main())

    # `a` shared the rolled-back batch: told to retry. `c` woke after it and began a new one.
    assert isinstance(first, StoreUnavailable)
    assert first.retry_safe
    assert isinstance(failed, RuntimeError)
    assert last == "c"
    assert stored(sqlite_path) == {"c"}
    assert asyncio.run(put(store, "a")) == "a"  # the retry commits
    assert stored(sqlite_path) == {"a", "c"}


def test_loop_writers_and_thread_writers_take_turns_and_every_write_lands(store, sqlite_path):
    def threads_writing() -> None:
        for index in range(30):
            with store.write() as uow:
                uow.put_locations([site(f"thread-{index:02d}")])

    async def loop_writing() -> None:
        for index in range(30):
            await asyncio.gather(
                put(store, f"loop-{index:02d}-a"), put(store, f"loop-{index:02d}-b")
            )

    thread = threading.Thread(target=threads_writing)
    thread.start()
    asyncio.run(asyncio.wait_for(loop_writing(), timeout=60))
    thread.join(60)

    expected = {f"thread-{i:02d}" for i in range(30)}
    expected |= {f"loop-{i:02d}-{x}" for i in range(30) for x in "ab"}
    assert stored(sqlite_path) == expected


def test_thread_batches_and_loop_batches_never_overlap_so_no_writer_is_told_busy(
    store, sqlite_path
):
    # Four threads, so that thread writers queue and a thread batch holds several of them:
    # were the loop to begin its batch between two, its BEGIN would fail inside their
    # transaction and its writer be told the store is busy (Conflict).
    deadline = time.monotonic() + 0.5
    acknowledged: set[str] = set()
    failures: list[BaseException] = []

    def thread_writing(thread: int) -> None:
        index = 0
        while time.monotonic() < deadline:
            location_id = f"thread-{thread}-{index:05d}"
            index += 1
            try:
                with store.write() as uow:
                    uow.put_locations([site(location_id)])
            except Exception as error:
                failures.append(error)
            else:
                acknowledged.add(location_id)

    async def loop_writer(writer: int) -> None:
        index = 0
        while time.monotonic() < deadline:
            location_id = f"loop-{writer}-{index:05d}"
            index += 1
            try:
                acknowledged.add(await put(store, location_id))
            except Exception as error:
                failures.append(error)

    async def loop_writing() -> None:
        await asyncio.gather(*(loop_writer(writer) for writer in range(4)))

    threads = [threading.Thread(target=thread_writing, args=(i,), daemon=True) for i in range(4)]
    threads.append(threading.Thread(target=asyncio.run, args=(loop_writing(),), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not any(thread.is_alive() for thread in threads), "a writer never got its turn"
    assert failures == []
    assert stored(sqlite_path) == acknowledged


def beginning_threads(store: SqliteStore) -> list[str]:
    """The name of the thread that ran each BEGIN IMMEDIATE on the writer connection."""
    threads: list[str] = []
    store._writer.set_trace_callback(
        lambda statement: (
            threads.append(threading.current_thread().name)
            if statement == "BEGIN IMMEDIATE"
            else None
        )
    )
    return threads


def test_without_an_fsync_to_wait_for_the_loop_begins_its_own_batches(sqlite_path):
    store = SqliteStore(sqlite_path, synchronous="NORMAL")
    try:
        threads = beginning_threads(store)
        assert asyncio.run(put(store, "a")) == "a"
        assert threads == [threading.current_thread().name]  # no hop to the commit thread
        assert stored(sqlite_path) == {"a"}
    finally:
        store.close()


@pytest.mark.timeout(20)  # a loop that waited out the busy timeout would hang here for 30 s
def test_a_file_lock_held_by_another_process_never_blocks_the_loop(sqlite_path):
    store = SqliteStore(sqlite_path, synchronous="NORMAL", busy_timeout_ms=30_000)
    other = sqlite3.connect(sqlite_path, isolation_level=None)  # as another process would
    try:
        threads = beginning_threads(store)
        other.execute("BEGIN IMMEDIATE")

        async def main() -> str:
            writer = asyncio.ensure_future(put(store, "a"))
            await asyncio.sleep(0.1)  # the loop goes on running while the writer waits
            assert not writer.done()
            other.execute("COMMIT")
            return await writer

        assert asyncio.run(main()) == "a"
        # The loop's attempt failed at once; the commit thread waited for the lock.
        assert threads[0] == threading.current_thread().name
        assert len(threads) == 2
        assert threads[1].startswith("sqlite-commit")
        assert stored(sqlite_path) == {"a"}
    finally:
        other.close()
        store.close()
