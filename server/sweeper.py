"""Background housekeeping: releases expired reservations, forgets old request ids and prunes
the change log and the stock movements.

Safe with several servers on one database: each expiry runs in a write unit of work that
re-checks the reservation is still due, so only one server releases it."""

from __future__ import annotations

import contextlib
import logging
import threading

from server.domain.errors import Conflict, StoreUnavailable, UnlockedSkus
from server.domain.ledger import Ledger
from server.domain.port import Store, WouldBlock

log = logging.getLogger(__name__)
REQUEST_ID_RETENTION_S = 7 * 24 * 3600.0
"""How long a mutation's response is kept for a retry with its request_id (AIP-155)."""
CHANGE_LOG_RETENTION_S = 7 * 24 * 3600.0
"""How long the change log keeps an entry: how long a feed consumer may stay away."""
HISTORY_RETENTION_S = 90 * 24 * 3600.0
"""How long a stock movement is kept (ListStockMovements)."""
PRUNED_PER_SWEEP = 10_000


def expire_due(store: Store, ledger: Ledger, limit: int = 100) -> int:
    """Expires up to `limit` due reservations; returns how many this call expired."""
    with store.read() as uow:
        due = ledger.due_reservations(uow, limit)
    expired = 0
    for reservation_id in due:
        with store.read() as uow:
            skus = ledger.reservation(uow, reservation_id).skus
        try:
            expired += _expire(store, ledger, reservation_id, skus)
        except UnlockedSkus as error:  # an update added a SKU after the read: lock it too
            with contextlib.suppress(UnlockedSkus):  # else the next sweep expires it
                expired += _expire(store, ledger, reservation_id, error.skus)
    return expired


def _expire(store: Store, ledger: Ledger, reservation_id: str, skus: set[str]) -> bool:
    try:
        with store.write(skus, slow_reads=False) as uow:
            return ledger.expire(uow, reservation_id, skus)
    except WouldBlock:  # a big group's sums are cold: sum them outside the write
        with store.read() as uow:
            uow.stock_totals(skus)
        with store.write(skus) as uow:
            return ledger.expire(uow, reservation_id, skus)


class Sweeper:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        interval_s: float = 0.5,
        remember_requests_us: int = int(REQUEST_ID_RETENTION_S * 1e6),
        keep_changes_us: int = int(CHANGE_LOG_RETENTION_S * 1e6),
        keep_movements_us: int = int(HISTORY_RETENTION_S * 1e6),
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.interval_s = interval_s
        self.remember_requests_us = remember_requests_us
        self.keep_changes_us = keep_changes_us
        self.keep_movements_us = keep_movements_us
        self.expired = 0  # reservations this sweeper released at their expiry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                while not self._stop.is_set():
                    released = expire_due(self.store, self.ledger)
                    self.expired += released
                    if not released:
                        break
                now = self.ledger.clock()
                with self.store.write() as uow:
                    uow.forget_responses_before(now - self.remember_requests_us)
                    uow.prune_changes(now - self.keep_changes_us, PRUNED_PER_SWEEP)
                    uow.prune_movements(now - self.keep_movements_us, PRUNED_PER_SWEEP)
            except (Conflict, StoreUnavailable) as error:
                log.warning("sweep postponed (%s); retrying in %.1f s", error, self.interval_s)
            except Exception:
                log.exception("sweep failed; retrying in %.1f s", self.interval_s)
