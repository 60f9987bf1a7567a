"""The change log's pulse in a running server: one task reads the log's new entries into memory
and wakes the watchers (WatchAvailability streams), which take them from there: each commit
costs one read of the log, whatever the number of watchers, and idle streams cost nothing. A
watcher further behind than memory reaches reads the log itself.

On PostgreSQL the same task first numbers the entries other transactions committed (the
sequencer, storage/change_log.py); servers take turns at it, and every server sees every
server's commits within one tick. A local commit wakes the task at once. Polling beats
LISTEN/NOTIFY here: a NOTIFY in every writing transaction would serialise all commits on
PostgreSQL's notification queue lock, and one read per tick per server is cheap."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable

from server.domain.commands import Availability
from server.domain.errors import DomainError
from server.transport.transactions import Transactions

log = logging.getLogger(__name__)
TICK_S = 0.05
"""How often the log's end is read without a local commit: how late a commit through another
server (or the expiry sweeper) reaches this server's watchers."""
SEQUENCED_PER_TICK = 10_000
READ_PER_TICK = 1_000
KEPT = 10_000
"""Recent entries held in memory (up to twice this) while any stream is open: a few MB."""
Entry = tuple[int, int, Availability]  # (sequence, commit time, record)


class ChangeFeed:
    def __init__(self, transactions: Transactions, *, tick_s: float = TICK_S) -> None:
        self.tx = transactions
        self.tick_s = tick_s
        self.newest = 0
        self.watchers = 0  # WatchAvailability streams open now (for the metrics)
        self._moved = asyncio.Event()
        self._nudged = asyncio.Event()
        self._sequencer = False
        self._task: asyncio.Task[None] | None = None
        self._seqs: list[int] = []
        self._entries: list[Entry] = []
        self._held_after = 0  # memory holds every entry after this one, up to `newest`
        self._pruned = 0  # the log's newest entry pruned: tokens before it have expired

    async def start(self) -> None:
        self._sequencer = not await self.tx.query(lambda uow: uow.sequenced_at_insert)
        self._pruned, self.newest = await self._read_bounds()
        self._held_after = self.newest
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def catch_up(self) -> None:
        """Numbers every entry committed so far (PostgreSQL), so that a read that follows sees
        every write acknowledged before it, on any server."""
        if self._sequencer:
            await self.tx.write(lambda uow: uow.sequence_changes(SEQUENCED_PER_TICK, wait=True))

    def committed(self) -> None:
        """A write committed on this server: look at the log now."""
        self._nudged.set()

    async def wait_past(self, seq: int, timeout_s: float) -> bool:
        """Waits until the log holds an entry after `seq`, at most `timeout_s`; whether it does."""
        while self.newest <= seq:
            moved = self._moved
            try:
                await asyncio.wait_for(moved.wait(), timeout_s)
            except TimeoutError:
                return self.newest > seq
        return True

    def recent(
        self, after: int, limit: int, matches: Callable[[Availability], bool]
    ) -> tuple[list[Entry], int] | None:
        """Up to `limit` entries after `after` that match, from memory, and the position the
        next read continues after; None when memory does not hold that stretch."""
        if not max(self._held_after, self._pruned) <= after <= self.newest:
            return None
        found = []
        for entry in self._entries[bisect.bisect_right(self._seqs, after) :]:
            if matches(entry[2]):
                found.append(entry)
                if len(found) == limit:
                    return found, entry[0]
        return found, self.newest

    async def _read_bounds(self) -> tuple[int, int]:
        return await self.tx.query(lambda uow: uow.change_log_bounds())

    async def _run(self) -> None:
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self.tick_s)
            self._nudged.clear()
            try:
                if self._sequencer:
                    await self.tx.write(lambda uow: uow.sequence_changes(SEQUENCED_PER_TICK))
                self._pruned, newest = await self._read_bounds()
                if newest > self.newest and self.watchers:
                    await self._read_entries(newest)
                elif newest > self.newest:  # nobody streams: nothing to hold
                    self.newest = self._held_after = newest
                    self._seqs.clear()
                    self._entries.clear()
            except (DomainError, OSError) as error:
                if not failing:
                    log.warning("cannot read the change log; watchers wait: %s", error)
                failing = True
                await asyncio.sleep(1.0)
                continue
            failing = False

    async def _read_entries(self, newest: int) -> None:
        """Reads the entries up to `newest` into memory, then wakes the watchers."""
        while self.newest < newest:
            found, through = await self.tx.query(
                lambda uow: uow.changes_after(self.newest, newest, READ_PER_TICK)
            )
            self._seqs.extend(entry[0] for entry in found)
            self._entries.extend(found)
            self.newest = through
        if len(self._entries) > 2 * KEPT:
            dropped = len(self._entries) - KEPT
            self._held_after = self._seqs[dropped - 1]
            del self._seqs[:dropped], self._entries[:dropped]
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()
