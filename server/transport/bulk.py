"""BulkService: stock imported batch by batch over one stream, and stock, availability and
reservations exported from one snapshot (bulk.proto states the contract)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from omniroute.inventory.v1 import bulk_pb2 as bulk
from omniroute.inventory.v1 import bulk_pb2_grpc

from server.domain import imports
from server.domain.errors import FieldViolation, InvalidRequest
from server.domain.exports import availability_pages, reservation_pages, stock_pages
from server.domain.ledger import Ledger
from server.domain.model import StockRecord
from server.domain.port import UnitOfWork
from server.transport import convert
from server.transport.handlers import Undecodable
from server.transport.status import Context, stream_rpc
from server.transport.transactions import Transactions, retrying
from server.transport.validate import bulk as validate

EXPORT_PAGES_AHEAD = 4
"""Pages an export reads ahead of its client: memory stays flat however big the export."""


class BulkServicer(bulk_pb2_grpc.BulkServiceServicer):
    def __init__(self, transactions: Transactions, ledger: Ledger) -> None:
        self.tx = transactions
        self.ledger = ledger

    @stream_rpc
    async def ImportStock(
        self, requests: AsyncIterator[bulk.ImportStockRequest], context: Context
    ) -> AsyncIterator[bulk.ImportStockResponse]:
        stream = aiter(requests)
        first = await anext(stream, None)
        if first is None:
            return
        import_id, fingerprint = validate.header(_decoded(first))
        standing = await self.tx.query(lambda uow: imports.open_import(uow, import_id, fingerprint))
        yield bulk.ImportStockResponse(status=_status(standing))
        after = 0
        async for request in stream:  # the next batch is read once this one is answered
            batch = validate.batch(_decoded(request), after)
            after = batch.through_line
            outcome = await self._commit(import_id, fingerprint, batch)
            yield bulk.ImportStockResponse(batch=_batch_result(outcome))

    async def _commit(
        self, import_id: str, fingerprint: str, batch: imports.ImportBatch
    ) -> imports.BatchOutcome:
        """The batch in one write unit of work, on a worker thread (a thousand records are too
        long for the event loop)."""
        skus = {record.level.sku for record in batch.records}

        def attempt() -> imports.BatchOutcome:
            with self.tx.store.write(skus) as uow:
                return imports.apply_batch(self.ledger, uow, import_id, fingerprint, batch)

        outcome = await asyncio.to_thread(retrying, attempt)
        self.tx.committed()
        return outcome

    @stream_rpc
    async def ExportStock(
        self, request: bulk.ExportStockRequest, context: Context
    ) -> AsyncIterator[bulk.ExportStockResponse]:
        async for page in self._snapshot(stock_pages):
            yield bulk.ExportStockResponse(records=[_exported(record) for record in page])

    @stream_rpc
    async def ExportAvailability(
        self, request: bulk.ExportAvailabilityRequest, context: Context
    ) -> AsyncIterator[bulk.ExportAvailabilityResponse]:
        async for page in self._snapshot(lambda uow: availability_pages(self.ledger, uow)):
            records = convert.availability_response(page).records
            yield bulk.ExportAvailabilityResponse(records=records)

    @stream_rpc
    async def ExportReservations(
        self, request: bulk.ExportReservationsRequest, context: Context
    ) -> AsyncIterator[bulk.ExportReservationsResponse]:
        async for page in self._snapshot(reservation_pages):
            reservations = [convert.reservation(reservation) for reservation in page]
            yield bulk.ExportReservationsResponse(reservations=reservations)

    async def _snapshot(
        self, pages: Callable[[UnitOfWork], Iterator[list[Any]]]
    ) -> AsyncIterator[list[Any]]:
        """The pages read in one read unit of work on a worker thread, handed over through a
        bounded queue: the reader waits while the client is EXPORT_PAGES_AHEAD pages behind."""
        ahead: queue.Queue[list[Any] | BaseException | None] = queue.Queue(EXPORT_PAGES_AHEAD)
        stop = threading.Event()

        def hand_over(item: list[Any] | BaseException | None) -> None:
            while not stop.is_set():
                try:
                    ahead.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def read() -> None:
            try:
                with self.tx.store.read() as uow:
                    for page in pages(uow):
                        if stop.is_set():
                            return
                        hand_over(page)
                hand_over(None)
            except BaseException as error:  # handed to the stream, which raises it
                hand_over(error)

        def take() -> list[Any] | BaseException | None:
            while not stop.is_set():
                try:
                    return ahead.get(timeout=0.1)
                except queue.Empty:
                    continue
            return None

        reader = asyncio.get_running_loop().run_in_executor(None, read)
        try:
            while (item := await asyncio.to_thread(take)) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            await reader


def _decoded(request: Any) -> bulk.ImportStockRequest:
    if isinstance(request, Undecodable):
        raise InvalidRequest(
            [
                FieldViolation(
                    "request",
                    "MALFORMED_REQUEST",
                    f"the bytes sent are not a valid {request.message_type}: {request.error}",
                )
            ]
        )
    message: bulk.ImportStockRequest = request
    return message


def _counts(counts: imports.ImportCounts) -> bulk.ImportCounts:
    return bulk.ImportCounts(applied=counts.applied, stale=counts.stale, failed=counts.failed)


def _status(standing: imports.StockImport) -> bulk.ImportStatus:
    status = bulk.ImportStatus(
        import_id=standing.import_id,
        through_line=standing.through_line,
        counts=_counts(standing.counts),
    )
    if standing.create_us is not None:
        status.create_time.CopyFrom(convert.timestamp(standing.create_us))
    return status


def _batch_result(outcome: imports.BatchOutcome) -> bulk.ImportBatchResult:
    return bulk.ImportBatchResult(
        through_line=outcome.through_line,
        counts=_counts(outcome.counts),
        errors=[
            bulk.ImportRecordError(
                line=error.line,
                record_id=error.record_id,
                reason=error.reason,
                field=error.field,
                message=error.message,
            )
            for error in outcome.errors
        ],
        already_committed=outcome.already_committed,
    )


def _exported(record: StockRecord) -> bulk.ExportedStockRecord:
    message = bulk.ExportedStockRecord(reserved=record.reserved)
    level = message.level
    level.location_id = record.location_id
    level.sku = record.sku
    level.on_hand = record.on_hand
    level.safety_stock = record.safety_stock
    level.futures.extend(convert.future(future) for future in record.futures)
    if record.effective_us is not None:
        level.effective_time.CopyFrom(convert.timestamp(record.effective_us))
    return message
