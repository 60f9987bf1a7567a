"""WAL checkpoints on a background thread: copying WAL pages back into the database file, with
its fsync, is left to this thread rather than to whichever commit crosses SQLite's threshold,
which would run it while holding the write lock and stall every writer meanwhile
(docs/sqlite.md)."""

from __future__ import annotations

import logging
import sqlite3
import threading

CHECKPOINT_INTERVAL_S = 0.1
# SQLite's own checkpoint in the committing writer stays as a backstop, at 20x its default
# threshold, should the background checkpointer fall behind.
BACKSTOP_AUTOCHECKPOINT_PAGES = 20_000
log = logging.getLogger(__name__)


class Checkpointer:
    """Runs a PASSIVE checkpoint every interval on its own connection and thread. PASSIVE never
    waits for readers or writers: it copies what it can and the next round copies the rest."""

    def __init__(
        self, writer: sqlite3.Connection, connection: sqlite3.Connection, interval_s: float
    ) -> None:
        writer.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_AUTOCHECKPOINT_PAGES}")
        self._connection = connection
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping.wait(self._interval_s):
                try:
                    self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:  # tried again next interval; the backstop remains
                    log.warning("background WAL checkpoint failed: %s", error)
        finally:
            self._connection.close()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
