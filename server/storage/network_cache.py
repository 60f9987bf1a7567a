"""The network (locations, groups and their membership classes) cached across units of work,
per network version, and each SKU's stock totals per class, per stock token.

Every location or group change increments `network_version` in its own transaction. A unit of
work reads the version its snapshot sees and uses only entries cached under that version, so it
never sees a network its transaction could not have read; entries of other versions are dropped
when a unit of work at a different version fills the cache. A checkout at a group of a thousand
stores, or routing over it, then reads the group's stock instead of its membership and rows.

A SKU's totals, and its free stock as routing reads it, are kept under its stock token (changed
by every write of its stock rows, see migration 0004) and the network version they were read
at, so a unit of work uses them only if its snapshot sees both."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection
from typing import Generic, TypeVar

from server.domain.coverage import MembershipClasses
from server.domain.model import Location, LocationGroup
from server.domain.totals import StockTotals
from server.storage.contract import FreeStock

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
    most recently, at most `size` of them."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._entries: OrderedDict[str, tuple[tuple[int, int], Entry]] = OrderedDict()

    def get(self, sku: str, key: tuple[int, int]) -> Entry | None:
        """The SKU's entry at (stock token, network version), if cached."""
        with self._lock:
            entry = self._entries.get(sku)
            if entry is None or entry[0] != key:
                return None
            self._entries.move_to_end(sku)
            return entry[1]

    def put(self, sku: str, key: tuple[int, int], entry: Entry) -> None:
        with self._lock:
            self._entries[sku] = (key, entry)
            self._entries.move_to_end(sku)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class NetworkCache:
    SHIP_ENABLED = "ship-enabled"
    """The one key of `ship_enabled`: the ids of every ship-enabled location, in id order."""
    ALL = "all"
    """The one key of `classes`: the membership classes of every grouped location."""

    def __init__(self) -> None:
        self.locations: VersionedCache[Location] = VersionedCache()
        self.groups: VersionedCache[LocationGroup] = VersionedCache()
        self.ship_enabled: VersionedCache[tuple[str, ...]] = VersionedCache()
        self.classes: VersionedCache[MembershipClasses] = VersionedCache()
        self.totals: SkuCache[StockTotals] = SkuCache(20_000)
        # Routing's reads: a SKU's free stock holds a record per stocking location, so fewer.
        self.free_stock: SkuCache[FreeStock] = SkuCache(2_000)
