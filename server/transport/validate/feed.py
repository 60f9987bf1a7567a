"""AvailabilityFeedService's requests, checked as documented in availability_feed.proto."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from omniroute.inventory.v1 import availability_feed_pb2 as feed

from server.domain.model import Place
from server.transport.validate.checker import Checker

MAX_FILTER_IDS = 1000
MAX_SNAPSHOT = 100
DEFAULT_HEARTBEAT_US = 10_000_000
HEARTBEAT_RANGE_US = (1_000_000, 60_000_000)
_TOKEN_PREFIX = b"oc1"


@dataclass(frozen=True)
class Filter:
    skus: tuple[str, ...]
    locations: tuple[str, ...]
    groups: tuple[str, ...]

    def places(self) -> list[Place]:
        return [*map(Place.location, self.locations), *map(Place.group, self.groups)]


@dataclass(frozen=True)
class Watch:
    filter: Filter
    after: int | None  # None: from the log's end (or the snapshot's token)
    snapshot: bool
    heartbeat_s: float


def token(seq: int) -> str:
    """The opaque token of a position in the log."""
    return base64.urlsafe_b64encode(_TOKEN_PREFIX + seq.to_bytes(8, "big")).decode().rstrip("=")


def _position(check: Checker, field: str, text: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raw = b""
    if len(raw) != len(_TOKEN_PREFIX) + 8 or not raw.startswith(_TOKEN_PREFIX):
        check.fail(field, "INVALID_FIELD", "is not a token this change log gave")
        return 0
    return int.from_bytes(raw[len(_TOKEN_PREFIX) :], "big")


def _filter(check: Checker, message: feed.AvailabilityFilter) -> Filter:
    lists = []
    for name in ("skus", "location_ids", "location_group_ids"):
        ids = list(getattr(message, name))
        field = f"filter.{name}"
        if len(ids) > MAX_FILTER_IDS:
            check.fail(field, "TOO_MANY_ITEMS", f"has {len(ids)} entries; at most {MAX_FILTER_IDS}")
        for index, value in enumerate(ids[:MAX_FILTER_IDS]):
            check.identifier(f"{field}[{index}]", value)
        check.distinct(field, ids)
        lists.append(tuple(ids))
    return Filter(*lists)


def watch(request: feed.WatchAvailabilityRequest) -> Watch:
    check = Checker()
    wanted = _filter(check, request.filter)
    start = request.WhichOneof("start")
    after = (
        _position(check, "resume_token", request.resume_token) if start == "resume_token" else None
    )
    snapshot = start == "snapshot" and request.snapshot
    if snapshot:
        if not wanted.skus or not (wanted.locations or wanted.groups):
            check.fail("filter", "MISSING_FIELD", "a snapshot needs skus and places")
        elif len(wanted.skus) > MAX_SNAPSHOT or len(wanted.places()) > MAX_SNAPSHOT:
            check.fail(
                "filter",
                "TOO_MANY_ITEMS",
                f"a snapshot covers at most {MAX_SNAPSHOT} SKUs x {MAX_SNAPSHOT} places",
            )
    heartbeat_us = DEFAULT_HEARTBEAT_US
    if request.HasField("heartbeat_interval"):
        heartbeat_us = check.duration("heartbeat_interval", request.heartbeat_interval) or 0
        low, high = HEARTBEAT_RANGE_US
        if not low <= heartbeat_us <= high:
            check.fail("heartbeat_interval", "INVALID_FIELD", "must be between 1 s and 60 s")
    check.done()
    return Watch(wanted, after, snapshot, heartbeat_us / 1e6)


def list_changes(request: feed.ListAvailabilityChangesRequest) -> tuple[Filter, int | None, int]:
    """The filter, the position to continue after (None: the oldest kept) and the page size."""
    check = Checker()
    wanted = _filter(check, request.filter)
    after = _position(check, "page_token", request.page_token) if request.page_token else None
    size, _token = check.page(request.page_size, "")
    check.done()
    return wanted, after, size
