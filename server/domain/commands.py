"""Validated inputs of the ledger's operations (built by the transport from requests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from server.domain.model import Future, Place, ReservationState


@dataclass(frozen=True, slots=True)
class StockLevel:
    location_id: str
    sku: str
    on_hand: int
    safety_stock: int
    futures: tuple[Future, ...]
    effective_us: int | None  # None: now
    excluded_groups: frozenset[str] | None = None  # groupEligibilityExclusion; None: as stored


@dataclass(frozen=True, slots=True)
class StockAdjustment:
    location_id: str
    sku: str
    on_hand_delta: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Item:
    """Units of a SKU at a place (to reserve, fulfil or release)."""

    sku: str
    place: Place
    quantity: int


@dataclass(frozen=True, slots=True)
class ReservationFilter:
    """Which reservations ListReservations returns: each set field must match."""

    state: ReservationState | None = None
    external_ref: str = ""
    sku: str = ""
    place: Place | None = None


EVERY_RESERVATION = ReservationFilter()


@dataclass(frozen=True, slots=True)
class TransferItem:
    sku: str
    from_place: Place
    to_place: Place
    quantity: int


@dataclass(frozen=True, slots=True)
class CreateReservation:
    reservation_id: str  # "" -> generated
    external_ref: str
    items: tuple[Item, ...]
    allow_partial: bool = False
    ttl_us: int | None = None


@dataclass(frozen=True, slots=True)
class TransferReservation:
    reservation_id: str
    items: tuple[TransferItem, ...]
    ignore_availability_check: bool = False


@dataclass(frozen=True, slots=True)
class FulfillReservation:
    reservation_id: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class ReleaseReservation:
    reservation_id: str
    items: tuple[Item, ...]
    release_all: bool = False


@dataclass(frozen=True, slots=True)
class UpdateReservation:
    """A changing cart: `items` set the open quantity of (sku, place) lines (Item.quantity is
    the target, 0 releases the line); `ttl_us` resets the expiry from now, `clear_ttl` drops it,
    neither leaves it."""

    reservation_id: str
    items: tuple[Item, ...]
    ttl_us: int | None = None
    clear_ttl: bool = False


@dataclass(frozen=True, slots=True)
class StockUpdateResult:
    location_id: str
    sku: str
    applied: bool
    stored_effective_us: int


@dataclass(frozen=True, slots=True)
class AdjustmentResult:
    location_id: str
    sku: str
    on_hand: int
    applied_delta: int


@dataclass(frozen=True, slots=True)
class ReservedItem:
    sku: str
    place: Place
    requested: int
    reserved: int


class Availability(NamedTuple):
    """One SKU at one place (DESIGN.md section 2). A NamedTuple, as StockRecord is."""

    place: Place
    sku: str
    exists: bool
    on_hand: int
    reserved: int
    group_reserved: int
    safety_stock: int
    futures: tuple[Future, ...]
    futures_total: int
    available_to_fulfill: int
    available_to_order: int
    effective_us: int | None
