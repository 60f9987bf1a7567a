"""One SKU's stock summed per membership class (server/domain/coverage.py): all that a group's
availability and the coverage of group reservations need, so a group of thousands of stores
costs a handful of sums instead of thousands of records. Storage caches these per SKU."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from server.domain.coverage import MembershipClasses
from server.domain.model import Future, StockRecord

_NONE = int(np.iinfo(np.int64).min)  # latest effective time of a class with no record set


Row = tuple[Any, ...]
"""A stock row for `StockTotals.of_rows`: (location id, on hand, reserved, safety stock,
effective time or None, futures as a tuple of Future)."""

# Rows of StockTotals.values.
ON_HAND, RESERVED, SAFETY_STOCK, FUTURES_TOTAL, ORDER_CAPACITY, FULFILL_CAPACITY, EXISTING = range(
    7
)


class StockTotals:
    """Per class k, `values[row, k]` for each row above: sums of on hand, reserved (location
    level), safety stock and futures, the capacities the coverage uses (max(0, free to order)
    and max(0, free to fulfill) per location), and how many records exist; then the latest
    effective time and the futures per expected time."""

    __slots__ = ("classes", "effective_us", "futures", "values")

    def __init__(self, classes: MembershipClasses) -> None:
        """Zeros over `classes`: the network's, or the SKU's own where some of its records are
        excluded from groups (MembershipClasses.excluding)."""
        self.classes = classes
        self.values = np.zeros((EXISTING + 1, classes.count), dtype=np.int64)
        self.effective_us = np.full(classes.count, _NONE, dtype=np.int64)
        self.futures: dict[int, dict[int | None, int]] = {}

    @classmethod
    def of(cls, records: Iterable[StockRecord], classes: MembershipClasses) -> StockTotals:
        """Totals of the records at locations that have a class (others are ignored)."""
        return cls.of_rows(
            (
                (r.location_id, r.on_hand, r.reserved, r.safety_stock, r.effective_us, r.futures)
                for r in records
            ),
            classes,
        )

    @classmethod
    def of_rows(cls, rows: Iterable[Row], classes: MembershipClasses) -> StockTotals:
        """Totals of stock rows (location id, on hand, reserved, safety stock, effective time,
        futures) as storage reads them, without building a record per row: summing a SKU
        across every member of a big group reads one row per member."""
        totals = cls(classes)
        class_of = classes.class_of
        kept = [(class_of[row[0]], row) for row in rows if row[0] in class_of]
        if not kept:
            return totals
        index = np.fromiter((k for k, _ in kept), dtype=np.intp, count=len(kept))
        on_hand, reserved, safety = np.array([row[1:4] for _, row in kept], dtype=np.int64).T
        exists = np.fromiter((row[4] is not None for _, row in kept), dtype=bool, count=len(kept))
        effective = np.fromiter((row[4] or 0 for _, row in kept), dtype=np.int64, count=len(kept))
        futures = np.zeros(len(kept), dtype=np.int64)
        for i, (k, row) in enumerate(kept):
            if row[5]:
                by_time = totals.futures.setdefault(k, {})
                for future in row[5]:
                    by_time[future.expected_us] = by_time.get(future.expected_us, 0) + (
                        future.quantity
                    )
                    futures[i] += future.quantity
        free = on_hand - reserved - safety
        columns = (
            on_hand,
            reserved,
            safety,
            futures,
            np.maximum(0, free + futures),
            np.maximum(0, free),
            exists,
        )
        for row_index, column in enumerate(columns):
            totals.values[row_index] = np.bincount(index, column, classes.count)
        np.maximum.at(totals.effective_us, index[exists], effective[exists])
        return totals

    def copy(self) -> StockTotals:
        """A copy to change (futures per time are copied when a change needs it)."""
        copied = StockTotals.__new__(StockTotals)
        copied.classes = self.classes
        copied.values = self.values.copy()
        copied.effective_us = self.effective_us.copy()
        copied.futures = self.futures
        return copied

    def replace(self, k: int, old: StockRecord, new: StockRecord) -> None:
        """Class k's totals with `old` (a location's record, empty if it had none) become
        `new`. A record's effective time never goes back (stale updates are skipped), so the
        class's latest stays a maximum."""
        column = self.values[:, k]
        column[ON_HAND] += new.on_hand - old.on_hand
        column[RESERVED] += new.reserved - old.reserved
        column[SAFETY_STOCK] += new.safety_stock - old.safety_stock
        column[ORDER_CAPACITY] += max(0, new.free_to_order) - max(0, old.free_to_order)
        column[FULFILL_CAPACITY] += max(0, new.free_to_fulfill) - max(0, old.free_to_fulfill)
        column[EXISTING] += int(new.exists) - int(old.exists)
        if new.effective_us is not None:
            self.effective_us[k] = max(int(self.effective_us[k]), new.effective_us)
        if old.futures != new.futures:
            column[FUTURES_TOTAL] += new.futures_total - old.futures_total
            by_time = dict(self.futures.get(k, {}))
            for future, sign in [*((f, -1) for f in old.futures), *((f, 1) for f in new.futures)]:
                by_time[future.expected_us] = by_time.get(future.expected_us, 0) + sign * (
                    future.quantity
                )
            self.futures = {**self.futures, k: {t: q for t, q in by_time.items() if q}}

    def capacity(self, *, fulfill: bool) -> np.ndarray:
        row: np.ndarray = self.values[FULFILL_CAPACITY if fulfill else ORDER_CAPACITY]
        return row

    def summed(self, at: np.ndarray) -> tuple[bool, int, int, int, int, int | None]:
        """(any record exists, on hand, reserved, safety stock, futures total, latest effective
        time) over the classes `at`."""
        on_hand, reserved, safety, futures, _, _, existing = self.values[:, at].sum(axis=1).tolist()
        effective = int(self.effective_us[at].max(initial=_NONE))
        return (
            bool(existing),
            on_hand,
            reserved,
            safety,
            futures,
            None if effective == _NONE else effective,
        )

    def futures_of(self, at: np.ndarray) -> list[Future]:
        """Futures of the classes `at`, summed per expected time."""
        by_time: dict[int | None, int] = {}
        for k in at.tolist():
            for expected, units in self.futures.get(k, {}).items():
                by_time[expected] = by_time.get(expected, 0) + units
        return [Future(units, expected) for expected, units in by_time.items()]
