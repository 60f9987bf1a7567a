"""Files of bulk data: a source opened whatever it is (a path or `-` for standard input,
gzipped or not), its rows read with their line numbers from NDJSON or CSV with a header, and
values in OCI's inventory-record shape turned into the API's messages and back."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from google.protobuf.timestamp_pb2 import Timestamp
from omniroute.inventory.v1 import inventory_pb2 as inv

GZIP_MAGIC = b"\x1f\x8b"
FORMATS = ("ndjson", "csv")


class BadRecord(ValueError):
    """A line that is no record: `reason` and `field` as the server's per-record errors."""

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class Source:
    """A file to import: its path on disk (standard input is spooled to a temporary file, so
    that it can be hashed and read again on resume without holding it in memory)."""

    path: Path
    name: str

    def digest(self) -> str:
        """SHA-256 of the bytes as given (compressed or not)."""
        digest = hashlib.sha256()
        with self.path.open("rb") as raw:
            while chunk := raw.read(1 << 20):
                digest.update(chunk)
        return f"sha256:{digest.hexdigest()}"

    @contextmanager
    def text(self) -> Iterator[IO[str]]:
        """The contents as text, gunzipped when they start with gzip's magic bytes."""
        with self.path.open("rb") as raw:
            gzipped = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if gzipped else raw  # type: ignore[assignment]
            with io.TextIOWrapper(stream, encoding="utf-8-sig", newline="") as text:
                yield text


@contextmanager
def opened(argument: str) -> Iterator[Source]:
    """The source named on the command line; `-` spools standard input to a temporary file."""
    if argument != "-":
        yield Source(Path(argument), argument)
        return
    with tempfile.NamedTemporaryFile(prefix="omniroute-stdin-") as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.flush()
        yield Source(Path(spool.name), "-")


def detect_format(source: Source, given: str | None) -> str:
    """`given`, or csv for a name ending in .csv or .csv.gz, else ndjson."""
    if given:
        return given
    name = source.name.lower().removesuffix(".gz")
    return "csv" if name.endswith(".csv") else "ndjson"


Row = dict[str, Any]


def rows(text: IO[str], file_format: str) -> Iterator[tuple[int, Row | BadRecord]]:
    """(line number, row) for every non-blank record; a row that cannot be read is a BadRecord."""
    if file_format == "csv":
        yield from _csv_rows(text)
        return
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            yield number, BadRecord("MALFORMED_LINE", "", f"not JSON: {error}")
            continue
        if not isinstance(value, dict):
            yield number, BadRecord("MALFORMED_LINE", "", "not a JSON object")
        else:  # null is an absent value
            yield number, {key: item for key, item in value.items() if item is not None}


def _csv_rows(text: IO[str]) -> Iterator[tuple[int, Row | BadRecord]]:
    """Rows under the header, without empty cells (an empty cell is an absent value)."""
    reader = csv.DictReader(text)
    for row in reader:
        if None in row:
            yield reader.line_num, BadRecord("MALFORMED_LINE", "", "more cells than headers")
        elif any(row.values()):
            yield reader.line_num, {key: value for key, value in row.items() if value}


# --- OCI's inventory-record shape ------------------------------------------------------------


def stock_level(row: Row) -> tuple[str, inv.StockLevel]:
    """A row in OCI's inventory-record shape as (recordId, level). Values are checked by the
    server; only what cannot be expressed in a StockLevel fails here."""
    level = inv.StockLevel(
        location_id=_text(row, "location"),
        sku=_text(row, "sku"),
        on_hand=_units(row, "onHand"),
        safety_stock=_units(row, "safetyStockCount"),
    )
    if "effectiveDate" in row:
        level.effective_time.CopyFrom(_time(row["effectiveDate"], "effectiveDate"))
    futures = row.get("futures")
    if isinstance(futures, str):  # a CSV cell holds the list as JSON
        try:
            futures = json.loads(futures)
        except ValueError as error:
            raise BadRecord("INVALID_FIELD", "futures", f"not JSON: {error}") from error
    if futures is not None:
        if not isinstance(futures, list):
            raise BadRecord("INVALID_FIELD", "futures", "must be a list")
        for index, future in enumerate(futures):
            field = f"futures[{index}]"
            if not isinstance(future, dict):
                raise BadRecord("INVALID_FIELD", field, "must be an object")
            message = level.futures.add(quantity=_units(future, "quantity", field))
            if future.get("expectedDate") is not None:
                expected = _time(future["expectedDate"], f"{field}.expectedDate")
                message.expected_time.CopyFrom(expected)
    record_id = row.get("recordId", "")
    return (record_id if isinstance(record_id, str) else str(record_id)), level


