"""BulkService's requests: an import's header, and its batches, whose bad records become
per-record errors instead of failing the call."""

from __future__ import annotations

from omniroute.inventory.v1 import bulk_pb2 as bulk

from server.domain import commands
from server.domain.imports import ImportBatch, ImportedLevel, RecordError
from server.transport.validate.checker import Checker
from server.transport.validate.inventory import MAX_BATCH, stock_futures


def header(request: bulk.ImportStockRequest) -> tuple[str, str]:
    """The import's id and fingerprint, from the stream's first request."""
    check = Checker()
    if request.WhichOneof("part") != "header":
        check.fail("header", "MISSING_FIELD", "the first request must carry the import's header")
    check.identifier("header.import_id", request.header.import_id)
    check.text("header.fingerprint", request.header.fingerprint, 128)
    check.done()
    return request.header.import_id, request.header.fingerprint


def batch(request: bulk.ImportStockRequest, after_line: int) -> ImportBatch:
    """A batch whose lines follow `after_line` (the stream's previous batch); its invalid
    records become errors."""
    check = Checker()
    if request.WhichOneof("part") != "batch":
        check.fail("batch", "MISSING_FIELD", "every request after the first must carry a batch")
        check.done()
    message = request.batch
    check.count("batch.records", message.records, MAX_BATCH, minimum=0)
    if message.first_line <= after_line:
        check.fail("batch.first_line", "INVALID_FIELD", f"must be after line {after_line}")
    if message.through_line < message.first_line:
        check.fail("batch.through_line", "INVALID_FIELD", "must be at least first_line")
    if not 0 <= message.rejected_lines <= message.through_line - message.first_line + 1:
        check.fail("batch.rejected_lines", "INVALID_FIELD", "must count lines of the batch")
    line = message.first_line - 1
    for index, record in enumerate(message.records):
        if not line < record.line <= message.through_line:
            check.fail(
                f"batch.records[{index}].line",
                "INVALID_FIELD",
                "must increase within first_line..through_line",
            )
        line = record.line
    check.done()
    levels, invalid = [], []
    for record in message.records:
        level = _level(record)
        if isinstance(level, RecordError):
            invalid.append(level)
        else:
            levels.append(ImportedLevel(record.line, record.record_id, level))
    return ImportBatch(
        message.first_line, message.through_line, levels, invalid, message.rejected_lines
    )


def _level(record: bulk.ImportedStockLevel) -> commands.StockLevel | RecordError:
    """The record's level, or why it is not one (its first problem)."""
    check = Checker()
    check.text("record_id", record.record_id, 128)
    level = record.level
    check.identifier("level.location_id", level.location_id)
    check.identifier("level.sku", level.sku)
    check.quantity("level.on_hand", level.on_hand, positive=False)
    check.quantity("level.safety_stock", level.safety_stock, positive=False)
    futures = stock_futures(check, "level.futures", level.futures)
    effective = (
        check.timestamp("level.effective_time", level.effective_time)
        if level.HasField("effective_time")
        else None
    )
    if check.violations:
        first = check.violations[0]
        return RecordError(
            record.line, record.record_id[:128], first.reason, first.field, first.description
        )
    return commands.StockLevel(
        level.location_id, level.sku, level.on_hand, level.safety_stock, futures, effective
    )
