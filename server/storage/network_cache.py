"""The network (locations, groups and their membership classes) cached across units of work,
per network version, and each SKU's stock totals per class, per stock token.

Every location or group change increments `network_version` in its own transaction. A unit of
work reads the version its snapshot sees and uses only entries cached under that version, so it
never sees a network its transaction could not have read; entries of other versions are dropped
when a unit of work at a different version fills the cache. A checkout at a group of a thousand
stores, or routing over it, then reads the group's stock instead of its membership and rows.

A SKU's totals, and its free stock as routing reads it, are kept under its stock token (changed
by every write of its stock rows, see migration 0004) and the network version they were read
at, so a unit of work uses them only if its snapshot sees both; each cache keeps the SKUs used
most recently within a budget of bytes (NetworkCache.TOTALS_BUDGET, FREE_STOCK_BUDGET). Free
stock names locations by their number at that network version (`LocationNumbering`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

from server.domain.coverage import MembershipClasses
from server.domain.model import Location, LocationGroup
from server.domain.pickup_index import PickupIndex
from server.domain.port import FreeStock, LocationNumbering
from server.domain.totals import StockTotals

Entry = TypeVar("Entry")


class VersionedCache(Generic[Entry]):
    """Entries by id, valid for one version at a time; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = -1
        self._entries: dict[str, Entry] = {}

    def get(self, version: int, ids: Collection[str]) -> tuple[dict[str, Entry], list[str]]:
        """The cached entries of `ids` at `version`, and the ids that still need reading."""
        with self._lock:
            entries = self._entries if self._version == version else {}
            found = {key: entries[key] for key in ids if key in entries}
        return found, [key for key in ids if key not in found]

    def put(self, version: int, entries: dict[str, Entry]) -> None:
        with self._lock:
            if version != self._version:
                if version < self._version:
                    return  # a unit of work on an older snapshot: its rows are not the latest
                self._version = version
                self._entries = {}
            self._entries.update(entries)


class SkuCache(Generic[Entry]):
    """Per SKU, the entry computed at one key (stock token, network version), for the SKUs used
    most recently, within `budget` bytes as `size_of` estimates them: an entry's size grows
    with the network, so a count of entries bounds nothing."""

    def __init__(self, budget: int, size_of: Callable[[Entry], int]) -> None:
        self._lock = threading.Lock()
        self._budget = budget
        self._size_of = size_of
        self._bytes = 0
        self._entries: OrderedDict[str, tuple[tuple[int, int], Entry, int]] = OrderedDict()

    @property
    def nbytes(self) -> int:
        """The estimated size of the entries held."""
        return self._bytes

    def get(self, sku: str, key: tuple[int, int]) -> Entry | None:
        """The SKU's entry at (stock token, network version), if cached."""
        with self._lock:
            entry = self._entries.get(sku)
            if entry is None or entry[0] != key:
                return None
            self._entries.move_to_end(sku)
            return entry[1]

    def put(self, sku: str, key: tuple[int, int], entry: Entry) -> None:
        size = self._size_of(entry)
        with self._lock:
            replaced = self._entries.pop(sku, None)
            if replaced is not None:
                self._bytes -= replaced[2]
            self._entries[sku] = (key, entry, size)
            self._bytes += size
            while self._bytes > self._budget:  # least recently used first (maybe this one)
                self._bytes -= self._entries.popitem(last=False)[1][2]


_ENTRY_BYTES = 200
"""A rough size of an entry's Python objects besides its arrays (tuples, dict slots)."""


def free_stock_bytes(stock: FreeStock) -> int:
    return _ENTRY_BYTES + sum(array.nbytes for array in stock)


def totals_bytes(totals: StockTotals) -> int:
    futures = sum(len(by_time) for by_time in totals.futures.values())
    own_classes = len(totals.classes.class_of) if totals.classes.for_sku else 0
    return (
        _ENTRY_BYTES * (1 + futures + own_classes)
        + totals.values.nbytes
        + totals.effective_us.nbytes
    )


class NetworkCache:
    SHIP_ENABLED = "ship-enabled"
    """The one key of `ship_enabled`: the ids of every ship-enabled location, in id order."""
    ALL = "all"
    """The one key of `classes` and `numbering`: every grouped location's membership class,
    every location's number."""
    EVERY_PICKUP = ""
    """The key of `pickup` for every pickup-enabled location; a group's is its id (never
    empty)."""
    TOTALS_BUDGET = 256 * 2**20
    """Bytes of stock totals kept: a SKU's totals grow with the membership classes."""
    FREE_STOCK_BUDGET = 256 * 2**20
    """Bytes of free stock kept: a SKU's grows with the locations that stock it, ~20 bytes
    each."""

    def __init__(
        self, totals_budget: int = TOTALS_BUDGET, free_stock_budget: int = FREE_STOCK_BUDGET
    ) -> None:
        self.locations: VersionedCache[Location] = VersionedCache()
        self.groups: VersionedCache[LocationGroup] = VersionedCache()
        self.ship_enabled: VersionedCache[tuple[str, ...]] = VersionedCache()
        self.classes: VersionedCache[MembershipClasses] = VersionedCache()
        self.numbering: VersionedCache[LocationNumbering] = VersionedCache()
        self.pickup: VersionedCache[PickupIndex] = VersionedCache()
        self.totals: SkuCache[StockTotals] = SkuCache(totals_budget, totals_bytes)
        self.free_stock: SkuCache[FreeStock] = SkuCache(free_stock_budget, free_stock_bytes)
