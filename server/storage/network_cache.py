"""The network (locations and groups) cached across units of work, per network version.

Every location or group change increments `network_version` in its own transaction. A unit of
work reads the version its snapshot sees and uses only entries cached under that version, so it
never sees a network its transaction could not have read; entries of other versions are dropped
when a unit of work at a different version fills the cache. A checkout at a group of a thousand
stores, or routing over it, then reads the group's stock instead of its membership and rows."""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Generic, TypeVar

from server.domain.model import Location, LocationGroup

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


class NetworkCache:
    SHIP_ENABLED = "ship-enabled"
    """The one key of `ship_enabled`: the ids of every ship-enabled location, in id order."""

    def __init__(self) -> None:
        self.locations: VersionedCache[Location] = VersionedCache()
        self.groups: VersionedCache[LocationGroup] = VersionedCache()
        self.ship_enabled: VersionedCache[tuple[str, ...]] = VersionedCache()
