"""Stock imports: a source's records applied batch by batch with SetStock's rules, each batch in
one unit of work together with the import's position, so that a resumed import applies every
line exactly once and a finished one sent again changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from server.domain import commands
from server.domain.errors import AlreadyExists, FailedPrecondition
from server.domain.ledger import Ledger
from server.domain.model import StockRecord
from server.domain.port import UnitOfWork


@dataclass(frozen=True, slots=True)
class ImportCounts:
    applied: int = 0
    stale: int = 0
    failed: int = 0

    def __add__(self, other: ImportCounts) -> ImportCounts:
        return ImportCounts(
            self.applied + other.applied, self.stale + other.stale, self.failed + other.failed
        )


@dataclass(frozen=True, slots=True)
class StockImport:
    """Where an import stands: its last committed source line and what its records became."""

    import_id: str
    fingerprint: str
    through_line: int = 0
    counts: ImportCounts = ImportCounts()
    create_us: int | None = None  # None: nothing committed yet


@dataclass(frozen=True, slots=True)
class ImportedLevel:
    line: int
    record_id: str
    level: commands.StockLevel


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why the record at `line` was not applied (`reason` as ErrorInfo reasons)."""

    line: int
    record_id: str
    reason: str
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ImportBatch:
    """Source lines first_line..through_line: the valid records among them, and the errors of
    those found invalid before reaching the ledger (by the server or, counted only, the client)."""

    first_line: int
    through_line: int
    records: Sequence[ImportedLevel]
    invalid: Sequence[RecordError] = ()
    rejected_lines: int = 0


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    through_line: int
    counts: ImportCounts
    errors: list[RecordError] = field(default_factory=list)
    already_committed: bool = False


class ImportRecords(Protocol):
    """The storage an import needs beyond the port's (server/storage/sql.py implements it)."""

    def stock_import(self, import_id: str) -> StockImport | None: ...
    def put_stock_import(self, stock_import: StockImport, now_us: int) -> None: ...
    def stock_page(self, after: tuple[str, str], limit: int) -> list[StockRecord]:
        """Up to `limit` stock records after (sku, location id), in that order."""
        ...


def records(uow: UnitOfWork) -> ImportRecords:
    """The unit of work as the import storage every backend's unit of work also is."""
    return cast(ImportRecords, uow)


def open_import(uow: UnitOfWork, import_id: str, fingerprint: str) -> StockImport:
    """Where the import stands (nothing committed if new); an id used for other content is
    refused."""
    stored = records(uow).stock_import(import_id)
    if stored is None:
        return StockImport(import_id, fingerprint)
    if stored.fingerprint != fingerprint:
        raise AlreadyExists(
            "IMPORT_ID_REUSED",
            f"import {import_id} was already used for other content",
            import_id=import_id,
        )
    return stored


def apply_batch(
    ledger: Ledger, uow: UnitOfWork, import_id: str, fingerprint: str, batch: ImportBatch
) -> BatchOutcome:
    """Applies the batch's lines after where the import stands and moves the import past them."""
    stock_import = open_import(uow, import_id, fingerprint)
    standing = stock_import.through_line
    if batch.through_line <= standing:
        return BatchOutcome(batch.through_line, ImportCounts(), already_committed=True)
    if batch.first_line > standing + 1:
        raise FailedPrecondition(
            "IMPORT_OUT_OF_ORDER",
            f"import {import_id} stands at line {standing}: send the lines after it",
            import_id=import_id,
            through_line=standing,
        )
    resumed = batch.first_line <= standing  # cut elsewhere by an earlier client: skip the start
    wanted = [record for record in batch.records if record.line > standing]
    errors = [error for error in batch.invalid if error.line > standing]
    errors += _unknown_locations(uow, wanted)
    failed = {error.line for error in errors}
    applied = stale = 0
    for run in _runs([record for record in wanted if record.line not in failed]):
        for result in ledger.set_stock(uow, [record.level for record in run]):
            applied += result.applied
            stale += not result.applied
    rejected = 0 if resumed else batch.rejected_lines
    counts = ImportCounts(applied, stale, len(errors) + rejected)
    first = stock_import.create_us is None
    now = ledger.clock()
    records(uow).put_stock_import(
        replace(
            stock_import,
            through_line=batch.through_line,
            counts=stock_import.counts + counts,
            create_us=now if first else stock_import.create_us,
        ),
        now,
    )
    return BatchOutcome(batch.through_line, counts, sorted(errors, key=lambda e: e.line))


def _unknown_locations(uow: UnitOfWork, wanted: Sequence[ImportedLevel]) -> list[RecordError]:
    named = {record.level.location_id for record in wanted}
    known = uow.known_locations(named)
    return [
        RecordError(
            record.line,
            record.record_id,
            "LOCATION_NOT_FOUND",
            "level.location_id",
            f"location {record.level.location_id} does not exist",
        )
        for record in wanted
        if record.level.location_id not in known
    ]


def _runs(wanted: Sequence[ImportedLevel]) -> list[list[ImportedLevel]]:
    """The records cut into runs of distinct (SKU, location), in line order: SetStock takes each
    pair once per call, and a later line for the same pair must land after the earlier."""
    runs: list[list[ImportedLevel]] = [[]]
    seen: set[tuple[str, str]] = set()
    for record in wanted:
        key = (record.level.sku, record.level.location_id)
        if key in seen:
            runs.append([])
            seen = set()
        seen.add(key)
        runs[-1].append(record)
    return [run for run in runs if run]
