"""One SKU's stock summed per membership class (server/domain/coverage.py): all that a group's
availability and the coverage of group reservations need, so a group of thousands of stores
costs a handful of sums instead of thousands of records. Storage caches these per SKU."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from server.domain.coverage import MembershipClasses
from server.domain.model import Future, StockRecord

_NONE = int(np.iinfo(np.int64).min)  # latest effective time of a class with no record set


class StockTotals:
    """Per class k: sums of on hand, reserved (location level), safety stock, futures, the
    capacities the coverage uses (max(0, free to order) and max(0, free to fulfill) per
    location), the latest effective time, how many records exist, and futures per time."""

    __slots__ = (
        "effective_us",
        "existing",
        "fulfill_capacity",
        "futures",
        "futures_total",
        "on_hand",
        "order_capacity",
        "reserved",
        "safety_stock",
    )

    def __init__(self, classes: int) -> None:
        def zeros() -> np.ndarray:
            return np.zeros(classes, dtype=np.int64)

        self.on_hand, self.reserved, self.safety_stock = zeros(), zeros(), zeros()
        self.futures_total, self.order_capacity, self.fulfill_capacity = zeros(), zeros(), zeros()
        self.existing = zeros()
        self.effective_us = np.full(classes, _NONE, dtype=np.int64)
        self.futures: dict[int, dict[int | None, int]] = {}

    @classmethod
    def of(cls, records: Iterable[StockRecord], classes: MembershipClasses) -> StockTotals:
        """Totals of the records at locations that have a class (others are ignored)."""
        totals = cls(classes.count)
        rows = [
            (classes.class_of[r.location_id], r)
            for r in records
            if r.location_id in classes.class_of
        ]
        if not rows:
            return totals
        index = np.array([k for k, _ in rows], dtype=np.intp)
        values = np.array(
            [
                (r.on_hand, r.reserved, r.safety_stock, r.futures_total, r.effective_us or 0)
                for _, r in rows
            ],
            dtype=np.int64,
        )
        exists = np.array([r.effective_us is not None for _, r in rows])
        on_hand, reserved, safety, futures, effective = values.T
        free = on_hand - reserved - safety
        for target, column in (
            (totals.on_hand, on_hand),
            (totals.reserved, reserved),
            (totals.safety_stock, safety),
            (totals.futures_total, futures),
            (totals.order_capacity, np.maximum(0, free + futures)),
            (totals.fulfill_capacity, np.maximum(0, free)),
            (totals.existing, exists.astype(np.int64)),
        ):
            np.add.at(target, index, column)
        np.maximum.at(totals.effective_us, index[exists], effective[exists])
        for k, record in rows:
            if record.futures:
                by_time = totals.futures.setdefault(k, {})
                for future in record.futures:
                    by_time[future.expected_us] = by_time.get(future.expected_us, 0) + (
                        future.quantity
                    )
        return totals

    def copy(self) -> StockTotals:
        """A copy to change (the futures are shared: reservations never change them)."""
        copied = StockTotals.__new__(StockTotals)
        for name in StockTotals.__slots__:
            value = getattr(self, name)
            setattr(copied, name, value if name == "futures" else value.copy())
        return copied

    def replace(self, k: int, old: StockRecord, new: StockRecord) -> None:
        """Class k's totals with `old` (a location's record) become `new`: reservations and
        shipments change reserved and on hand, never safety stock, futures or effective time."""
        self.on_hand[k] += new.on_hand - old.on_hand
        self.reserved[k] += new.reserved - old.reserved
        self.order_capacity[k] += max(0, new.free_to_order) - max(0, old.free_to_order)
        self.fulfill_capacity[k] += max(0, new.free_to_fulfill) - max(0, old.free_to_fulfill)

    def capacity(self, *, fulfill: bool) -> np.ndarray:
        return self.fulfill_capacity if fulfill else self.order_capacity

    def summed(self, at: np.ndarray) -> tuple[bool, int, int, int, int, int | None]:
        """(any record exists, on hand, reserved, safety stock, futures total, latest effective
        time) over the classes `at`."""
        effective = int(self.effective_us[at].max(initial=_NONE))
        return (
            bool(self.existing[at].sum()),
            int(self.on_hand[at].sum()),
            int(self.reserved[at].sum()),
            int(self.safety_stock[at].sum()),
            int(self.futures_total[at].sum()),
            None if effective == _NONE else effective,
        )

    def futures_of(self, at: np.ndarray) -> list[Future]:
        """Futures of the classes `at`, summed per expected time."""
        by_time: dict[int | None, int] = {}
        for k in at.tolist():
            for expected, units in self.futures.get(k, {}).items():
                by_time[expected] = by_time.get(expected, 0) + units
        return [Future(units, expected) for expected, units in by_time.items()]
