"""What every service's validation shares: the checker that collects violations, the field
checks and the limits common to all services (each is the one documented in the protos)."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from omniroute.inventory.v1.inventory_pb2 import GeoPoint
from omniroute.inventory.v1.inventory_pb2 import Place as PlaceMessage

from server.domain.errors import FieldViolation, InvalidRequest
from server.domain.model import MAX_QUANTITY, Place
from server.domain.routing import MAX_LATITUDE, MAX_LONGITUDE

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 256
MAX_PAGE_SIZE = 1000
# A page token is the base64 of the last id's UTF-8 (at most 4 bytes per character).
MAX_PAGE_TOKEN_LENGTH = 4 * math.ceil(4 * MAX_ID_LENGTH / 3)
DEFAULT_PAGE_SIZE = 100
MAX_TTL_US = 30 * 24 * 3600 * 1_000_000
MAX_POSTAL_CODE_LENGTH = 32
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

    def place(self, field: str, message: PlaceMessage) -> Place:
        kind = message.WhichOneof("kind")
        if kind == "location_id":
            return Place.location(self.identifier(f"{field}.location_id", message.location_id))
        if kind == "location_group_id":
            return Place.group(
                self.identifier(f"{field}.location_group_id", message.location_group_id)
            )
        self.fail(field, "MISSING_FIELD", "set location_id or location_group_id")
        return Place.location("")

    def timestamp(self, field: str, message: Timestamp) -> int:
        """Microseconds since the epoch of a google.protobuf.Timestamp in its defined range."""
        if not (
            MIN_TIMESTAMP_S <= message.seconds <= MAX_TIMESTAMP_S
            and 0 <= message.nanos < 1_000_000_000
        ):
            self.fail(field, "INVALID_FIELD", "must be a valid time between years 1 and 9999")
            return 0
        return micros(message)

    def duration(self, field: str, message: Duration) -> int | None:
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

    def coordinates(self, field: str, position: GeoPoint) -> None:
        for name, limit in (("latitude", MAX_LATITUDE), ("longitude", MAX_LONGITUDE)):
            value = getattr(position, name)
            if not math.isfinite(value) or abs(value) > limit:
                self.fail(
                    f"{field}.{name}",
                    "INVALID_FIELD",
                    f"must be a finite number in [-{limit:g}, {limit:g}]",
                )

    def ttl(self, field: str, message: Duration) -> int | None:
        """A reservation's time to live in microseconds: positive and at most 30 days."""
        ttl_us = self.duration(field, message)
        if ttl_us is not None and not 0 < ttl_us <= MAX_TTL_US:
            self.fail(field, "INVALID_FIELD", "must be positive and at most 30 days")
        return ttl_us


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Unicode control characters (category Cc): C0, DEL and C1."""


def micros(message: Timestamp | Duration) -> int:
    """Microseconds of a google.protobuf.Timestamp (since the epoch) or Duration."""
    return int(message.seconds) * 1_000_000 + int(message.nanos) // 1000


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
