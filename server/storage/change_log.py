"""The units of work of both backends, with the change log's statements (the migrations 0007
say how each numbers its entries)."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from server.domain.commands import Availability
from server.domain.model import Future, Place, PlaceKind
from server.storage.movements import MovementUnitOfWork

_COLUMNS = (
    "sku, place_kind, place_id, present, on_hand, reserved, group_reserved, safety_stock,"
    " futures, futures_total, atf, ato, effective_us"
)
SCAN_WINDOW = 10_000
"""Entries a filtered read looks through at most: a filter that matches little still answers
quickly, with a token that moves past what it looked through."""


class LoggingUnitOfWork(MovementUnitOfWork):
    """SqlUnitOfWork with the stock movements and the change log."""

    @property
    def sequenced_at_insert(self) -> bool:
        """SQLite numbers entries as it inserts them; PostgreSQL's sequencer does it later."""
        return not self._format

    def append_changes(self, records: Iterable[Availability], commit_us: int) -> None:
        for record in records:
            self._run(
                f"INSERT INTO availability_changes (commit_us, {_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    commit_us,
                    record.sku,
                    int(record.place.kind),
                    record.place.id,
                    int(record.exists),
                    record.on_hand,
                    record.reserved,
                    record.group_reserved,
                    record.safety_stock,
                    json.dumps([[f.quantity, f.expected_us] for f in record.futures])
                    if record.futures
                    else "[]",
                    record.futures_total,
                    record.available_to_fulfill,
                    record.available_to_order,
                    record.effective_us,
                ),
            )

    def change_log_bounds(self) -> tuple[int, int]:
        """(the newest entry pruned, the newest entry readable): tokens resume between them."""
        if self.sequenced_at_insert:
            rows = self._rows(
                "SELECT pruned_through, (SELECT coalesce(max(seq), 0) FROM availability_changes)"
                " FROM change_log_state"
            )
        else:
            rows = self._rows("SELECT pruned_through, last_seq FROM change_log_state")
        pruned, newest = rows[0]
        return int(pruned), max(int(pruned), int(newest))

    def changes_after(
        self,
        seq: int,
        newest: int,
        limit: int,
        skus: Collection[str] = (),
        locations: Collection[str] = (),
        groups: Collection[str] = (),
    ) -> tuple[list[tuple[int, int, Availability]], int]:
        """Up to `limit` entries after `seq` and up to `newest` (the log's end, as the caller
        read it) that match the filters (a SKU among `skus`, if any; a place among `locations`
        or `groups`, if either is given), in sequence order, and the sequence number a next read
        continues after."""
        through = min(newest, seq + SCAN_WINDOW)
        where = ["seq > ?", "seq <= ?"]
        params: list[object] = [seq, through]
        if skus:
            where.append(f"sku IN ({', '.join('?' * len(skus))})")
            params.extend(sorted(skus))
        places = []
        for kind, ids in ((PlaceKind.LOCATION, locations), (PlaceKind.GROUP, groups)):
            if ids:
                places.append(
                    f"(place_kind = {int(kind)} AND place_id IN ({', '.join('?' * len(ids))}))"
                )
                params.extend(sorted(ids))
        if places:
            where.append(f"({' OR '.join(places)})")
        rows = self._rows(
            f"SELECT seq, commit_us, {_COLUMNS} FROM availability_changes"
            f" WHERE {' AND '.join(where)}"
            " ORDER BY seq LIMIT ?",
            [*params, limit],
        )
        found = [(int(row[0]), int(row[1]), _record(row[2:])) for row in rows]
        return found, found[-1][0] if len(found) == limit else through

    def prune_changes(self, cutoff_us: int, limit: int) -> int:
        """Deletes up to `limit` of the oldest entries committed before `cutoff_us`."""
        rows = self._rows(
            "SELECT seq FROM availability_changes WHERE commit_us < ? AND seq IS NOT NULL"
            " ORDER BY seq LIMIT ?",
            (cutoff_us, limit),
        )
        if not rows:
            return 0
        last = int(rows[-1][0])
        self._run("DELETE FROM availability_changes WHERE seq <= ? AND seq IS NOT NULL", (last,))
        self._run(
            "UPDATE change_log_state SET pruned_through = ? WHERE pruned_through < ?", (last, last)
        )
        return len(rows)

    def sequence_changes(self, limit: int, *, wait: bool = False) -> int:
        """PostgreSQL: numbers up to `limit` committed entries that have no number yet, in
        insertion order; returns how many. Another server doing it now is left to it, unless
        `wait`: then this one waits for it and numbers what is left."""
        if self.sequenced_at_insert:
            return 0
        state = self._rows(
            "SELECT last_seq FROM change_log_state WHERE id = 1 FOR UPDATE"
            + ("" if wait else " SKIP LOCKED")
        )
        if not state:
            return 0
        ids = [
            row[0]
            for row in self._rows(
                "SELECT id FROM availability_changes WHERE seq IS NULL ORDER BY id LIMIT ?",
                (limit,),
            )
        ]
        if not ids:
            return 0
        first = int(state[0][0]) + 1
        self._run(
            "UPDATE availability_changes AS c SET seq = n.seq"
            " FROM unnest(?::bigint[], ?::bigint[]) AS n(id, seq) WHERE c.id = n.id",
            (ids, list(range(first, first + len(ids)))),
        )
        self._run("UPDATE change_log_state SET last_seq = ? WHERE id = 1", (first + len(ids) - 1,))
        return len(ids)


def _record(row: Sequence[Any]) -> Availability:
    futures = tuple(Future(quantity, expected) for quantity, expected in json.loads(row[8]))
    return Availability(
        Place(PlaceKind(row[1]), row[2]),
        row[0],
        bool(row[3]),
        int(row[4]),
        int(row[5]),
        int(row[6]),
        int(row[7]),
        futures,
        int(row[9]),
        int(row[10]),
        int(row[11]),
        row[12],
    )