def stock_row(level: inv.StockLevel, reserved: int | None = None) -> Row:
    """A stock level in OCI's inventory-record shape (what stock_level reads back)."""
    row: Row = {
        "recordId": "",
        "location": level.location_id,
        "sku": level.sku,
        "onHand": level.on_hand,
        "safetyStockCount": level.safety_stock,
        "futures": [_future_row(future) for future in level.futures],
    }
    if level.HasField("effective_time"):
        row["effectiveDate"] = iso_time(level.effective_time)
    key = f"{level.sku}\x1f{level.location_id}\x1f{row.get('effectiveDate', '')}"
    row["recordId"] = hashlib.sha256(key.encode()).hexdigest()[:32]
    if reserved is not None:
        row["reserved"] = reserved
    return row


def _future_row(future: inv.Future) -> Row:
    row: Row = {"quantity": future.quantity}
    if future.HasField("expected_time"):
        row["expectedDate"] = iso_time(future.expected_time)
    return row


def _text(row: Row, key: str) -> str:
    value = row.get(key, "")
    if not isinstance(value, str):
        raise BadRecord("INVALID_FIELD", key, "must be a string")
    return value


def _units(row: Row, key: str, prefix: str = "") -> int:
    """Whole units: JSON numbers (1200 or 1200.0) or CSV text."""
    field = f"{prefix}.{key}" if prefix else key
    value = row.get(key, 0)
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError as error:
            raise BadRecord("INVALID_QUANTITY", field, "must be a number") from error
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRecord("INVALID_QUANTITY", field, "must be a number")
    if isinstance(value, float):
        if not value.is_integer():
            raise BadRecord("INVALID_QUANTITY", field, "must be whole units")
        value = int(value)
    if abs(value) >= 1 << 63:
        raise BadRecord("QUANTITY_TOO_LARGE", field, "must fit in 64 bits")
    return value


def _time(value: object, field: str) -> Timestamp:
    """An ISO 8601 time (a date alone is its midnight; no offset means UTC)."""
    if not isinstance(value, str):
        raise BadRecord("INVALID_FIELD", field, "must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise BadRecord("INVALID_FIELD", field, f"not an ISO 8601 time: {value!r}") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def iso_time(stamp: Timestamp) -> str:
    """RFC 3339 in UTC with a Z, to the microsecond when there are any."""
    text = stamp.ToDatetime(tzinfo=UTC).isoformat()
    return text.replace("+00:00", "Z")


# --- writing ---------------------------------------------------------------------------------


class RowWriter:
    """Rows written as NDJSON, or as CSV under `columns` (lists and objects as JSON cells)."""

    def __init__(self, out: IO[str], file_format: str, columns: list[str]) -> None:
        self.out = out
        self.csv = (
            csv.DictWriter(out, columns, extrasaction="ignore") if file_format == "csv" else None
        )
        if self.csv is not None:
            self.csv.writeheader()

    def write(self, row: Row) -> None:
        if self.csv is None:
            self.out.write(json.dumps(row, separators=(",", ":")) + "\n")
            return
        self.csv.writerow({key: _cell(value) for key, value in row.items()})


def _cell(value: object) -> object:
    """A CSV cell: lists and objects as JSON, booleans as JSON's true and false."""
    if isinstance(value, list | dict | bool):
        return json.dumps(value, separators=(",", ":"))
    return value
