"""Request validation: every malformed field becomes a BadRequest violation, and a valid request
becomes a domain command. Nothing reaches the ledger unless it passes here. Limits are the ones
documented in the protos."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

import solver
import solver.geo
from server.domain import commands, routing
from server.domain.errors import FieldViolation, InvalidRequest
from server.domain.model import (
    MAX_QUANTITY,
    Future,
    Location,
    LocationGroup,
    LocationType,
    Place,
    ReservationState,
)
from solver.problem import (
    MAX_COST_PER_KM,
    MAX_LATITUDE,
    MAX_LONGITUDE,
    MAX_SHIPMENT_COST,
)
from solver.problem import MAX_QUANTITY as MAX_ROUTING_QUANTITY

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 256
MAX_BATCH = 1000
MAX_GROUP_MEMBERS = 10_000
MAX_ITEMS = 100
MAX_FUTURES = 10
MAX_AVAILABILITY_SKUS = 100
MAX_AVAILABILITY_PLACES = 100
MAX_PAGE_SIZE = 1000
# A page token is the base64 of the last id's UTF-8 (at most 4 bytes per character).
MAX_PAGE_TOKEN_LENGTH = 4 * math.ceil(4 * MAX_ID_LENGTH / 3)
DEFAULT_PAGE_SIZE = 100
MAX_TTL_US = 30 * 24 * 3600 * 1_000_000
MAX_POSTAL_CODE_LENGTH = 32
# ISO 3166-1 alpha-2 on locations; a destination may also give alpha-3 ("USA"), which the
# bundled postal-code table accepts.
MAX_COUNTRY_CODE_LENGTH = 3
# The range google.protobuf.Timestamp defines: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_S = -62_135_596_800
MAX_TIMESTAMP_S = 253_402_300_799


class Checker:
    """Collects violations so a client sees every problem of a request at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def fail(self, field: str, reason: str, description: str) -> None:
        self.violations.append(FieldViolation(field, reason, description))

    def done(self) -> None:
        if self.violations:
            raise InvalidRequest(self.violations)

    def identifier(self, field: str, value: str, *, required: bool = True) -> str:
        if not value:
            if required:
                self.fail(field, "INVALID_ID", "must not be empty")
        elif len(value) > MAX_ID_LENGTH:
            self.fail(field, "INVALID_ID", f"must be at most {MAX_ID_LENGTH} characters")
        elif value != value.strip() or _CONTROL_CHARACTER.search(value):
            self.fail(
                field, "INVALID_ID", "must not contain control characters or surrounding spaces"
            )
        return value

    def text(self, field: str, value: str, limit: int = MAX_TEXT_LENGTH) -> str:
        if len(value) > limit:
            self.fail(field, "INVALID_FIELD", f"must be at most {limit} characters")
        return value

    def quantity(self, field: str, value: int, *, positive: bool = True) -> int:
        if value < 0 or (positive and value == 0):
            self.fail(
                field,
                "INVALID_QUANTITY",
                "must be greater than 0" if positive else "must not be negative",
            )
        elif value > MAX_QUANTITY:
            self.fail(field, "QUANTITY_TOO_LARGE", f"must be at most {MAX_QUANTITY}")
        return value

    def count(self, field: str, items: Sequence[Any], maximum: int, *, minimum: int = 1) -> bool:
        if len(items) < minimum:
            self.fail(field, "MISSING_FIELD", f"needs at least {minimum} entries")
            return False
        if len(items) > maximum:
            self.fail(field, "TOO_MANY_ITEMS", f"has {len(items)} entries; at most {maximum}")
            return False
        return True

    def distinct(self, field: str, keys: Sequence[object]) -> None:
        seen: set[object] = set()
        for index, key in enumerate(keys):
            if key in seen:
                self.fail(f"{field}[{index}]", "DUPLICATE_ITEM", f"repeats {key}")
            seen.add(key)

    def place(self, field: str, message: Any) -> Place:
        kind = message.WhichOneof("kind")
        if kind == "location_id":
            return Place.location(self.identifier(f"{field}.location_id", message.location_id))
        if kind == "location_group_id":
            return Place.group(
                self.identifier(f"{field}.location_group_id", message.location_group_id)
            )
        self.fail(field, "MISSING_FIELD", "set location_id or location_group_id")
        return Place.location("")

    def timestamp(self, field: str, message: Any) -> int:
        """Microseconds since the epoch of a google.protobuf.Timestamp in its defined range."""
        if not (
            MIN_TIMESTAMP_S <= message.seconds <= MAX_TIMESTAMP_S
            and 0 <= message.nanos < 1_000_000_000
        ):
            self.fail(field, "INVALID_FIELD", "must be a valid time between years 1 and 9999")
            return 0
        return timestamp_us(message)

    def duration(self, field: str, message: Any) -> int | None:
        """Microseconds of a google.protobuf.Duration, or None if it is not one: nanos beyond a
        second, or of the other sign than seconds (seconds=1, nanos=-1 is no 0.999999999 s)."""
        seconds, nanos = message.seconds, message.nanos
        if abs(nanos) >= 1_000_000_000 or seconds * nanos < 0:
            self.fail(
                field, "INVALID_FIELD", "must be a valid duration: seconds and nanos of one sign"
            )
            return None
        return int(seconds) * 1_000_000 + int(nanos) // 1000

    def page(self, page_size: int, page_token: str) -> tuple[int, str]:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            self.fail("page_size", "INVALID_FIELD", f"must be between 0 and {MAX_PAGE_SIZE}")
        self.text("page_token", page_token, MAX_PAGE_TOKEN_LENGTH)
        return page_size or DEFAULT_PAGE_SIZE, page_token


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Unicode control characters (category Cc): C0, DEL and C1."""


def timestamp_us(message: Any) -> int:
    return int(message.seconds) * 1_000_000 + int(message.nanos) // 1000


def _has(message: Message, field: str) -> bool:
    return message.HasField(field)


# --- inventory ---------------------------------------------------------------------------


def locations(request: Any) -> list[Location]:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    result = []
    if check.count("locations", request.locations, MAX_BATCH):
        check.distinct("locations", [location.id for location in request.locations])
    for index, message in enumerate(request.locations):
        field = f"locations[{index}]"
        check.identifier(f"{field}.id", message.id)
        check.text(f"{field}.display_name", message.display_name)
        check.text(f"{field}.postal_code", message.postal_code, MAX_POSTAL_CODE_LENGTH)
        if message.type not in {t.value for t in LocationType}:
            check.fail(f"{field}.type", "INVALID_FIELD", "must be a known location type")
        if not _has(message, "position"):
            check.fail(f"{field}.position", "MISSING_FIELD", "latitude and longitude are required")
        else:
            _coordinates(check, f"{field}.position", message.position)
        if message.country_code and not (
            len(message.country_code) == 2
            and message.country_code.isalpha()
            and message.country_code.isupper()
        ):
            check.fail(
                f"{field}.country_code", "INVALID_FIELD", "must be ISO 3166-1 alpha-2, e.g. US"
            )
        if not 0 <= message.shipment_cost <= MAX_SHIPMENT_COST:  # NaN fails every comparison
            check.fail(
                f"{field}.shipment_cost",
                "INVALID_FIELD",
                f"must be a number in [0, {MAX_SHIPMENT_COST:g}]",
            )
        if check.violations:
            continue
        result.append(
            Location(
                id=message.id,
                display_name=message.display_name,
                type=LocationType(message.type),
                latitude=message.position.latitude,
                longitude=message.position.longitude,
                postal_code=message.postal_code,
                country_code=message.country_code,
                ship_enabled=message.ship_enabled if message.HasField("ship_enabled") else True,
                shipment_cost=message.shipment_cost,
                priority=message.priority,
            )
        )
    check.done()
    return result


def _coordinates(check: Checker, field: str, position: Any) -> None:
    for name, limit in (("latitude", MAX_LATITUDE), ("longitude", MAX_LONGITUDE)):
        value = getattr(position, name)
        if not math.isfinite(value) or abs(value) > limit:
            check.fail(
                f"{field}.{name}",
                "INVALID_FIELD",
                f"must be a finite number in [-{limit:g}, {limit:g}]",
            )


def location_groups(request: Any) -> list[LocationGroup]:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    if check.count("location_groups", request.location_groups, MAX_BATCH):
        check.distinct("location_groups", [group.id for group in request.location_groups])
    for index, message in enumerate(request.location_groups):
        field = f"location_groups[{index}]"
        check.identifier(f"{field}.id", message.id)
        check.text(f"{field}.display_name", message.display_name)
        if check.count(f"{field}.location_ids", message.location_ids, MAX_GROUP_MEMBERS, minimum=0):
            check.distinct(f"{field}.location_ids", list(message.location_ids))
        for member, location_id in enumerate(message.location_ids):
            check.identifier(f"{field}.location_ids[{member}]", location_id)
    check.done()
    return [
        LocationGroup(message.id, message.display_name, tuple(message.location_ids))
        for message in request.location_groups
    ]


def _futures(check: Checker, field: str, messages: Sequence[Any]) -> tuple[Future, ...]:
    check.count(field, messages, MAX_FUTURES, minimum=0)
    futures = []
    for index, future in enumerate(messages):
        check.quantity(f"{field}[{index}].quantity", future.quantity)
        expected = (
            check.timestamp(f"{field}[{index}].expected_time", future.expected_time)
            if future.HasField("expected_time")
            else None
        )
        futures.append(Future(future.quantity, expected))
    if sum(future.quantity for future in messages) > MAX_QUANTITY:
        check.fail(field, "QUANTITY_TOO_LARGE", f"futures must total at most {MAX_QUANTITY}")
    return tuple(futures)


def stock_levels(request: Any) -> list[commands.StockLevel]:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    if check.count("levels", request.levels, MAX_BATCH):
        check.distinct("levels", [(level.location_id, level.sku) for level in request.levels])
    result = []
    for index, level in enumerate(request.levels):
        field = f"levels[{index}]"
        check.identifier(f"{field}.location_id", level.location_id)
        check.identifier(f"{field}.sku", level.sku)
        check.quantity(f"{field}.on_hand", level.on_hand, positive=False)
        check.quantity(f"{field}.safety_stock", level.safety_stock, positive=False)
        futures = _futures(check, f"{field}.futures", level.futures)
        result.append(
            commands.StockLevel(
                level.location_id,
                level.sku,
                level.on_hand,
                level.safety_stock,
                futures,
                (
                    check.timestamp(f"{field}.effective_time", level.effective_time)
                    if level.HasField("effective_time")
                    else None
                ),
            )
        )
    check.done()
    return result


def stock_adjustments(request: Any) -> list[commands.StockAdjustment]:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    if check.count("adjustments", request.adjustments, MAX_BATCH):
        check.distinct(
            "adjustments", [(item.location_id, item.sku) for item in request.adjustments]
        )
    for index, item in enumerate(request.adjustments):
        field = f"adjustments[{index}]"
        check.identifier(f"{field}.location_id", item.location_id)
        check.identifier(f"{field}.sku", item.sku)
        check.quantity(f"{field}.on_hand_delta", abs(item.on_hand_delta))
        check.text(f"{field}.reason", item.reason)
    check.done()
    return [
        commands.StockAdjustment(item.location_id, item.sku, item.on_hand_delta, item.reason)
        for item in request.adjustments
    ]


def availability(request: Any) -> tuple[list[str], list[Place]]:
    check = Checker()
    if check.count("skus", request.skus, MAX_AVAILABILITY_SKUS):
        check.distinct("skus", list(request.skus))
    for index, sku in enumerate(request.skus):
        check.identifier(f"skus[{index}]", sku)
    places = [Place.location(i) for i in request.location_ids] + [
        Place.group(i) for i in request.location_group_ids
    ]
    if check.count("location_ids", places, MAX_AVAILABILITY_PLACES):
        check.distinct("location_ids", list(request.location_ids))
        check.distinct("location_group_ids", list(request.location_group_ids))
    for index, location_id in enumerate(request.location_ids):
        check.identifier(f"location_ids[{index}]", location_id)
    for index, group_id in enumerate(request.location_group_ids):
        check.identifier(f"location_group_ids[{index}]", group_id)
    check.done()
    return list(request.skus), places


# --- reservations ------------------------------------------------------------------------


def _items(check: Checker, field: str, messages: Sequence[Any]) -> tuple[commands.Item, ...]:
    items = []
    check.count(field, messages, MAX_ITEMS)
    for index, message in enumerate(messages):
        check.identifier(f"{field}[{index}].sku", message.sku)
        place = check.place(f"{field}[{index}].place", message.place)
        check.quantity(f"{field}[{index}].quantity", message.quantity)
        items.append(commands.Item(message.sku, place, message.quantity))
    check.distinct(field, [(item.sku, item.place) for item in items])
    return tuple(items)


def create_reservation(request: Any) -> commands.CreateReservation:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    check.identifier("reservation_id", request.reservation_id, required=False)
    check.text("external_ref", request.external_ref)
    items = _items(check, "items", request.items)
    ttl_us = None
    if request.HasField("ttl"):
        ttl_us = _ttl(check, "ttl", request.ttl)
    check.done()
    return commands.CreateReservation(
        request.reservation_id, request.external_ref, items, request.allow_partial, ttl_us
    )


def transfer_reservation(request: Any) -> commands.TransferReservation:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    check.identifier("reservation_id", request.reservation_id)
    items = []
    check.count("items", request.items, MAX_ITEMS)
    for index, message in enumerate(request.items):
        field = f"items[{index}]"
        check.identifier(f"{field}.sku", message.sku)
        source = check.place(f"{field}.from_place", message.from_place)
        target = check.place(f"{field}.to_place", message.to_place)
        if source == target and source.id:
            check.fail(f"{field}.to_place", "INVALID_FIELD", "must differ from from_place")
        check.quantity(f"{field}.quantity", message.quantity)
        items.append(commands.TransferItem(message.sku, source, target, message.quantity))
    check.distinct("items", [(item.sku, item.from_place, item.to_place) for item in items])
    check.done()
    return commands.TransferReservation(
        request.reservation_id, tuple(items), request.ignore_availability_check
    )


def fulfill_reservation(request: Any) -> commands.FulfillReservation:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    check.identifier("reservation_id", request.reservation_id)
    items = _items(check, "items", request.items)
    check.done()
    return commands.FulfillReservation(request.reservation_id, items)


def release_reservation(request: Any) -> commands.ReleaseReservation:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    check.identifier("reservation_id", request.reservation_id)
    if request.release_all:
        if request.items:
            check.fail("items", "INVALID_FIELD", "must be empty when release_all is set")
        items: tuple[commands.Item, ...] = ()
    else:
        items = _items(check, "items", request.items)
    check.done()
    return commands.ReleaseReservation(request.reservation_id, items, request.release_all)


def reservation_id(request: Any) -> str:
    check = Checker()
    check.identifier("reservation_id", request.reservation_id)
    check.done()
    return str(request.reservation_id)


def page_after(check: Checker, token: str) -> str:
    """The id a page token stands for (tokens are opaque to clients: base64 of the last id)."""
    if not token:
        return ""
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        return raw.decode("utf-8")
    except (ValueError, UnicodeError):
        check.fail("page_token", "INVALID_FIELD", "is not a token this service issued")
        return ""


def page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode("utf-8")).decode("ascii")


def page(request: Any) -> tuple[int, str]:
    """(page size, id to continue after) of a list request."""
    check = Checker()
    size, token = check.page(request.page_size, request.page_token)
    after = page_after(check, token)
    check.done()
    return size, after


def reservation_page(request: Any) -> tuple[int, str, ReservationState | None]:
    """(page size, id to continue after, state filter or None) of a ListReservations request."""
    check = Checker()
    size, token = check.page(request.page_size, request.page_token)
    after = page_after(check, token)
    state = None
    if request.state in {known.value for known in ReservationState}:
        state = ReservationState(request.state)
    elif request.state:
        check.fail("state", "INVALID_FIELD", "must be a known reservation state or unspecified")
    check.done()
    return size, after, state


# --- routing -----------------------------------------------------------------------------

MAX_ORDER_LINES = 100
MAX_CANDIDATES = 10_000
MAX_ALTERNATIVES = 10
DEFAULT_TIME_LIMIT_S = 2.0
MAX_TIME_LIMIT_S = 60.0


def route_order(request: Any) -> routing.Order:
    check = Checker()
    check.identifier("order_id", request.order_id)
    if check.count("lines", request.lines, MAX_ORDER_LINES):
        check.distinct("lines", [line.sku for line in request.lines])
    for index, line in enumerate(request.lines):
        check.identifier(f"lines[{index}].sku", line.sku)
        check.quantity(f"lines[{index}].quantity", line.quantity)
        if line.quantity > MAX_ROUTING_QUANTITY:
            check.fail(
                f"lines[{index}].quantity",
                "QUANTITY_TOO_LARGE",
                f"must be at most {MAX_ROUTING_QUANTITY} for routing",
            )
    destination = _destination(check, request)
    if request.location_group_id and request.location_ids:
        check.fail(
            "location_ids", "INVALID_FIELD", "give location_group_id or location_ids, not both"
        )
    if request.location_group_id:
        check.identifier("location_group_id", request.location_group_id)
    if check.count("location_ids", request.location_ids, MAX_CANDIDATES, minimum=0):
        check.distinct("location_ids", list(request.location_ids))
    for index, location_id in enumerate(request.location_ids):
        check.identifier(f"location_ids[{index}]", location_id)
    options = _routing_options(check, request.options)
    commit = _commit_mode(check, request)
    check.done()
    return routing.Order(
        order_id=request.order_id,
        lines=tuple((line.sku, line.quantity) for line in request.lines),
        destination=destination,
        group_id=request.location_group_id,
        location_ids=tuple(request.location_ids),
        excluded=frozenset(request.options.excluded_location_ids),
        options=options,
        commit=commit,
        reservation_id=request.reservation_id,
        reservation_ttl_us=(
            _duration_us(request.reservation_ttl) if request.HasField("reservation_ttl") else None
        ),
    )


def _duration_us(message: Any) -> int:
    return int(message.seconds) * 1_000_000 + int(message.nanos) // 1000


def _destination(check: Checker, request: Any) -> tuple[float, float]:
    kind = request.destination.WhichOneof("kind") if request.HasField("destination") else None
    if kind == "position":
        _coordinates(check, "destination.position", request.destination.position)
        return (request.destination.position.latitude, request.destination.position.longitude)
    if kind == "postal_code":
        postal = request.destination.postal_code
        if not _short_postal_code(check, "destination.postal_code", postal):
            return (0.0, 0.0)
        found = solver.geo.postal_code_centroid(postal.country_code, postal.postal_code)
        if found is None:
            check.fail(
                "destination.postal_code",
                "UNKNOWN_POSTAL_CODE",
                f"{postal.country_code} {postal.postal_code!r} is not in the bundled postal-code"
                " table (US ZIP codes are supported)",
            )
            return (0.0, 0.0)
        return found
    check.fail("destination", "MISSING_FIELD", "set position or postal_code")
    return (0.0, 0.0)


def _short_postal_code(check: Checker, field: str, postal: Any) -> bool:
    """Whether the codes are short enough to look up (and to echo in an error)."""
    short = True
    for name, limit in (
        ("country_code", MAX_COUNTRY_CODE_LENGTH),
        ("postal_code", MAX_POSTAL_CODE_LENGTH),
    ):
        if len(getattr(postal, name)) > limit:
            check.fail(f"{field}.{name}", "INVALID_FIELD", f"must be at most {limit} characters")
            short = False
    return short


def _routing_options(check: Checker, options: Any) -> solver.Options:
    if options.objective not in (0, 1, 2):
        check.fail("options.objective", "INVALID_FIELD", "must be a known objective")
    if not 0 <= options.cost_per_km <= MAX_COST_PER_KM:  # NaN fails every comparison
        check.fail(
            "options.cost_per_km", "INVALID_FIELD", f"must be a number in [0, {MAX_COST_PER_KM:g}]"
        )
    if options.max_shipments < 0:
        check.fail("options.max_shipments", "INVALID_FIELD", "must not be negative")
    if not 0 <= options.alternatives <= MAX_ALTERNATIVES:
        check.fail("options.alternatives", "INVALID_FIELD", f"must be in [0, {MAX_ALTERNATIVES}]")
    if check.count(
        "options.excluded_location_ids", options.excluded_location_ids, MAX_CANDIDATES, minimum=0
    ):
        for index, location_id in enumerate(options.excluded_location_ids):
            check.identifier(f"options.excluded_location_ids[{index}]", location_id)
    time_limit = DEFAULT_TIME_LIMIT_S
    if options.HasField("time_limit"):
        time_limit_us = check.duration("options.time_limit", options.time_limit)
        time_limit = DEFAULT_TIME_LIMIT_S if time_limit_us is None else time_limit_us / 1e6
        if time_limit_us is not None and not 0 < time_limit <= MAX_TIME_LIMIT_S:
            check.fail(
                "options.time_limit", "INVALID_FIELD", f"must be in (0, {MAX_TIME_LIMIT_S:g}] s"
            )
            time_limit = DEFAULT_TIME_LIMIT_S
    return solver.Options(
        objective=solver.Objective.COST
        if options.objective == 2
        else solver.Objective.LEXICOGRAPHIC,
        cost_per_km=options.cost_per_km if math.isfinite(options.cost_per_km) else 0.0,
        max_shipments=options.max_shipments if options.max_shipments > 0 else None,
        allow_partial=options.allow_partial,
        keep_lines_whole=options.keep_lines_whole,
        alternatives=1 + max(0, min(options.alternatives, MAX_ALTERNATIVES)),
        time_limit=time_limit,
    )


def _commit_mode(check: Checker, request: Any) -> routing.CommitMode:
    if request.commit not in (0, 1, 2, 3):
        check.fail("commit", "INVALID_FIELD", "must be a known commit mode")
        return routing.CommitMode.DRY_RUN
    mode = routing.CommitMode(request.commit or 1)
    check.identifier(
        "reservation_id", request.reservation_id, required=mode is routing.CommitMode.TRANSFER
    )
    if request.HasField("reservation_ttl"):
        if mode is not routing.CommitMode.RESERVE:
            check.fail("reservation_ttl", "INVALID_FIELD", "applies to COMMIT_MODE_RESERVE only")
        else:
            _ttl(check, "reservation_ttl", request.reservation_ttl)
    return mode


def _ttl(check: Checker, field: str, message: Any) -> int | None:
    """A reservation's time to live in microseconds: positive and at most 30 days."""
    ttl_us = check.duration(field, message)
    if ttl_us is not None and not 0 < ttl_us <= MAX_TTL_US:
        check.fail(field, "INVALID_FIELD", "must be positive and at most 30 days")
    return ttl_us
