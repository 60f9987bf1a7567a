"""AvailabilityFeedService: the change log, streamed (WatchAvailability) and paged
(ListAvailabilityChanges); availability_feed.proto states the contract."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Sequence

from omniroute.inventory.v1 import availability_feed_pb2 as feed
from omniroute.inventory.v1 import availability_feed_pb2_grpc

from server.domain.commands import Availability
from server.domain.errors import FieldViolation, InvalidRequest, OutOfRange
from server.domain.ledger import Ledger
from server.domain.port import UnitOfWork
from server.feed import ChangeFeed
from server.transport import convert
from server.transport.status import Context, rpc, stream_rpc
from server.transport.transactions import Transactions
from server.transport.validate import feed as validate
from server.transport.validate.feed import Filter, token

BATCH = 500
"""Changes per streamed message: a slow consumer holds the server to one such batch."""

Entries = list[tuple[int, int, Availability]]


class AvailabilityFeedServicer(availability_feed_pb2_grpc.AvailabilityFeedServiceServicer):
    def __init__(self, transactions: Transactions, ledger: Ledger, changes: ChangeFeed) -> None:
        self.tx = transactions
        self.ledger = ledger
        self.changes = changes

    @rpc
    async def ListAvailabilityChanges(
        self, request: feed.ListAvailabilityChangesRequest, context: Context
    ) -> feed.ListAvailabilityChangesResponse:
        wanted, after, size = validate.list_changes(request)
        await self.changes.catch_up()
        found, through, newest = await self.tx.query(
            functools.partial(_read, after=after, limit=size, wanted=wanted), big=True
        )
        return feed.ListAvailabilityChangesResponse(
            changes=_changes(found), next_page_token=token(through), caught_up=through >= newest
        )

    @stream_rpc
    async def WatchAvailability(
        self, request: feed.WatchAvailabilityRequest, context: Context
    ) -> AsyncIterator[feed.WatchAvailabilityResponse]:
        watch = validate.watch(request)
        self.changes.watchers += 1
        try:
            async for response in self._watch(watch):
                yield response
        finally:
            self.changes.watchers -= 1

    async def _watch(self, watch: validate.Watch) -> AsyncIterator[feed.WatchAvailabilityResponse]:
        wanted = watch.filter
        if watch.snapshot:
            await self.changes.catch_up()
            places = wanted.places()
            records, position = await self.tx.query(
                lambda uow: (
                    self.ledger.availability(uow, wanted.skus, places),
                    uow.change_log_bounds()[1],
                ),
                big=True,
            )
            snapshot = convert.availability_response(records).records
            yield feed.WatchAvailabilityResponse(snapshot=snapshot, resume_token=token(position))
        elif watch.after is None:
            position = await self.tx.query(lambda uow: uow.change_log_bounds()[1])
            yield feed.WatchAvailabilityResponse(resume_token=token(position))
        else:
            position = watch.after
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        matches = _matcher(wanted)
        checked = False  # the first read is the log's: it refuses a token already pruned
        while True:
            held = self.changes.recent(position, BATCH, matches) if checked else None
            checked = True
            if held is not None:
                (found, through), newest = held, self.changes.newest
            else:  # further behind than the feed holds in memory: from the log
                found, through, newest = await self.tx.query(
                    functools.partial(_read, after=position, limit=BATCH, wanted=wanted)
                )
            position = through
            if found:
                yield feed.WatchAvailabilityResponse(
                    changes=_changes(found), resume_token=token(position)
                )
                quiet_since = loop.time()
                continue
            if position < newest:
                continue  # the filter left a whole window out: read on
            quiet = watch.heartbeat_s - (loop.time() - quiet_since)
            if quiet > 0 and await self.changes.wait_past(position, quiet):
                continue
            yield feed.WatchAvailabilityResponse(resume_token=token(position))  # a heartbeat
            quiet_since = loop.time()


def _read(
    uow: UnitOfWork, after: int | None, limit: int, wanted: Filter
) -> tuple[Entries, int, int]:
    """The entries after `after` (None: the oldest kept), where the next read goes on, and the
    log's newest entry; a position already pruned is OUT_OF_RANGE."""
    pruned, newest = uow.change_log_bounds()
    if after is None:
        after = pruned
    if after < pruned:
        raise OutOfRange(
            "CHANGE_TOKEN_EXPIRED",
            "the token is older than the change log keeps: start again from a snapshot",
            oldest_token=token(pruned),
        )
    if after > newest:
        raise InvalidRequest(
            [FieldViolation("token", "INVALID_FIELD", "is not a token this change log gave")]
        )
    found, through = uow.changes_after(
        after, newest, limit, wanted.skus, wanted.locations, wanted.groups
    )
    return found, through, newest


def _matcher(wanted: Filter) -> Callable[[Availability], bool]:
    skus, locations, groups = set(wanted.skus), set(wanted.locations), set(wanted.groups)
    places = bool(locations or groups)

    def matches(record: Availability) -> bool:
        if skus and record.sku not in skus:
            return False
        if places:
            return record.place.id in (locations if record.place.is_location else groups)
        return True

    return matches


def _changes(found: Sequence[tuple[int, int, Availability]]) -> list[feed.AvailabilityChange]:
    records = convert.availability_response([record for _, _, record in found]).records
    changes = []
    for (seq, commit_us, _record), message in zip(found, records, strict=True):
        change = feed.AvailabilityChange(sequence=seq, token=token(seq), record=message)
        change.commit_time.CopyFrom(convert.timestamp(commit_us))
        changes.append(change)
    return changes
