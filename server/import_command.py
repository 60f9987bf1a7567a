"""`omniroute import stock|locations|groups FILE`: a back office's files into a running server.

Stock streams through BulkService.ImportStock, committed in batches that the server remembers,
so an import cut short resumes where it stopped when run again; locations and groups go through
UpsertLocations and UpsertLocationGroups in batches. Bad records never stop the good ones: each
is written with its line number to the error file. Exit status: 0 when every record was
applied (or skipped as stale), 3 when some failed, 1 when the server could not be reached or
refused the import."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from omniroute.inventory.v1 import bulk_pb2 as bulk

from server import bulk_files
from server.bulk_files import BadRecord, Row, Source
from server.client_connection import call_metadata, connection_flags, open_channel

SOME_RECORDS_FAILED = 3
UNANSWERED_BATCHES = 4
"""Batches the client sends ahead of the server's answers: enough to keep the server busy,
few enough that neither side buffers more than a few thousand records."""


def add_parser(commands: Any) -> None:
    command = commands.add_parser(
        "import",
        help="import stock, locations or groups from NDJSON or CSV files",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    kinds = command.add_subparsers(dest="kind", required=True, metavar="KIND")
    common = argparse.ArgumentParser(add_help=False, parents=[connection_flags()])
    common.add_argument("file", help="NDJSON or CSV (with a header), gzipped or not; - for stdin")
    common.add_argument(
        "--format", choices=bulk_files.FORMATS, help="default: csv for *.csv(.gz), else ndjson"
    )
    common.add_argument(
        "--errors", help="where to write the failed records (default: FILE.errors.ndjson)"
    )
    common.add_argument(
        "--batch-size", type=int, default=1000, help="records per batch (1 to 1000)"
    )
    common.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )
    stock = kinds.add_parser(
        "stock",
        parents=[common],
        help="stock levels in OCI's inventory-record shape",
        description="Stock levels, one per line: recordId, location, sku, onHand, "
        "safetyStockCount, futures [{quantity, expectedDate}], effectiveDate (CSV: the same "
        "columns, futures as a JSON cell). Run again, an import resumes after its last "
        "committed line; run after it finished, it changes nothing.",
    )
    stock.add_argument(
        "--import-id", help="name of the import (default: sha256 of the file's bytes)"
    )
    stock.set_defaults(run=_import_stock)
    locations = kinds.add_parser(
        "locations",
        parents=[common],
        help="locations (UpsertLocations' fields in JSON names; CSV: flat columns)",
    )
    locations.set_defaults(run=_import_network, upsert="UpsertLocations")
    groups = kinds.add_parser(
        "groups",
        parents=[common],
        help="location groups: id, displayName, locationIds (CSV: ids split by spaces or ;)",
    )
    groups.set_defaults(run=_import_network, upsert="UpsertLocationGroups")


# --- reporting -------------------------------------------------------------------------------


class Report:
    """Failed records into the error file (opened on the first), progress and the summary."""

    def __init__(self, args: argparse.Namespace, source: Source, total: int | None) -> None:
        self.path = Path(
            args.errors or f"{'stdin' if source.name == '-' else source.name}.errors.ndjson"
        )
        self.out: IO[str] | None = None
        self.append = False
        self.failed = 0
        self.started = time.monotonic()
        self.bar: Any = None
        show = sys.stderr.isatty() if args.progress is None else args.progress
        if show:
            from tqdm import tqdm  # noqa: PLC0415 - only on a terminal

            self.bar = tqdm(total=total, unit=" records", unit_scale=True, file=sys.stderr)

    def resume(self, through_line: int) -> None:
        """Errors of a fresh import replace the file's; a resumed one adds to them."""
        self.append = through_line > 0
        if not self.append:
            self.path.unlink(missing_ok=True)

    def errors(self, errors: Sequence[Row]) -> None:
        for error in sorted(errors, key=lambda e: int(e["line"])):
            if self.out is None:
                self.out = self.path.open("a" if self.append else "w", encoding="utf-8")
            self.out.write(json.dumps(error, separators=(",", ":")) + "\n")
        self.failed += len(errors)
        if self.out is not None:
            self.out.flush()

    def advance(self, records: int) -> None:
        if self.bar is not None:
            self.bar.update(records)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.out is not None:
            self.out.close()

    def rate(self, records: int) -> str:
        elapsed = time.monotonic() - self.started
        return f"{records:,} records in {elapsed:.1f} s ({records / max(elapsed, 1e-9):,.0f}/s)"


