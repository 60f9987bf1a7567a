"""A plain-Python model of what the ledger should hold, and an independent reader of the
SQLite file, both in the same shape so that they can be compared field by field.

Places are tuples (kind, id) with kind 1 for a location and 2 for a group, as in the
`reservation_lines.place_kind` column. Quantities and times are ints (microseconds)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from tests.ledger.oracle import SkuState, Stock

LOCATION, GROUP = 1, 2
ACTIVE, CLOSED, EXPIRED = 1, 2, 3

Place = tuple[int, str]
LineKey = tuple[str, int, str]  # (sku, place kind, place id)


@dataclass
class Level:
    """A stock row as the back office set it (reserved is derived from the lines)."""

    on_hand: int = 0
    safety_stock: int = 0
    futures: tuple[tuple[int, int | None], ...] = ()
    effective_us: int | None = None

    @property
    def futures_total(self) -> int:
        return sum(quantity for quantity, _ in self.futures)


@dataclass
class Line:
    quantity: int = 0
    fulfilled: int = 0
    released: int = 0
    transferred_out: int = 0

    @property
    def open(self) -> int:
        return self.quantity - self.fulfilled - self.released - self.transferred_out


@dataclass
class Booking:
    """A reservation."""

    create_us: int
    update_us: int
    expire_us: int | None = None
    expired: bool = False
    lines: dict[LineKey, Line] = field(default_factory=dict)

    @property
    def state(self) -> int:
        if self.expired:
            return EXPIRED
        return ACTIVE if any(line.open for line in self.lines.values()) else CLOSED

    def due(self, now_us: int) -> bool:
        return self.expire_us is not None and self.expire_us <= now_us and self.state == ACTIVE


@dataclass
class Ledger:
    """Either the model's expectation or what the database holds."""

    members: dict[str, tuple[str, ...]]
    levels: dict[tuple[str, str], Level] = field(default_factory=dict)  # (location, sku)
    bookings: dict[str, Booking] = field(default_factory=dict)
    # Only from the database: the stored counters, to be checked against the lines.
    stored_reserved: dict[tuple[str, str], int] = field(default_factory=dict)
    stored_group_reserved: dict[tuple[str, str], int] = field(default_factory=dict)

    def level(self, location: str, sku: str) -> Level:
        return self.levels.get((location, sku), Level())

    def open_at(self) -> dict[tuple[str, int, str], int]:
        """Open units per (sku, place kind, place id), summed over every reservation."""
        total: dict[tuple[str, int, str], int] = {}
        for booking in self.bookings.values():
            for key, line in booking.lines.items():
                total[key] = total.get(key, 0) + line.open
        return total

    def sku_state(self, sku: str) -> SkuState:
        held = self.open_at()
        locations = {location for location, level_sku in self.levels if level_sku == sku}
        locations |= {place for (s, kind, place) in held if s == sku and kind == LOCATION}
        stock = {}
        for location in locations:
            level = self.level(location, sku)
            stock[location] = Stock(
                level.on_hand,
                level.safety_stock,
                level.futures_total,
                held.get((sku, LOCATION, location), 0),
            )
        demand = {
            place: units
            for (s, kind, place), units in held.items()
            if s == sku and kind == GROUP and units
        }
        return SkuState(self.members, stock, demand)

    def available_to_order(self, sku: str, place: Place) -> int:
        state = self.sku_state(sku)
        kind, place_id = place
        return state.location_ato(place_id) if kind == LOCATION else state.group_ato(place_id)


def read_database(connection: sqlite3.Connection, members: dict[str, tuple[str, ...]]) -> Ledger:
    """The ledger as the SQLite file holds it, read with plain SQL in one snapshot."""
    connection.execute("BEGIN")
    try:
        stock = connection.execute(
            "SELECT location_id, sku, on_hand, safety_stock, futures, reserved, effective_us"
            " FROM stock"
        ).fetchall()
        group_reserved = connection.execute(
            "SELECT group_id, sku, reserved FROM group_reserved"
        ).fetchall()
        reservations = connection.execute(
            "SELECT id, state, create_us, update_us, expire_us FROM reservations"
        ).fetchall()
        lines = connection.execute(
            "SELECT reservation_id, sku, place_kind, place_id, quantity, fulfilled, released,"
            " transferred_out FROM reservation_lines"
        ).fetchall()
    finally:
        connection.execute("COMMIT")
    ledger = Ledger(members)
    for location, sku, on_hand, safety, futures, reserved, effective in stock:
        ledger.levels[(location, sku)] = Level(
            on_hand,
            safety,
            tuple((quantity, expected) for quantity, expected in json.loads(futures)),
            effective,
        )
        ledger.stored_reserved[(location, sku)] = reserved
    for group, sku, reserved in group_reserved:
        ledger.stored_group_reserved[(group, sku)] = reserved
    states = {}
    for reservation_id, state, create_us, update_us, expire_us in reservations:
        ledger.bookings[reservation_id] = Booking(
            create_us, update_us, expire_us, expired=state == EXPIRED
        )
        states[reservation_id] = state
    for reservation_id, sku, kind, place, quantity, fulfilled, released, moved in lines:
        ledger.bookings[reservation_id].lines[(sku, kind, place)] = Line(
            quantity, fulfilled, released, moved
        )
    for reservation_id, state in states.items():
        derived = ledger.bookings[reservation_id].state
        assert state == derived, f"{reservation_id} stored state {state}, lines say {derived}"
    return ledger


def dump(connection: sqlite3.Connection) -> dict[str, list[Any]]:
    """Every row of every ledger table, to prove that a refused request changed nothing."""
    tables = [
        "locations",
        "location_groups",
        "group_members",
        "stock",
        "group_reserved",
        "reservations",
        "reservation_lines",
        "remembered_responses",
    ]
    connection.execute("BEGIN")
    try:
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall())
            for table in tables
        }
    finally:
        connection.execute("COMMIT")
