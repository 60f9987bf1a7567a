"""The stock movements' statements (migrations 0009), shared by both backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.domain.history import Cause, Movement, MovementKind, RecordedMovement
from server.domain.model import Place, PlaceKind
from server.storage.sql import SqlUnitOfWork

_COLUMNS = (
    "kind, sku, place_kind, place_id, on_hand_delta, reserved_delta, on_hand, safety_stock,"
    " futures_total, reserved, reservation_id, reason"
)


class MovementUnitOfWork(SqlUnitOfWork):
    """SqlUnitOfWork with the stock movements."""

    def append_movements(self, movements: Sequence[Movement], at_us: int, cause: Cause) -> None:
        for movement in movements:
            self._run(
                f"INSERT INTO stock_movements (at_us, rpc, request_id, key_id, {_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    at_us,
                    cause.rpc,
                    cause.request_id,
                    cause.key_id,
                    int(movement.kind),
                    movement.sku,
                    int(movement.place.kind),
                    movement.place.id,
                    *movement[3:],
                ),
            )

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
        """Up to `limit` movements after `seq` in sequence order, of `sku` and at `place`
        when given, made in [start_us, end_us) when given."""
        where = ["seq > ?"]
        params: list[object] = [seq]
        if sku:
            where.append("sku = ?")
            params.append(sku)
        if place is not None:
            where.append("place_id = ? AND place_kind = ?")
            params.extend((place.id, int(place.kind)))
        if start_us is not None:
            where.append("at_us >= ?")
            params.append(start_us)
        if end_us is not None:
            where.append("at_us < ?")
            params.append(end_us)
        rows = self._rows(
            f"SELECT seq, at_us, rpc, request_id, key_id, {_COLUMNS} FROM stock_movements"
            f" WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
            [*params, limit],
        )
        return [_recorded(row) for row in rows]

    def prune_movements(self, cutoff_us: int, limit: int) -> int:
        """Deletes up to `limit` of the oldest movements made before `cutoff_us`."""
        rows = self._rows(
            "SELECT seq FROM stock_movements WHERE at_us < ? ORDER BY seq LIMIT ?",
            (cutoff_us, limit),
        )
        if rows:
            self._run(
                "DELETE FROM stock_movements WHERE seq <= ? AND at_us < ?",
                (rows[-1][0], cutoff_us),
            )
        return len(rows)


def _recorded(row: Sequence[Any]) -> RecordedMovement:
    seq, at_us, rpc, request_id, key_id, kind, sku, place_kind, place_id = row[:9]
    on_hand_delta, reserved_delta, on_hand, safety_stock, futures_total, reserved = map(
        int, row[9:15]
    )
    return RecordedMovement(
        int(seq),
        int(at_us),
        Cause(rpc, request_id, key_id),
        Movement(
            MovementKind(kind),
            sku,
            Place(PlaceKind(place_kind), place_id),
            on_hand_delta,
            reserved_delta,
            on_hand,
            safety_stock,
            futures_total,
            reserved,
            row[15],
            row[16],
        ),
    )