def _error(line: int, record_id: str, reason: str, field: str, message: str) -> Row:
    return {
        "line": line,
        "recordId": record_id,
        "reason": reason,
        "field": field,
        "message": message,
    }


def _count_records(source: Source, file_format: str) -> int:
    """Lines in the file (less a CSV header): the progress bar's total."""
    lines = 0
    with source.text() as text:
        buffer = text.buffer  # type: ignore[attr-defined]
        while chunk := buffer.read(1 << 20):
            lines += chunk.count(b"\n")
    return max(0, lines - (file_format == "csv"))


# --- stock -----------------------------------------------------------------------------------


def _import_stock(args: argparse.Namespace) -> int:
    from omniroute.inventory.v1 import bulk_pb2_grpc  # noqa: PLC0415

    if not 1 <= args.batch_size <= 1000:
        print("omniroute import: --batch-size must be 1 to 1000", file=sys.stderr)
        return 2
    with bulk_files.opened(args.file) as source:
        file_format = bulk_files.detect_format(source, args.format)
        fingerprint = source.digest()
        total = _count_records(source, file_format) if _shows_progress(args) else None
        report = Report(args, source, total)
        upload = _Upload(
            source, file_format, args.import_id or fingerprint, fingerprint, args.batch_size, report
        )
        with open_channel(args) as channel:
            stub = bulk_pb2_grpc.BulkServiceStub(channel)
            try:
                return upload.run(stub, call_metadata(args))
            finally:
                report.close()


def _shows_progress(args: argparse.Namespace) -> bool:
    return bool(sys.stderr.isatty() if args.progress is None else args.progress)


