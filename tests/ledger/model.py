"""The reference ledger: a plain-Python account of what the ledger should hold, from which the
Hypothesis state machine predicts every answer and into which the PostgreSQL race tests enter
every OK answer; and an independent reader of the SQLite file in the same shape, so that the two
can be compared field by field.

Places are tuples (kind, id) with kind 1 for a location and 2 for a group, as in the
`reservation_lines.place_kind` column. Quantities and times are ints (microseconds)."""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from dataclasses import dataclass, field, fields, replace
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
    """The reference ledger, or what a database holds in the same shape. Changes, and the reads
    concurrent clients make, hold `lock`, so that client threads can enter answers side by side."""

    members: dict[str, tuple[str, ...]]
    levels: dict[tuple[str, str], Level] = field(default_factory=dict)  # (location, sku)
    bookings: dict[str, Booking] = field(default_factory=dict)
    # Only from the database: the stored counters, to be checked against the lines.
    stored_reserved: dict[tuple[str, str], int] = field(default_factory=dict)
    stored_group_reserved: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.RLock = field(
        default_factory=threading.RLock, init=False, repr=False, compare=False
    )

    def __deepcopy__(self, memo: dict[int, Any]) -> Ledger:
        """A copy with a lock of its own: the state machine predicts on a copy it may drop."""
        return Ledger(
            **{f.name: copy.deepcopy(getattr(self, f.name), memo) for f in fields(self) if f.init}
        )

    def restore(self, saved: Ledger) -> None:
        """Takes back the state of `saved`, a copy taken before: a batch's refused request
        leaves no trace."""
        for name in ("levels", "bookings", "stored_reserved", "stored_group_reserved"):
            setattr(self, name, getattr(saved, name))

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

    def open_lines(self, reservation_id: str) -> list[tuple[str, Place, int]]:
        """(sku, place, open units) of the reservation's open lines, in line order."""
        with self.lock:
            booking = self.bookings.get(reservation_id)
            lines = sorted(booking.lines.items()) if booking else []
            return [
                (sku, (kind, place_id), line.open)
                for (sku, kind, place_id), line in lines
                if line.open
            ]

    # --- changes: what one accepted request does (the caller decides whether it is accepted) ---

    def create(self, reservation_id: str, now_us: int, expire_us: int | None = None) -> Booking:
        """A new reservation, without lines until `reserve` gives it some."""
        with self.lock:
            booking = self.bookings[reservation_id] = Booking(now_us, now_us, expire_us)
            return booking

    def _line(self, reservation_id: str, sku: str, place: Place) -> Line:
        return self.bookings[reservation_id].lines.setdefault((sku, *place), Line())

    def reserve(self, reservation_id: str, sku: str, place: Place, units: int) -> None:
        with self.lock:
            self._line(reservation_id, sku, place).quantity += units

    def transfer_out(self, reservation_id: str, sku: str, place: Place, units: int) -> None:
        """The source half of a transfer (a request lets go of every source before it checks
        any destination, then reserves there)."""
        with self.lock:
            self._line(reservation_id, sku, place).transferred_out += units

    def transfer(
        self, reservation_id: str, sku: str, source: Place, target: Place, units: int
    ) -> None:
        with self.lock:
            self.transfer_out(reservation_id, sku, source, units)
            self.reserve(reservation_id, sku, target, units)

    def fulfill(self, reservation_id: str, sku: str, location: str, units: int) -> None:
        """Ships from the location: the line's units leave stock on hand."""
        with self.lock:
            self._line(reservation_id, sku, (LOCATION, location)).fulfilled += units
            level = self.level(location, sku)
            self.levels[(location, sku)] = replace(level, on_hand=level.on_hand - units)

    def release(self, reservation_id: str, sku: str, place: Place, units: int) -> None:
        with self.lock:
            self._line(reservation_id, sku, place).released += units

    def expire(self, reservation_id: str) -> None:
        """What the sweeper does to a due reservation: releases whatever is open."""
        with self.lock:
            booking = self.bookings[reservation_id]
            for line in booking.lines.values():
                line.released += line.open
            booking.expired = True

    def adjust(self, location: str, sku: str, delta: int) -> int:
        """On hand moves by `delta` but not below zero; returns the delta applied. A record the
        adjustment creates has effective time 0."""
        with self.lock:
            level = self.level(location, sku)
            on_hand = max(0, level.on_hand + delta)
            effective = 0 if level.effective_us is None else level.effective_us
            self.levels[(location, sku)] = replace(level, on_hand=on_hand, effective_us=effective)
            return on_hand - level.on_hand


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
