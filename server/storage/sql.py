"""The storage contract in plain SQL, shared by the SQLite and PostgreSQL backends.

Queries use `?` placeholders; a backend whose driver wants `%s` passes `paramstyle="format"`.
Both engines speak the same `INSERT ... ON CONFLICT ... DO UPDATE`, so only connections,
locking and error handling differ between backends."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from server.domain.access import ApiKey, Role
from server.domain.commands import EVERY_RESERVATION, ReservationFilter
from server.domain.coverage import MembershipClasses
from server.domain.imports import ImportCounts, StockImport
from server.domain.model import (
    Future,
    Location,
    LocationGroup,
    LocationType,
    Place,
    PlaceKind,
    Reservation,
    ReservationLine,
    ReservationState,
    StockRecord,
)
from server.domain.pickup_index import PickupIndex
from server.domain.port import (
    FreeStock,
    LocationNumbering,
    RememberedResponse,
    WouldBlock,
)
from server.domain.totals import StockTotals
from server.storage.network_cache import Entry, NetworkCache, VersionedCache

Row = tuple[Any, ...]
Item = TypeVar("Item")
_IN_LIST_PAGE = 500


def iter_pages(items: list[Item], size: int) -> Iterator[list[Item]]:
    """Split a long list of ids (or keys) for IN (...) or OR clauses."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


_LOCATION_COLUMNS = (
    "id, display_name, type, latitude, longitude, postal_code, country_code, ship_enabled,"
    " shipment_cost, priority, pickup_enabled"
)
_STOCK_COLUMNS = "sku, location_id, on_hand, safety_stock, futures, reserved, effective_us"
_LINE_COLUMNS = (
    "reservation_id, sku, place_kind, place_id, quantity, fulfilled, released, transferred_out"
)
# Stock without futures (the usual row) skips the JSON parser: routing over 1,000 candidates
# decodes ~1,000 stock rows per order.
_NO_FUTURES_JSON = json.dumps([])
_FREE_TO_FULFILL = "on_hand - reserved - safety_stock"
_NO_FREE_STOCK = FreeStock(
    np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
)


