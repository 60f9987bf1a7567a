"""The ledger's nouns: network (locations, groups), stock records and reservations.

Times are integer microseconds since the Unix epoch (UTC); quantities are integer units."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_QUANTITY = 1_000_000_000_000
"""Largest quantity accepted anywhere: keeps every sum well inside int64."""


class LocationType(enum.IntEnum):
    WAREHOUSE = 1
    DISTRIBUTION_CENTER = 2
    STORE = 3


class PlaceKind(enum.IntEnum):
    LOCATION = 1
    GROUP = 2


@dataclass(frozen=True, order=True, slots=True)
class Place:
    """A location or a location group: where stock or a reservation line is held."""

    kind: PlaceKind
    id: str

    @classmethod
    def location(cls, location_id: str) -> Place:
        return cls(PlaceKind.LOCATION, location_id)

    @classmethod
    def group(cls, group_id: str) -> Place:
        return cls(PlaceKind.GROUP, group_id)

    @property
    def is_location(self) -> bool:
        return self.kind is PlaceKind.LOCATION

    def __str__(self) -> str:
        return f"{'location' if self.is_location else 'group'}:{self.id}"


@dataclass(frozen=True, slots=True)
class Location:
    id: str
    display_name: str
    type: LocationType
    latitude: float
    longitude: float
    postal_code: str = ""
    country_code: str = ""
    ship_enabled: bool = True
    shipment_cost: float = 0.0
    priority: int = 0
    pickup_enabled: bool = False  # opt-in: pickup is set up store by store


@dataclass(frozen=True, slots=True)
class LocationGroup:
    id: str
    display_name: str
    location_ids: tuple[str, ...]
    enabled: bool = True  # OCI's IsEnabled: a disabled group sells nothing new


# Stock records, their futures and availability answers are NamedTuples, not frozen
# dataclasses: equally immutable and several times faster to build, which GetAvailability
# does hundreds of times per call.


class Future(NamedTuple):
    quantity: int
    expected_us: int | None


class StockRecord(NamedTuple):
    """Stock of one SKU at one location. `reserved` is the location-level open reservation
    quantity, kept equal to the sum of open reservation lines at the location."""

    sku: str
    location_id: str
    on_hand: int = 0
    safety_stock: int = 0
    futures: tuple[Future, ...] = ()
    reserved: int = 0
    effective_us: int | None = None  # None: never set by the back office

    @property
    def exists(self) -> bool:
        return self.effective_us is not None

    def changed_by(self, reserved: int, on_hand: int = 0) -> StockRecord:
        """This record with `reserved` and `on_hand` moved by the given deltas (built directly:
        `_replace` costs more than the rest of a reservation's arithmetic)."""
        return StockRecord(
            self.sku,
            self.location_id,
            self.on_hand + on_hand,
            self.safety_stock,
            self.futures,
            self.reserved + reserved,
            self.effective_us,
        )

    @property
    def futures_total(self) -> int:
        return sum(future.quantity for future in self.futures)

    @property
    def free_to_fulfill(self) -> int:
        """on_hand - reserved - safety_stock, unclamped (negative when oversold by shrink)."""
        return self.on_hand - self.reserved - self.safety_stock

    @property
    def free_to_order(self) -> int:
        """on_hand + futures - reserved - safety_stock, unclamped."""
        return self.free_to_fulfill + self.futures_total


class ReservationState(enum.IntEnum):
    ACTIVE = 1
    CLOSED = 2
    EXPIRED = 3


@dataclass(slots=True)
class ReservationLine:
    """Units of one SKU held at one place. quantity == fulfilled + released + transferred_out
    + open, always."""

    sku: str
    place: Place
    quantity: int = 0
    fulfilled: int = 0
    released: int = 0
    transferred_out: int = 0

    @property
    def open(self) -> int:
        return self.quantity - self.fulfilled - self.released - self.transferred_out


@dataclass(slots=True)
class Reservation:
    id: str
    external_ref: str
    create_us: int
    update_us: int
    expire_us: int | None = None
    expired: bool = False
    lines: dict[tuple[str, Place], ReservationLine] = field(default_factory=dict)

    @property
    def state(self) -> ReservationState:
        if self.expired:
            return ReservationState.EXPIRED
        if any(line.open for line in self.lines.values()):
            return ReservationState.ACTIVE
        return ReservationState.CLOSED

    def is_due(self, now_us: int) -> bool:
        """Past its expiry time with quantity still open: the sweeper will release it."""
        return (
            self.expire_us is not None
            and self.expire_us <= now_us
            and self.state is ReservationState.ACTIVE
        )

    @property
    def skus(self) -> set[str]:
        """The SKUs the reservation holds: transfers keep them, updates may add some."""
        return {sku for sku, _ in self.lines}

    def line(self, sku: str, place: Place) -> ReservationLine:
        """The line for (sku, place), created empty if absent."""
        key = (sku, place)
        if key not in self.lines:
            self.lines[key] = ReservationLine(sku, place)
        return self.lines[key]

    def sorted_lines(self) -> list[ReservationLine]:
        return [self.lines[key] for key in sorted(self.lines)]
