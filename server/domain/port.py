"""The domain's port: the storage contract every backend implements, and the only way the
domain touches data.

A backend hands out units of work: `write(skus)` is one atomic read-write transaction that
serialises with every other writer touching any of `skus` (and with network changes); `read()`
is a consistent snapshot. Leaving the `with` block commits; an exception rolls back.

Both block their thread: the server runs them on worker threads. A backend whose units of work
take microseconds (an embedded file, no network round trips) can also be a `LoopStore`: the
server's event loop then runs its reads itself and its writes through `write_on_loop`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from server.domain.access import ApiKey
from server.domain.commands import EVERY_RESERVATION, Availability, ReservationFilter
from server.domain.coverage import MembershipClasses
from server.domain.history import Cause, Movement, RecordedMovement
from server.domain.model import Location, LocationGroup, Place, Reservation, StockRecord
from server.domain.pickup_index import PickupIndex
from server.domain.totals import StockTotals

Result = TypeVar("Result")


@dataclass(frozen=True, slots=True)
class RememberedResponse:
    """A mutating request's first successful response, kept for idempotent retries."""

    method: str
    fingerprint: bytes
    response: bytes


class LocationNumbering:
    """Every location of one network version, numbered: free stock names its locations by
    number, so routing maps thousands of records onto its candidates with arrays, not dicts."""

    __slots__ = ("_classes", "_columns", "_number", "location_ids")

    def __init__(self, location_ids: Iterable[str]) -> None:
        self.location_ids = tuple(location_ids)
        self._number = {location_id: n for n, location_id in enumerate(self.location_ids)}
        self._columns: dict[tuple[str, ...], npt.NDArray[np.intp]] = {}
        self._classes: dict[int, tuple[MembershipClasses, npt.NDArray[np.intp]]] = {}

    def numbers(self, location_ids: Sequence[str]) -> npt.NDArray[np.int32]:
        """The number of each of `location_ids` (-1: no such location)."""
        return np.fromiter(
            map(self._number.get, location_ids, repeat(-1)),
            dtype=np.int32,
            count=len(location_ids),
        )

    def columns(self, location_ids: Sequence[str]) -> npt.NDArray[np.intp]:
        """Per location number, its position in `location_ids` (-1: not among them); one more
        entry, -1, for the number -1 (no such location). Read-only, and kept for the last few
        lists asked about: routing asks for the same candidates order after order."""
        key = tuple(location_ids)
        columns = self._columns.get(key)
        if columns is None:
            columns = np.full(len(self.location_ids) + 1, -1, dtype=np.intp)
            numbers = self.numbers(key)
            known = numbers >= 0
            columns[numbers[known]] = np.flatnonzero(known)
            columns.setflags(write=False)
            if len(self._columns) >= _KEPT_COLUMNS:
                self._columns.clear()
            self._columns[key] = columns
        return columns

    def classes(self, classes: MembershipClasses) -> npt.NDArray[np.intp]:
        """Per location number, its class among `classes` (-1: in no group), kept for the last
        few classes asked about (the network's, and SKUs' own where records are excluded from
        groups): routing an order held at a group asks it for every record."""
        known = self._classes.get(id(classes))
        if known is None or known[0] is not classes:
            of = np.fromiter(
                map(classes.class_of.get, self.location_ids, repeat(-1)),
                dtype=np.intp,
                count=len(self.location_ids),
            )
            of.setflags(write=False)
            if len(self._classes) >= _KEPT_COLUMNS:
                self._classes.clear()
            known = self._classes[id(classes)] = (classes, of)
        return known[1]


_KEPT_COLUMNS = 8


class FreeStock(NamedTuple):
    """One SKU at the locations where some of its stock is free to fulfill (on hand less
    reserved and safety stock above 0): nothing can ship from the others. `locations` are their
    numbers in the unit of work's `location_numbering()`; arrays are unclamped, and free to
    order adds the futures."""

    locations: npt.NDArray[np.int32]
    free_to_fulfill: npt.NDArray[np.int64]
    free_to_order: npt.NDArray[np.int64]


class WouldBlock(Exception):
    """A unit of work running on the event loop needs slow work (summing a big group's stock,
    say) and stopped before doing it, having written nothing: run it again on a thread."""


