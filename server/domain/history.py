"""Stock movements: every change to stock, reservations and the network, with its cause, kept
so that an operator can tell why a number is what it is and rebuild on hand from zero."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import NamedTuple

from server.domain.model import Place, StockRecord
from server.domain.position import SkuPosition


class MovementKind(enum.IntEnum):
    """What changed; the numbers are stored."""

    STOCK_SET = 1
    STOCK_ADJUSTED = 2
    STOCK_DELETED = 3
    RESERVED = 4
    RESERVATION_UPDATED = 5
    TRANSFERRED = 6
    FULFILLED = 7
    RELEASED = 8
    EXPIRED = 9
    LOCATION_CHANGED = 10
    LOCATION_DELETED = 11
    GROUP_CHANGED = 12
    GROUP_DELETED = 13


@dataclass(frozen=True, slots=True)
class Cause:
    """Who asked: the RPC, its request_id and the caller's API key id ("" when unknown; all ""
    for the server's own work, such as expiring reservations)."""

    rpc: str = ""
    request_id: str = ""
    key_id: str = ""


CAUSE: ContextVar[Cause] = ContextVar("cause", default=Cause())  # noqa: B039 (frozen)
"""The cause of the writes now running: set by the transport around each mutation's unit of
work, so that the ledger need not take it through every call."""


class Movement(NamedTuple):
    """One change at one place. Deltas are what this change did; the other quantities are the
    record after it. Network changes have no SKU and no quantities."""

    kind: MovementKind
    sku: str
    place: Place
    on_hand_delta: int = 0
    reserved_delta: int = 0
    on_hand: int = 0
    safety_stock: int = 0
    futures_total: int = 0
    reserved: int = 0
    reservation_id: str = ""
    reason: str = ""


class MovementQuery(NamedTuple):
    """Which movements ListStockMovements returns, and its page."""

    sku: str
    place: Place | None
    start_us: int | None
    end_us: int | None
    size: int
    after_seq: int


class RecordedMovement(NamedTuple):
    """A movement as stored: its position in the history, its time and its cause."""

    seq: int
    at_us: int
    cause: Cause
    movement: Movement


def of_records(
    kind: MovementKind,
    before: Mapping[tuple[str, str], StockRecord],
    after: Mapping[tuple[str, str], StockRecord],
    reasons: Mapping[tuple[str, str], str] | None = None,
) -> list[Movement]:
    """The movements of stock records replaced by the back office (levels, deltas, deletes):
    only those whose quantities changed."""
    movements = []
    for key, new in after.items():
        old = before.get(key) or StockRecord(*key)
        if (old.on_hand, old.safety_stock, old.futures) == (
            new.on_hand,
            new.safety_stock,
            new.futures,
        ) and kind is not MovementKind.STOCK_DELETED:
            continue
        movements.append(
            _at_location(kind, old, new, reason=reasons.get(key, "") if reasons else "")
        )
    return movements


def _at_location(
    kind: MovementKind,
    old: StockRecord,
    new: StockRecord,
    *,
    reservation_id: str = "",
    reason: str = "",
) -> Movement:
    """A location's record going from `old` to `new`."""
    return Movement(
        kind,
        new.sku,
        Place.location(new.location_id),
        on_hand_delta=new.on_hand - old.on_hand,
        reserved_delta=new.reserved - old.reserved,
        on_hand=new.on_hand,
        safety_stock=new.safety_stock,
        futures_total=new.futures_total,
        reserved=new.reserved,
        reservation_id=reservation_id,
        reason=reason,
    )


def of_positions(
    kind: MovementKind, reservation_id: str, positions: Iterable[SkuPosition]
) -> list[Movement]:
    """The movements a reservation's change made: reserved (and, shipping, on hand) at each
    location and group it touched."""
    movements = []
    for position in positions:
        for location_id in sorted(position.changed_locations):
            old = position.loaded_record(location_id)
            new = position.record(location_id)
            if (old.on_hand, old.reserved) == (new.on_hand, new.reserved):
                continue
            movements.append(_at_location(kind, old, new, reservation_id=reservation_id))
        for group_id in sorted(position.changed_groups):
            old_units = position.loaded_group_reserved.get(group_id, 0)
            new_units = position.group_reserved.get(group_id, 0)
            if old_units != new_units:
                movements.append(
                    Movement(
                        kind,
                        position.sku,
                        Place.group(group_id),
                        reserved_delta=new_units - old_units,
                        reserved=new_units,
                        reservation_id=reservation_id,
                    )
                )
    return movements


def of_network(kind: MovementKind, places: Iterable[Place]) -> list[Movement]:
    """Locations or groups created, replaced or deleted."""
    return [Movement(kind, "", place) for place in places]
