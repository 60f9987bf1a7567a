"""The change log's pulse in a running server: one task knows the log's newest entry and wakes
the watchers (WatchAvailability streams) when it moves, so that idle streams cost nothing and
each commit costs one read of the log's end, whatever the number of watchers.

On PostgreSQL the same task first numbers the entries other transactions committed (the
sequencer, storage/change_log.py); servers take turns at it, and every server sees every
server's commits within one tick. A local commit wakes the task at once. Polling beats
LISTEN/NOTIFY here: a NOTIFY in every writing transaction would serialise all commits on
PostgreSQL's notification queue lock, and one read per tick per server is cheap."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.domain.errors import DomainError
from server.transport.transactions import Transactions

log = logging.getLogger(__name__)
TICK_S = 0.05
"""How often the log's end is read without a local commit: how late a commit through another
server (or the expiry sweeper) reaches this server's watchers."""
SEQUENCED_PER_TICK = 10_000


class ChangeFeed:
    def __init__(self, transactions: Transactions, *, tick_s: float = TICK_S) -> None:
        self.tx = transactions
        self.tick_s = tick_s
        self.newest = 0
        self._moved = asyncio.Event()
        self._nudged = asyncio.Event()
        self._sequencer = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sequencer = not await self.tx.query(lambda uow: uow.sequenced_at_insert)
        self.newest = await self._read_newest()
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

    async def _read_newest(self) -> int:
        return await self.tx.query(lambda uow: uow.change_log_bounds()[1])

    async def _run(self) -> None:
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self.tick_s)
            self._nudged.clear()
            try:
                if self._sequencer:
                    await self.tx.write(lambda uow: uow.sequence_changes(SEQUENCED_PER_TICK))
                newest = await self._read_newest()
            except (DomainError, OSError) as error:
                if not failing:
                    log.warning("cannot read the change log; watchers wait: %s", error)
                failing = True
                await asyncio.sleep(1.0)
                continue
            failing = False
            if newest != self.newest:
                self.newest = newest
                moved, self._moved = self._moved, asyncio.Event()
                moved.set()