class _Upload:
    """One ImportStock call: the header, then batches from the first line the server has not
    committed, at most UNANSWERED_BATCHES ahead of its answers."""

    def __init__(
        self,
        source: Source,
        file_format: str,
        import_id: str,
        fingerprint: str,
        batch_size: int,
        report: Report,
    ) -> None:
        self.source = source
        self.format = file_format
        self.import_id = import_id
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.report = report
        self.answered = threading.Event()  # the header's answer: where to start
        self.ending = threading.Event()
        self.window = threading.Semaphore(UNANSWERED_BATCHES)
        self.unanswered: deque[list[Row]] = deque()  # each sent batch's own errors
        self.through_line = 0

    def run(self, stub: Any, metadata: tuple[tuple[str, str | bytes], ...]) -> int:
        import grpc  # noqa: PLC0415

        totals = bulk.ImportCounts()
        records = 0
        try:
            for response in stub.ImportStock(self._requests(), metadata=metadata):
                if response.HasField("status"):
                    self._start(response.status)
                    totals.CopyFrom(response.status.counts)
                    continue
                result = response.batch
                own = self.unanswered.popleft()
                self.window.release()
                self.report.errors(
                    own
                    + [
                        _error(e.line, e.record_id, e.reason, e.field, e.message)
                        for e in result.errors
                    ]
                )
                counts = result.counts
                totals.applied += counts.applied
                totals.stale += counts.stale
                totals.failed += counts.failed
                done = counts.applied + counts.stale + counts.failed
                records += done
                self.report.advance(done)
        except grpc.RpcError as error:
            print(f"omniroute import: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
        finally:
            self.ending.set()
            self.answered.set()
        self.report.close()
        errors_at = f" (errors in {self.report.path})" if totals.failed else ""
        print(
            f"imported {self.source.name} as {self.import_id}: {totals.applied:,} applied, "
            f"{totals.stale:,} stale, {totals.failed:,} failed{errors_at}; this run: "
            f"{self.report.rate(records)}",
            file=sys.stderr,
        )
        return SOME_RECORDS_FAILED if totals.failed else 0

    def _start(self, status: bulk.ImportStatus) -> None:
        self.through_line = status.through_line
        self.report.resume(status.through_line)
        if status.through_line:
            print(
                f"omniroute import: {self.import_id} has committed lines 1 to "
                f"{status.through_line:,}; sending the lines after them",
                file=sys.stderr,
            )
        self.answered.set()

    def _requests(self) -> Iterator[bulk.ImportStockRequest]:
        yield bulk.ImportStockRequest(
            header=bulk.ImportHeader(import_id=self.import_id, fingerprint=self.fingerprint)
        )
        self.answered.wait()
        for batch, own_errors in self._batches():
            while not self.window.acquire(timeout=0.2):
                if self.ending.is_set():
                    return
            if self.ending.is_set():
                return
            self.unanswered.append(own_errors)
            yield bulk.ImportStockRequest(batch=batch)

    def _batches(self) -> Iterator[tuple[bulk.ImportBatch, list[Row]]]:
        first = self.through_line + 1
        batch = bulk.ImportBatch(first_line=first)
        own_errors: list[Row] = []
        with self.source.text() as text:
            for line, row in bulk_files.rows(text, self.format):
                if line < first:
                    continue
                if isinstance(row, BadRecord):
                    own_errors.append(_error(line, "", row.reason, row.field, str(row)))
                else:
                    try:
                        record_id, level = bulk_files.stock_level(row)
                    except BadRecord as bad:
                        record_id = row.get("recordId", "")
                        own_errors.append(
                            _error(line, str(record_id), bad.reason, bad.field, str(bad))
                        )
                    else:
                        batch.records.add(line=line, record_id=record_id, level=level)
                batch.through_line = line
                if len(batch.records) + len(own_errors) >= self.batch_size:
                    batch.rejected_lines = len(own_errors)
                    yield batch, own_errors
                    batch = bulk.ImportBatch(first_line=line + 1)
                    own_errors = []
        if batch.through_line:
            batch.rejected_lines = len(own_errors)
            yield batch, own_errors


# --- locations and groups --------------------------------------------------------------------


def _import_network(args: argparse.Namespace) -> int:
    import grpc  # noqa: PLC0415
    from omniroute.inventory.v1 import inventory_pb2_grpc  # noqa: PLC0415

    if not 1 <= args.batch_size <= 1000:
        print("omniroute import: --batch-size must be 1 to 1000", file=sys.stderr)
        return 2
    locations = args.upsert == "UpsertLocations"
    parse = _location if locations else _group
    with bulk_files.opened(args.file) as source:
        file_format = bulk_files.detect_format(source, args.format)
        report = Report(args, source, None)
        report.resume(0)
        stored = 0
        with open_channel(args) as channel:
            call = getattr(inventory_pb2_grpc.InventoryServiceStub(channel), args.upsert)
            try:
                for batch in _network_batches(source, file_format, parse, args.batch_size, report):
                    stored += _upsert(call, call_metadata(args), batch, locations, report)
            except grpc.RpcError as error:
                print(f"omniroute import: {error.code().name}: {error.details()}", file=sys.stderr)
                return 1
            finally:
                report.close()
    what = "locations" if locations else "groups"
    errors_at = f" (errors in {report.path})" if report.failed else ""
    print(
        f"imported {source.name}: {stored:,} {what} stored, {report.failed:,} failed"
        f"{errors_at}; {report.rate(stored + report.failed)}",
        file=sys.stderr,
    )
    return SOME_RECORDS_FAILED if report.failed else 0


def _network_batches(
    source: Source,
    file_format: str,
    parse: Callable[[Row], Any],
    size: int,
    report: Report,
) -> Iterator[list[tuple[int, Any]]]:
    batch: list[tuple[int, Any]] = []
    with source.text() as text:
        for line, row in bulk_files.rows(text, file_format):
            try:
                if isinstance(row, BadRecord):
                    raise row
                batch.append((line, parse(row)))
            except BadRecord as bad:
                report.errors([_error(line, "", bad.reason, bad.field, str(bad))])
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def _upsert(
    call: Any,
    metadata: tuple[tuple[str, str | bytes], ...],
    batch: list[tuple[int, Any]],
    locations: bool,
    report: Report,
) -> int:
    """Upserts the batch; items the server refuses are reported and the rest sent again. The
    request_id is the request's digest, so a batch sent twice is applied once."""
    import grpc  # noqa: PLC0415
    from grpc_status import rpc_status  # noqa: PLC0415
    from omniroute.inventory.v1 import inventory_pb2 as inv  # noqa: PLC0415

    field = "locations" if locations else "location_groups"
    while batch:
        request = (inv.UpsertLocationsRequest if locations else inv.UpsertLocationGroupsRequest)()
        getattr(request, field).extend(item for _, item in batch)
        request.request_id = hashlib.sha256(
            request.SerializeToString(deterministic=True)
        ).hexdigest()[:32]
        try:
            call(request, metadata=metadata, timeout=120)
            return len(batch)
        except grpc.RpcError as error:
            refused = _refused(rpc_status.from_call(error), field, batch)  # type: ignore[arg-type]
            if not refused:
                raise
        report.errors(
            [
                _error(batch[i][0], batch[i][1].id, reason, path, message)
                for i, (reason, path, message) in sorted(refused.items())
            ]
        )
        batch = [item for i, item in enumerate(batch) if i not in refused]
    return 0


def _refused(
    status: Any, field: str, batch: list[tuple[int, Any]]
) -> dict[int, tuple[str, str, str]]:
    """Per index of the batch, why the server refused that item (empty: not an item's fault)."""
    from google.rpc import error_details_pb2  # noqa: PLC0415

    if status is None:
        return {}
    refused: dict[int, tuple[str, str, str]] = {}
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            for violation in bad_request.field_violations:
                prefix, _, rest = violation.field.partition("[")
                index, _, path = rest.partition("]")
                if prefix == field and index.isdigit() and int(index) < len(batch):
                    refused.setdefault(
                        int(index),
                        (violation.reason, path.lstrip("."), violation.description),
                    )
        elif detail.Unpack(info) and info.reason == "LOCATION_NOT_FOUND":
            missing = info.metadata.get("location", "")
            for index, (_, group) in enumerate(batch):
                if missing in getattr(group, "location_ids", ()):
                    refused[index] = (info.reason, "location_ids", status.message)
    return refused


def _location(row: Row) -> Any:
    """A location from JSON names (position or flat latitude/longitude; type STORE or
    LOCATION_TYPE_STORE)."""
    from google.protobuf import json_format  # noqa: PLC0415
    from omniroute.inventory.v1 import inventory_pb2 as inv  # noqa: PLC0415

    data = dict(row)
    if "latitude" in data or "longitude" in data:
        data["position"] = {
            "latitude": _number(data.pop("latitude", 0), "latitude"),
            "longitude": _number(data.pop("longitude", 0), "longitude"),
        }
    kind = data.get("type")
    if isinstance(kind, str) and not kind.upper().startswith("LOCATION_TYPE_"):
        data["type"] = f"LOCATION_TYPE_{kind.upper()}"
    for flag in ("shipEnabled", "pickupEnabled"):
        if isinstance(data.get(flag), str):
            data[flag] = data[flag].strip().lower() in ("1", "true", "yes")
    for number in ("shipmentCost", "priority"):
        if isinstance(data.get(number), str):
            data[number] = _number(data[number], number)
    try:
        return json_format.ParseDict(data, inv.Location(), ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise BadRecord("INVALID_FIELD", "", str(error)) from error


def _group(row: Row) -> Any:
    from google.protobuf import json_format  # noqa: PLC0415
    from omniroute.inventory.v1 import inventory_pb2 as inv  # noqa: PLC0415

    data = dict(row)
    members = data.get("locationIds")
    if isinstance(members, str):
        data["locationIds"] = members.replace(";", " ").split()
    try:
        return json_format.ParseDict(data, inv.LocationGroup(), ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise BadRecord("INVALID_FIELD", "", str(error)) from error


def _number(value: object, field: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise BadRecord("INVALID_FIELD", field, "must be a number") from error