class UnitOfWork(Protocol):
    # network
    def locations(self, ids: Collection[str]) -> dict[str, Location]: ...
    def known_locations(self, ids: Collection[str]) -> set[str]:
        """The ids among `ids` that name a location (cheaper than reading them)."""
        ...

    def put_locations(self, locations: Iterable[Location]) -> None: ...
    def list_locations(self, after_id: str, limit: int) -> list[Location]: ...
    def ship_enabled_locations(self) -> list[Location]: ...
    def location_numbering(self) -> LocationNumbering:
        """Every location, numbered for this unit of work's network version (the same object
        for every unit of work that sees that version, while it is cached)."""
        ...

    def pickup_index(self, group_id: str = "") -> PickupIndex:
        """The pickup-enabled locations (the members of group `group_id`, which exists, when
        given) as a spatial index: the same object for every unit of work that sees this
        network version, while it is cached."""
        ...

    def delete_locations(self, ids: Collection[str]) -> None:
        """Deletes locations that no stock record and no group holds any more."""
        ...

    def groups(self, ids: Collection[str]) -> dict[str, LocationGroup]: ...
    def delete_groups(self, ids: Collection[str]) -> None: ...
    def groups_holding(self, location_ids: Collection[str]) -> list[str]:
        """The ids of the groups with any of `location_ids` among their members."""
        ...

    def put_groups(self, groups: Iterable[LocationGroup]) -> None: ...
    def list_groups(self, after_id: str, limit: int) -> list[LocationGroup]: ...

    # stock
    def stock(
        self, skus: Collection[str], location_ids: Collection[str]
    ) -> dict[str, dict[str, StockRecord]]:
        """Per SKU of `skus`, its records at `location_ids` (one read for all: each statement
        costs a GIL hand-off under load). Every SKU has an entry, empty when it has none."""
        ...

    def free_stock(self, skus: Collection[str]) -> dict[str, FreeStock]:
        """Per SKU of `skus`, where it has stock free to fulfill, as arrays (locations by their
        `location_numbering()`): what routing reads for every candidate of a big network, at a
        cost that grows with the SKU's records."""
        ...

    def stock_above(self, sku: str, free_to_order_above: int) -> dict[str, StockRecord]:
        """The SKU's records whose free stock to order may exceed the bound (a superset)."""
        ...

    def slow_work(self) -> None:
        """Announces work too slow for the event loop: raises WouldBlock in a unit of work that
        must not do slow work (one on the loop)."""
        ...

    def stock_of(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], StockRecord]:
        """The records at exactly these (sku, location id) pairs, those that exist."""
        ...

    def put_stock(self, records: Iterable[StockRecord]) -> None: ...
    def exclusions(
        self, skus: Collection[str], group_id: str = ""
    ) -> dict[str, dict[str, frozenset[str]]]:
        """Per SKU with any, the groups each of its records is excluded from (OCI's
        groupEligibilityExclusion; only those excluded from `group_id`, when given)."""
        ...

    def put_exclusions(self, exclusions: Mapping[tuple[str, str], Collection[str]]) -> None:
        """Replaces the groups each (sku, location id) record is excluded from."""
        ...

    def delete_stock(self, keys: Collection[tuple[str, str]]) -> None:
        """Deletes the (sku, location id) records."""
        ...

    def membership_classes(self) -> MembershipClasses:
        """Every grouped location's class (the set of groups holding it)."""
        ...

    def stock_totals(self, skus: Collection[str]) -> dict[str, StockTotals]:
        """Per SKU of `skus`, its stock summed per class of `membership_classes()`."""
        ...

    def cached_stock_totals(self, skus: Collection[str]) -> dict[str, StockTotals]:
        """The totals among `skus`' that are cached for this snapshot (nothing is summed)."""
        ...

    def put_stock_totals(self, totals: Mapping[str, StockTotals]) -> None:
        """The SKUs' totals once this unit of work's writes of their stock are in: kept for
        the next units of work, which then need not sum them again."""
        ...

    def known_skus(self, skus: Collection[str]) -> set[str]:
        """The SKUs among `skus` that have a stock record at some location."""
        ...

    def group_reserved(self, skus: Collection[str]) -> dict[str, dict[str, int]]:
        """Per SKU of `skus`, its open group-reservation units per group (groups holding none
        are absent; every SKU has an entry)."""
        ...

    def put_group_reserved(self, sku: str, units: dict[str, int]) -> None: ...
    def skus_reserved_at_groups(self, group_ids: Collection[str]) -> list[str]: ...
    def skus_at(self, location_ids: Collection[str]) -> list[str]:
        """The SKUs with a stock record at any of `location_ids`."""
        ...

    # reservations
    def reservation(self, reservation_id: str) -> Reservation | None: ...
    def put_reservation(self, reservation: Reservation) -> None: ...
    def list_reservations(
        self, after_id: str, limit: int, wanted: ReservationFilter = EVERY_RESERVATION
    ) -> list[Reservation]: ...
    def open_reservations_at(self, places: Collection[Place], sku: str = "") -> dict[Place, int]:
        """Per place (of `sku`, when given), how many active reservations hold open units
        there; places with none are absent."""
        ...

    def due_reservations(self, now_us: int, limit: int) -> list[str]:
        """Ids of active reservations whose expiry time is at or before `now_us`."""
        ...

    # idempotency
    def remembered(self, request_id: str) -> RememberedResponse | None: ...
    def remember(self, request_id: str, response: RememberedResponse, now_us: int) -> None: ...
    def forget_responses_before(self, cutoff_us: int) -> int: ...

    # the change log (server/domain/changes.py, server/storage/change_log.py)
    def append_changes(self, records: Iterable[Availability], commit_us: int) -> None:
        """Appends records to the change log, in this unit of work's transaction."""
        ...

    def change_log_bounds(self) -> tuple[int, int]:
        """(the newest entry pruned, the newest entry readable)."""
        ...

    def changes_after(
        self,
        seq: int,
        newest: int,
        limit: int,
        skus: Collection[str] = (),
        locations: Collection[str] = (),
        groups: Collection[str] = (),
    ) -> tuple[list[tuple[int, int, Availability]], int]:
        """Up to `limit` (seq, commit time, record) entries after `seq` and up to `newest` that
        match, and the seq a next read continues after."""
        ...

    def prune_changes(self, cutoff_us: int, limit: int) -> int: ...
    def sequence_changes(self, limit: int, *, wait: bool = False) -> int:
        """Numbers committed entries that have none yet (PostgreSQL); returns how many."""
        ...

    @property
    def sequenced_at_insert(self) -> bool: ...

    # stock movements (server/domain/history.py, server/storage/movements.py)
    def append_movements(self, movements: Sequence[Movement], at_us: int, cause: Cause) -> None:
        """Appends movements to the history, in this unit of work's transaction."""
        ...

    def movements_after(
        self,
        seq: int,
        limit: int,
        *,
        sku: str = "",
        place: Place | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
    ) -> list[RecordedMovement]:
        """Up to `limit` movements after `seq`, in sequence order, that match."""
        ...

    def prune_movements(self, cutoff_us: int, limit: int) -> int: ...

    # API keys
    def api_keys(self) -> list[ApiKey]:
        """Every key ever made, revoked ones included."""
        ...

    def put_api_key(self, key: ApiKey) -> None:
        """Adds a key, or records its revocation (nothing else of a key changes)."""
        ...

    def note_api_key_use(self, last_used_us: Mapping[str, int]) -> None:
        """Moves each key's last-used time forward to the one given."""
        ...


class Store(Protocol):
    def write(
        self, skus: Collection[str] = (), *, network: bool = False, slow_reads: bool = True
    ) -> AbstractContextManager[UnitOfWork]:
        """A read-write transaction that excludes concurrent writers of the same `skus`;
        `network=True` (location and group changes) excludes every other writer.
        `slow_reads=False`: raise WouldBlock rather than sum a big group's stock while other
        writers wait (the caller reads it first, outside, and tries again)."""
        ...

    def read(self) -> AbstractContextManager[UnitOfWork]: ...
    def stats(self) -> dict[str, float]:
        """The backend's counters (named `..._total`) and gauges, for the server's metrics."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LoopStore(Store, Protocol):
    def read_on_loop(self) -> AbstractContextManager[UnitOfWork]:
        """`read()` for the running event loop: raises WouldBlock rather than do slow work."""
        ...

    async def write_on_loop(self, work: Callable[[UnitOfWork], Result]) -> Result:
        """Runs `work` (which must not block) in a write transaction on the running event loop,
        excluding every other writer, and returns its result once that transaction commits.
        Its unit of work raises WouldBlock rather than do slow work."""
        ...