class SqlUnitOfWork:
    """One transaction on an open DB-API connection (the backend begins and ends it)."""

    def __init__(
        self,
        execute: Callable[[str, Sequence[Any]], Any],
        paramstyle: str,
        *,
        lock_reservations: bool = False,
        network_cache: NetworkCache | None = None,
        json_rows: bool = False,
        sync: Callable[[], None] = lambda: None,
        slow_reads: bool = True,
    ) -> None:
        """`lock_reservations`: read reservations FOR UPDATE, so that two writers changing
        different SKUs of one reservation cannot overwrite each other's lines.
        `network_cache`: locations and groups shared with the store's other units of work.
        `json_rows`: read stock as one JSON row (SQLite): Python's sqlite3 lets go of the GIL
        for every row it steps, and under load each row then costs two thread switches.
        `slow_reads`: False makes whatever would sum a big group's stock raise WouldBlock instead
        (port.WouldBlock), for units of work on the event loop or holding write locks."""
        self._slow_reads = slow_reads
        self._json_rows = json_rows
        self._sync = sync  # waits for statements a pipelined connection has not answered yet
        self._cache = network_cache
        self._network_version: int | None = None
        self._numbering: LocationNumbering | None = None
        self._execute_raw = execute
        self._format = paramstyle == "format"
        self._lock_suffix = " FOR UPDATE" if lock_reservations else ""
        # Reservations this unit of work found stored (or stored itself): only those may be
        # overwritten; any other put is a creation and must not merge into a reservation of
        # the same id that a concurrent writer (of other SKUs, so not excluded) just created.
        self._stored: set[str] = set()

    # --- plumbing ------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._format else sql

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._execute_raw(self._sql(sql), params).fetchall())

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._execute_raw(self._sql(sql), params)

    def _rows_in(self, sql: str, prefix: Sequence[Any], ids: Collection[str]) -> list[Row]:
        """Runs `sql` (with one `{ids}` marker for an IN list) over `ids` in pages."""
        rows: list[Row] = []
        for page in iter_pages(sorted(ids), _IN_LIST_PAGE):
            marks = ", ".join("?" * len(page))
            rows.extend(self._rows(sql.format(ids=marks), [*prefix, *page]))
        return rows

    # --- network -------------------------------------------------------------------------

    def _version(self) -> int:
        """The network version this unit of work's snapshot sees (read once)."""
        if self._network_version is None:
            self._network_version = int(self._rows("SELECT version FROM network_version")[0][0])
        return self._network_version

    def _cached(
        self,
        cache: VersionedCache[Entry] | None,
        ids: Collection[str],
        read: Callable[[Collection[str]], dict[str, Entry]],
    ) -> dict[str, Entry]:
        if not ids:
            return {}
        if cache is None:
            return read(ids)
        version = self._version()
        found, missing = cache.get(version, ids)
        if missing:
            fresh = read(missing)
            cache.put(version, fresh)
            found.update(fresh)
        return found

    def _network_changed(self) -> None:
        """After its own network write a unit of work sees an uncommitted version, which must
        never reach the shared cache (the transaction may still roll back)."""
        self._execute_raw(self._sql("UPDATE network_version SET version = version + 1"), ())
        self._cache = None
        self._numbering = None

    def locations(self, ids: Collection[str]) -> dict[str, Location]:
        cache = self._cache.locations if self._cache else None
        return self._cached(cache, ids, self._read_locations)

    def _read_locations(self, ids: Collection[str]) -> dict[str, Location]:
        rows = self._rows_in(
            f"SELECT {_LOCATION_COLUMNS} FROM locations WHERE id IN ({{ids}})", (), ids
        )
        return {row[0]: _location(row) for row in rows}

    def known_locations(self, ids: Collection[str]) -> set[str]:
        if not ids:
            return set()
        if self._cache is not None:
            return set(self.locations(ids))
        return {
            row[0] for row in self._rows_in("SELECT id FROM locations WHERE id IN ({ids})", (), ids)
        }

    def put_locations(self, locations: Iterable[Location]) -> None:
        self._network_changed()
        for location in locations:
            self._run(
                f"INSERT INTO locations ({_LOCATION_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name,"
                " type = excluded.type, latitude = excluded.latitude,"
                " longitude = excluded.longitude, postal_code = excluded.postal_code,"
                " country_code = excluded.country_code, ship_enabled = excluded.ship_enabled,"
                " shipment_cost = excluded.shipment_cost, priority = excluded.priority,"
                " pickup_enabled = excluded.pickup_enabled",
                (
                    location.id,
                    location.display_name,
                    int(location.type),
                    location.latitude,
                    location.longitude,
                    location.postal_code,
                    location.country_code,
                    int(location.ship_enabled),
                    location.shipment_cost,
                    location.priority,
                    int(location.pickup_enabled),
                ),
            )

    def delete_locations(self, ids: Collection[str]) -> None:
        """Deletes locations that no stock record and no group holds any more."""
        self._network_changed()
        self._rows_in("DELETE FROM locations WHERE id IN ({ids}) RETURNING id", (), ids)

    def list_locations(self, after_id: str, limit: int) -> list[Location]:
        rows = self._rows(
            f"SELECT {_LOCATION_COLUMNS} FROM locations WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [_location(row) for row in rows]

    def ship_enabled_locations(self) -> list[Location]:
        """Cached like the rest of the network: routing to "every ship-enabled location" would
        otherwise read all of them, row by row, on every order."""
        if self._cache is None:
            rows = self._rows(
                f"SELECT {_LOCATION_COLUMNS} FROM locations WHERE ship_enabled = 1 ORDER BY id"
            )
            return [_location(row) for row in rows]
        key = NetworkCache.SHIP_ENABLED
        ids = self._cached(self._cache.ship_enabled, [key], self._read_ship_enabled_ids)[key]
        found = self.locations(ids)
        return [found[location_id] for location_id in ids]

    def _read_ship_enabled_ids(self, keys: Collection[str]) -> dict[str, tuple[str, ...]]:
        rows = self._rows("SELECT id FROM locations WHERE ship_enabled = 1 ORDER BY id")
        return {key: tuple(row[0] for row in rows) for key in keys}

    def pickup_index(self, group_id: str = "") -> PickupIndex:
        """Built once per network version and kept (per group asked about): a shopper's
        lookup then costs a tree query, not a read of every pickup location."""
        cache = self._cache.pickup if self._cache else None
        return self._cached(cache, [group_id], self._read_pickup_index)[group_id]

    def _read_pickup_index(self, keys: Collection[str]) -> dict[str, PickupIndex]:
        found = {}
        for group_id in keys:
            self._may_block()
            sql = f"SELECT {_LOCATION_COLUMNS} FROM locations WHERE pickup_enabled = 1"
            if group_id == NetworkCache.EVERY_PICKUP:
                rows = self._rows(sql)
            else:
                rows = self._rows(
                    sql + " AND id IN (SELECT location_id FROM group_members WHERE group_id = ?)",
                    (group_id,),
                )
            found[group_id] = PickupIndex(map(_location, rows))
        return found

    def location_numbering(self) -> LocationNumbering:
        if self._numbering is None:
            cache = self._cache.numbering if self._cache else None
            key = NetworkCache.ALL
            self._numbering = self._cached(cache, [key], self._read_numbering)[key]
        return self._numbering

    def _read_numbering(self, keys: Collection[str]) -> dict[str, LocationNumbering]:
        # In id order: every read at one network version numbers alike, so free stock cached
        # by one unit of work means the same locations to another.
        rows = self._rows("SELECT id FROM locations ORDER BY id")
        return dict.fromkeys(keys, LocationNumbering(row[0] for row in rows))

    def groups(self, ids: Collection[str]) -> dict[str, LocationGroup]:
        cache = self._cache.groups if self._cache else None
        return self._cached(cache, ids, self._read_groups)

    def _read_groups(self, ids: Collection[str]) -> dict[str, LocationGroup]:
        names = self._rows_in(
            "SELECT id, display_name, enabled FROM location_groups WHERE id IN ({ids})", (), ids
        )
        members = self._rows_in(
            "SELECT group_id, location_id FROM group_members WHERE group_id IN ({ids})"
            " ORDER BY group_id, location_id",
            (),
            ids,
        )
        return _assemble_groups(names, members)

    def put_groups(self, groups: Iterable[LocationGroup]) -> None:
        self._network_changed()
        for group in groups:
            self._run(
                "INSERT INTO location_groups (id, display_name, enabled) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name,"
                " enabled = excluded.enabled",
                (group.id, group.display_name, int(group.enabled)),
            )
            self._run("DELETE FROM group_members WHERE group_id = ?", (group.id,))
            for location_id in group.location_ids:
                self._run(
                    "INSERT INTO group_members (group_id, location_id) VALUES (?, ?)",
                    (group.id, location_id),
                )

    def delete_groups(self, ids: Collection[str]) -> None:
        self._network_changed()
        self._rows_in(
            "DELETE FROM group_members WHERE group_id IN ({ids}) RETURNING group_id", (), ids
        )
        self._rows_in(
            "DELETE FROM stock_exclusions WHERE group_id IN ({ids}) RETURNING group_id", (), ids
        )
        self._rows_in("DELETE FROM location_groups WHERE id IN ({ids}) RETURNING id", (), ids)

    def groups_holding(self, location_ids: Collection[str]) -> list[str]:
        """The ids of the groups with any of `location_ids` among their members."""
        rows = self._rows_in(
            "SELECT DISTINCT group_id FROM group_members WHERE location_id IN ({ids})",
            (),
            location_ids,
        )
        return sorted(row[0] for row in rows)

    def list_groups(self, after_id: str, limit: int) -> list[LocationGroup]:
        names = self._rows(
            "SELECT id, display_name, enabled FROM location_groups WHERE id > ?"
            " ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        if not names:
            return []
        members = self._rows(
            "SELECT group_id, location_id FROM group_members WHERE group_id > ? AND group_id <= ?"
            " ORDER BY group_id, location_id",
            (after_id, names[-1][0]),
        )
        return list(_assemble_groups(names, members).values())

    # --- stock ---------------------------------------------------------------------------

    def stock(
        self, skus: Collection[str], location_ids: Collection[str]
    ) -> dict[str, dict[str, StockRecord]]:
        found: dict[str, dict[str, StockRecord]] = {sku: {} for sku in skus}
        if not skus or not location_ids:
            return found
        wanted = set(location_ids)
        # Many locations (routing over a large network): one scan of the SKUs is cheaper than
        # many IN pages, since stock is sparse.
        location_pages: list[list[str]] = (
            [[]] if len(wanted) > _IN_LIST_PAGE else list(iter_pages(sorted(wanted), _IN_LIST_PAGE))
        )
        for sku_page in iter_pages(sorted(found), _IN_LIST_PAGE):
            for location_page in location_pages:
                where = f"sku IN ({', '.join('?' * len(sku_page))})"
                if location_page:
                    where += f" AND location_id IN ({', '.join('?' * len(location_page))})"
                for row in self._stock_rows(where, [*sku_page, *location_page]):
                    if row[1] in wanted:
                        found[row[0]][row[1]] = _stock(row)
        return found

    def stock_above(self, sku: str, free_to_order_above: int) -> dict[str, StockRecord]:
        """The SKU's records whose free stock to order may exceed the bound: those whose free
        stock to fulfill does, and any with futures (rare; their sum is in JSON)."""
        where = f"sku = ? AND ({_FREE_TO_FULFILL} > ? OR futures != ?)"
        rows = self._stock_rows(where, [sku, free_to_order_above, _NO_FUTURES_JSON])
        return {row[1]: _stock(row) for row in rows}

    def slow_work(self) -> None:
        self._may_block()

    def stock_of(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], StockRecord]:
        found = {}
        for page in iter_pages(sorted(keys), _IN_LIST_PAGE):
            # ORed key lookups: both engines search the primary key for each (SQLite scans the
            # whole table for a row-value IN over VALUES).
            where = " OR ".join(["(sku = ? AND location_id = ?)"] * len(page))
            for row in self._stock_rows(where, [value for key in page for value in key]):
                found[(row[0], row[1])] = _stock(row)
        return found

    def _stock_rows(
        self, where: str, params: Sequence[Any], columns: str = _STOCK_COLUMNS
    ) -> list[Row]:
        if not self._json_rows:
            return self._rows(f"SELECT {columns} FROM stock WHERE {where}", params)
        ((text,),) = self._rows(
            f"SELECT json_group_array(json_array({columns})) FROM stock WHERE {where}", params
        )
        rows: list[Row] = json.loads(text)
        return rows

    def free_stock(self, skus: Collection[str]) -> dict[str, FreeStock]:
        tokens = self._stock_tokens(skus)
        cache = self._cache.free_stock if self._cache else None
        version = self._version() if cache else 0
        found = {}
        for sku in skus:
            token = tokens.get(sku)
            if token is None:  # never stocked anywhere
                found[sku] = _NO_FREE_STOCK
                continue
            key = (token, version)
            cached = cache.get(sku, key) if cache else None
            if cached is None:
                cached = self._read_free_stock(sku)
                if cache:
                    cache.put(sku, key, cached)
            found[sku] = cached
        return found

    def _read_free_stock(self, sku: str) -> FreeStock:
        """One SKU per statement, like its totals: only its three columns, only where free."""
        rows = self._stock_rows(
            f"sku = ? AND {_FREE_TO_FULFILL} > 0",
            (sku,),
            f"location_id, {_FREE_TO_FULFILL}, futures",
        )
        if not rows:
            return _NO_FREE_STOCK
        location_ids, free, futures = zip(*rows, strict=True)
        free_to_fulfill = np.array(free, dtype=np.int64)
        free_to_order = free_to_fulfill.copy()
        with_futures = np.flatnonzero(np.array(futures, dtype=object) != _NO_FUTURES_JSON)
        for i in with_futures:  # restocks are rare: the other rows skip the JSON parser
            free_to_order[i] += sum(future.quantity for future in _futures(futures[i]))
        locations = self.location_numbering().numbers(location_ids)
        return FreeStock(locations, free_to_fulfill, free_to_order)

    def _stock_tokens(self, skus: Collection[str]) -> dict[str, int]:
        """Each SKU's stock token (absent: never stocked), which every write of its rows changes
        (migration 0004): what the caches of its totals and free stock are kept under."""
        rows = self._rows_in(
            "SELECT sku, version FROM stock_version WHERE sku IN ({ids})", (), skus
        )
        return {sku: int(token) for sku, token in rows}

    def put_stock(self, records: Iterable[StockRecord]) -> None:
        for record in records:
            self._run(
                f"INSERT INTO stock ({_STOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (sku, location_id) DO UPDATE SET on_hand = excluded.on_hand,"
                " safety_stock = excluded.safety_stock, futures = excluded.futures,"
                " reserved = excluded.reserved, effective_us = excluded.effective_us",
                (
                    record.sku,
                    record.location_id,
                    record.on_hand,
                    record.safety_stock,
                    json.dumps([[f.quantity, f.expected_us] for f in record.futures])
                    if record.futures
                    else _NO_FUTURES_JSON,
                    record.reserved,
                    record.effective_us,
                ),
            )

    def delete_stock(self, keys: Collection[tuple[str, str]]) -> None:
        """Deletes the (sku, location id) records (the SKU's token moves on: migration 0009)."""
        for sku, location_id in sorted(keys):
            self._run("DELETE FROM stock WHERE sku = ? AND location_id = ?", (sku, location_id))
            self._run(
                "DELETE FROM stock_exclusions WHERE sku = ? AND location_id = ?",
                (sku, location_id),
            )

    def exclusions(
        self, skus: Collection[str], group_id: str = ""
    ) -> dict[str, dict[str, frozenset[str]]]:
        """Per SKU of `skus` with any, the groups each of its records is excluded from (only
        those excluded from `group_id`, when given)."""
        rows = self._rows_in(
            "SELECT sku, location_id, group_id FROM stock_exclusions WHERE"
            + (" group_id = ? AND" if group_id else "")
            + " sku IN ({ids})",
            (group_id,) if group_id else (),
            skus,
        )
        found: dict[str, dict[str, set[str]]] = {}
        for sku, location_id, excluded_from in rows:
            found.setdefault(sku, {}).setdefault(location_id, set()).add(excluded_from)
        return {
            sku: {location: frozenset(groups) for location, groups in at.items()}
            for sku, at in found.items()
        }

    def put_exclusions(self, exclusions: Mapping[tuple[str, str], Collection[str]]) -> None:
        """Replaces the groups each (sku, location id) record is excluded from."""
        for (sku, location_id), groups in sorted(exclusions.items()):
            self._run(
                "DELETE FROM stock_exclusions WHERE sku = ? AND location_id = ?",
                (sku, location_id),
            )
            for group_id in sorted(groups):
                self._run(
                    "INSERT INTO stock_exclusions (sku, location_id, group_id) VALUES (?, ?, ?)",
                    (sku, location_id, group_id),
                )

    def membership_classes(self) -> MembershipClasses:
        cache = self._cache.classes if self._cache else None
        key = NetworkCache.ALL
        return self._cached(cache, [key], self._read_classes)[key]

    def _read_classes(self, keys: Collection[str]) -> dict[str, MembershipClasses]:
        self._may_block()
        members: dict[str, list[str]] = {}
        for group_id, location_id in self._rows("SELECT group_id, location_id FROM group_members"):
            members.setdefault(group_id, []).append(location_id)
        disabled = self._rows("SELECT id FROM location_groups WHERE enabled = 0")
        classes = MembershipClasses.of(members, disabled=frozenset(row[0] for row in disabled))
        return dict.fromkeys(keys, classes)

    def stock_totals(self, skus: Collection[str]) -> dict[str, StockTotals]:
        classes = self.membership_classes()
        tokens = self._stock_tokens(skus)
        cache = self._cache.totals if self._cache else None
        version = self._version() if cache else 0
        found, missing = {}, []
        for sku in skus:
            token = tokens.get(sku)
            if token is None:  # never stocked anywhere
                found[sku] = StockTotals(classes)
                continue
            cached = cache.get(sku, (token, version)) if cache else None
            if cached is None:
                missing.append(sku)
            else:
                found[sku] = cached
        excluded = self.exclusions(missing) if missing else {}
        for sku in missing:
            self._may_block()
            # One SKU per statement: a big group's rows decode in bounded pieces, so no single
            # call holds the GIL (and the event loop's thread) for long.
            found[sku] = StockTotals.of_rows(
                (
                    (row[1], row[2], row[5], row[3], row[6], _futures(row[4]))
                    for row in self._stock_rows("sku = ?", (sku,))
                ),
                classes.excluding(excluded[sku]) if sku in excluded else classes,
            )
            if cache:
                cache.put(sku, (tokens[sku], version), found[sku])
        return found

    def cached_stock_totals(self, skus: Collection[str]) -> dict[str, StockTotals]:
        cache = self._cache.totals if self._cache else None
        if cache is None or not skus:
            return {}
        version = self._version()
        found = {}
        for sku, token in self._stock_tokens(skus).items():
            totals = cache.get(sku, (token, version))
            if totals is not None:
                found[sku] = totals
        return found

    def put_stock_totals(self, totals: Mapping[str, StockTotals]) -> None:
        # Under the tokens this transaction's writes drew: should it roll back, no snapshot
        # ever sees them, and the entries are never used.
        cache = self._cache.totals if self._cache else None
        if cache is None or not totals:
            return
        version = self._version()
        for sku, token in self._stock_tokens(totals).items():
            cache.put(sku, (token, version), totals[sku])

    def _may_block(self) -> None:
        if not self._slow_reads:
            raise WouldBlock

    def known_skus(self, skus: Collection[str]) -> set[str]:
        if not skus:
            return set()
        # A SKU has a token once it has a record (migration 0004), and records are never
        # deleted: one row per SKU, where DISTINCT over stock visits every record of it.
        return set(self._stock_tokens(skus))

    def group_reserved(self, skus: Collection[str]) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {sku: {} for sku in skus}
        rows = self._rows_in(
            "SELECT sku, group_id, reserved FROM group_reserved WHERE sku IN ({ids})", (), found
        )
        for sku, group_id, reserved in rows:
            found[sku][group_id] = int(reserved)
        return found

    def put_group_reserved(self, sku: str, units: dict[str, int]) -> None:
        for group_id, reserved in units.items():
            if reserved:
                self._run(
                    "INSERT INTO group_reserved (sku, group_id, reserved) VALUES (?, ?, ?)"
                    " ON CONFLICT (sku, group_id) DO UPDATE SET reserved = excluded.reserved",
                    (sku, group_id, reserved),
                )
            else:
                self._run(
                    "DELETE FROM group_reserved WHERE sku = ? AND group_id = ?", (sku, group_id)
                )

    def skus_reserved_at_groups(self, group_ids: Collection[str]) -> list[str]:
        if not group_ids:
            return []
        rows = self._rows_in(
            "SELECT DISTINCT sku FROM group_reserved WHERE group_id IN ({ids})", (), group_ids
        )
        return sorted({row[0] for row in rows})

    def skus_at(self, location_ids: Collection[str]) -> list[str]:
        rows = self._rows_in(
            "SELECT DISTINCT sku FROM stock WHERE location_id IN ({ids})", (), location_ids
        )
        return sorted({row[0] for row in rows})

    # --- reservations --------------------------------------------------------------------

    def reservation(self, reservation_id: str) -> Reservation | None:
        rows = self._rows(
            "SELECT id, external_ref, state, create_us, update_us, expire_us FROM reservations"
            " WHERE id = ?" + self._lock_suffix,
            (reservation_id,),
        )
        if not rows:
            return None
        self._stored.add(reservation_id)
        return self._with_lines(rows)[0]

    def _with_lines(self, rows: list[Row]) -> list[Reservation]:
        reservations = {
            row[0]: Reservation(
                id=row[0],
                external_ref=row[1],
                create_us=row[3],
                update_us=row[4],
                expire_us=row[5],
                expired=row[2] == ReservationState.EXPIRED,
            )
            for row in rows
        }
        lines = self._rows_in(
            f"SELECT {_LINE_COLUMNS} FROM reservation_lines WHERE reservation_id IN ({{ids}})",
            (),
            reservations,
        )
        for rid, sku, kind, place_id, quantity, fulfilled, released, moved in lines:
            place = Place(PlaceKind(kind), place_id)
            reservations[rid].lines[(sku, place)] = ReservationLine(
                sku, place, quantity, fulfilled, released, moved
            )
        return list(reservations.values())

    def put_reservation(self, reservation: Reservation) -> None:
        # A plain INSERT for a new reservation: if another transaction created the id in the
        # meantime, it fails with a unique violation (a retryable conflict), and the retry
        # sees the reservation and refuses to create it again.
        upsert = (
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
            " update_us = excluded.update_us, expire_us = excluded.expire_us"
            if reservation.id in self._stored
            else ""
        )
        self._stored.add(reservation.id)
        self._run(
            "INSERT INTO reservations (id, external_ref, state, create_us, update_us, expire_us)"
            " VALUES (?, ?, ?, ?, ?, ?)" + upsert,
            (
                reservation.id,
                reservation.external_ref,
                int(reservation.state),
                reservation.create_us,
                reservation.update_us,
                reservation.expire_us,
            ),
        )
        for line in reservation.lines.values():
            self._run(
                f"INSERT INTO reservation_lines ({_LINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (reservation_id, sku, place_kind, place_id) DO UPDATE SET"
                " quantity = excluded.quantity, fulfilled = excluded.fulfilled,"
                " released = excluded.released, transferred_out = excluded.transferred_out",
                (
                    reservation.id,
                    line.sku,
                    int(line.place.kind),
                    line.place.id,
                    line.quantity,
                    line.fulfilled,
                    line.released,
                    line.transferred_out,
                ),
            )

    def list_reservations(
        self, after_id: str, limit: int, wanted: ReservationFilter = EVERY_RESERVATION
    ) -> list[Reservation]:
        where = ["id > ?"]
        params: list[object] = [after_id]
        if wanted.state is not None:
            where.append("state = ?")
            params.append(int(wanted.state))
        if wanted.external_ref:
            where.append("external_ref = ?")
            params.append(wanted.external_ref)
        lines = []
        if wanted.sku:
            lines.append("sku = ?")
            params.append(wanted.sku)
        if wanted.place is not None:
            lines.append("place_kind = ? AND place_id = ?")
            params += [int(wanted.place.kind), wanted.place.id]
        if lines:
            where.append(
                "id IN (SELECT reservation_id FROM reservation_lines WHERE "
                + " AND ".join(lines)
                + ")"
            )
        rows = self._rows(
            "SELECT id, external_ref, state, create_us, update_us, expire_us FROM reservations"
            f" WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            [*params, limit],
        )
        return self._with_lines(rows) if rows else []

    def open_reservations_at(self, places: Collection[Place], sku: str = "") -> dict[Place, int]:
        """Per place among `places` (of `sku`, when given), how many active reservations hold
        open units there; places with none are absent."""
        found: dict[Place, int] = {}
        for kind in PlaceKind:
            ids = {place.id for place in places if place.kind is kind}
            if not ids:
                continue
            rows = self._rows_in(
                "SELECT place_id, count(DISTINCT reservation_id) FROM reservation_lines"
                " WHERE place_kind = ?" + (" AND sku = ?" if sku else "") + " AND place_id IN"
                " ({ids}) AND quantity > fulfilled + released + transferred_out"
                " AND reservation_id IN (SELECT id FROM reservations WHERE state = 1)"
                " GROUP BY place_id",
                (int(kind), sku) if sku else (int(kind),),
                ids,
            )
            found.update({Place(kind, row[0]): int(row[1]) for row in rows})
        return found

    def due_reservations(self, now_us: int, limit: int) -> list[str]:
        rows = self._rows(
            "SELECT id FROM reservations WHERE state = 1 AND expire_us <= ?"
            " ORDER BY expire_us LIMIT ?",
            (now_us, limit),
        )
        return [row[0] for row in rows]

    # --- idempotency ---------------------------------------------------------------------

    def remembered(self, request_id: str) -> RememberedResponse | None:
        rows = self._rows(
            "SELECT method, fingerprint, response FROM remembered_responses WHERE request_id = ?",
            (request_id,),
        )
        if not rows:
            return None
        method, fingerprint, response = rows[0]
        return RememberedResponse(method, bytes(fingerprint), bytes(response))

    def remember(self, request_id: str, response: RememberedResponse, now_us: int) -> None:
        self._run(
            "INSERT INTO remembered_responses"
            " (request_id, method, fingerprint, response, create_us) VALUES (?, ?, ?, ?, ?)",
            (request_id, response.method, response.fingerprint, response.response, now_us),
        )

    def forget_responses_before(self, cutoff_us: int) -> int:
        cursor = self._run("DELETE FROM remembered_responses WHERE create_us < ?", (cutoff_us,))
        self._sync()  # a pipelined DELETE has no row count until its answer arrives
        return int(cursor.rowcount)

    # --- API keys ------------------------------------------------------------------------

    def api_keys(self) -> list[ApiKey]:
        rows = self._rows(
            "SELECT id, role, tenant, description, created_us, expires_us, revoked_us,"
            " last_used_us, hash FROM api_keys ORDER BY id"
        )
        return [ApiKey(row[0], Role(row[1]), *row[2:]) for row in rows]

    def put_api_key(self, key: ApiKey) -> None:
        self._run(
            "INSERT INTO api_keys (id, role, tenant, description, hash, created_us, expires_us,"
            " revoked_us, last_used_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET revoked_us = excluded.revoked_us",
            (
                key.id,
                key.role.value,
                key.tenant,
                key.description,
                key.hash,
                key.created_us,
                key.expires_us,
                key.revoked_us,
                key.last_used_us,
            ),
        )

    def note_api_key_use(self, last_used_us: Mapping[str, int]) -> None:
        for key_id, used_us in sorted(last_used_us.items()):
            self._run(
                "UPDATE api_keys SET last_used_us = ?"
                " WHERE id = ? AND (last_used_us IS NULL OR last_used_us < ?)",
                (used_us, key_id, used_us),
            )

    # --- stock imports (server/domain/imports.py) --------------------------------------------

    def stock_import(self, import_id: str) -> StockImport | None:
        rows = self._rows(
            "SELECT fingerprint, through_line, applied, stale, failed, create_us"
            " FROM stock_imports WHERE import_id = ?",
            (import_id,),
        )
        if not rows:
            return None
        fingerprint, through_line, applied, stale, failed, create_us = rows[0]
        counts = ImportCounts(applied, stale, failed)
        return StockImport(import_id, fingerprint, through_line, counts, create_us)

    def put_stock_import(self, stock_import: StockImport, now_us: int) -> None:
        counts = stock_import.counts
        self._run(
            "INSERT INTO stock_imports (import_id, fingerprint, through_line, applied, stale,"
            " failed, create_us, update_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (import_id) DO UPDATE SET through_line = excluded.through_line,"
            " applied = excluded.applied, stale = excluded.stale, failed = excluded.failed,"
            " update_us = excluded.update_us",
            (
                stock_import.import_id,
                stock_import.fingerprint,
                stock_import.through_line,
                counts.applied,
                counts.stale,
                counts.failed,
                stock_import.create_us or now_us,
                now_us,
            ),
        )

    def stock_page(self, after: tuple[str, str], limit: int) -> list[StockRecord]:
        rows = self._rows(
            f"SELECT {_STOCK_COLUMNS} FROM stock WHERE sku > ? OR (sku = ? AND location_id > ?)"
            " ORDER BY sku, location_id LIMIT ?",
            (after[0], after[0], after[1], limit),
        )
        return [_stock(row) for row in rows]


def _location(row: Row) -> Location:
    return Location(
        id=row[0],
        display_name=row[1],
        type=LocationType(row[2]),
        latitude=row[3],
        longitude=row[4],
        postal_code=row[5],
        country_code=row[6],
        ship_enabled=bool(row[7]),
        shipment_cost=row[8],
        priority=row[9],
        pickup_enabled=bool(row[10]),
    )


def _assemble_groups(names: list[Row], members: list[Row]) -> dict[str, LocationGroup]:
    by_group: dict[str, list[str]] = {row[0]: [] for row in names}
    for group_id, location_id in members:
        if group_id in by_group:
            by_group[group_id].append(location_id)
    return {
        group_id: LocationGroup(group_id, display_name, tuple(by_group[group_id]), bool(enabled))
        for group_id, display_name, enabled in names
    }


def _stock(row: Row) -> StockRecord:
    # Positional, in _STOCK_COLUMNS order: keywords cost a third more, and routing over 1,000
    # candidates builds ~1,000 of these per order.
    return StockRecord(row[0], row[1], row[2], row[3], _futures(row[4]), row[5], row[6])


def _futures(text: str) -> tuple[Future, ...]:
    if text == _NO_FUTURES_JSON:
        return ()
    return tuple(Future(quantity, expected) for quantity, expected in json.loads(text))
