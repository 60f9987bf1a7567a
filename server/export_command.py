"""`omniroute export stock|availability|reservations`: a running server's data as NDJSON or CSV,
streamed from one snapshot. Exported stock is in the shape `omniroute import stock` reads."""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from server import bulk_files
from server.bulk_files import Row, RowWriter
from server.client_connection import call_metadata, connection_flags, open_channel

_STOCK_COLUMNS = [
    "recordId",
    "location",
    "sku",
    "onHand",
    "safetyStockCount",
    "futures",
    "effectiveDate",
    "reserved",
]
_AVAILABILITY_COLUMNS = [
    "location",
    "locationGroup",
    "sku",
    "exists",
    "onHand",
    "reserved",
    "groupReserved",
    "safetyStockCount",
    "futures",
    "futuresTotal",
    "availableToFulfill",
    "availableToOrder",
    "effectiveDate",
]
_RESERVATION_COLUMNS = [
    "id",
    "externalRef",
    "state",
    "createTime",
    "updateTime",
    "expireTime",
    "sku",
    "location",
    "locationGroup",
    "quantity",
    "fulfilled",
    "released",
    "transferredOut",
    "open",
]


def add_parser(commands: Any) -> None:
    command = commands.add_parser(
        "export",
        parents=[connection_flags()],
        help="export stock, availability or reservations as NDJSON or CSV",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    command.add_argument("what", choices=("stock", "availability", "reservations"))
    command.add_argument(
        "--output", "-o", default="-", help="file to write (*.gz is gzipped); - for stdout"
    )
    command.add_argument("--format", choices=bulk_files.FORMATS, default="ndjson")
    command.set_defaults(run=_export)


def _export(args: argparse.Namespace) -> int:
    import grpc  # noqa: PLC0415
    from omniroute.inventory.v1 import bulk_pb2 as bulk  # noqa: PLC0415
    from omniroute.inventory.v1 import bulk_pb2_grpc  # noqa: PLC0415

    started = time.monotonic()
    written = 0
    with open_channel(args) as channel, _output(args.output) as out:
        stub = bulk_pb2_grpc.BulkServiceStub(channel)
        if args.what == "stock":
            rows: Iterator[Row] = (
                bulk_files.stock_row(record.level, record.reserved)
                for page in stub.ExportStock(
                    bulk.ExportStockRequest(), metadata=call_metadata(args)
                )
                for record in page.records
            )
            columns = _STOCK_COLUMNS
        elif args.what == "availability":
            rows = (
                _availability_row(record)
                for page in stub.ExportAvailability(
                    bulk.ExportAvailabilityRequest(), metadata=call_metadata(args)
                )
                for record in page.records
            )
            columns = _AVAILABILITY_COLUMNS
        else:
            pages = stub.ExportReservations(
                bulk.ExportReservationsRequest(), metadata=call_metadata(args)
            )
            rows = (
                row
                for page in pages
                for reservation in page.reservations
                for row in _reservation_rows(reservation, args.format)
            )
            columns = _RESERVATION_COLUMNS
        writer = RowWriter(out, args.format, columns)
        try:
            for row in rows:
                writer.write(row)
                written += 1
        except grpc.RpcError as error:
            print(f"omniroute export: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
        except BrokenPipeError:  # the reader stopped early (`| head`): not an error
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes it at exit
            return 0
    elapsed = time.monotonic() - started
    print(f"exported {written:,} {args.what} rows in {elapsed:.1f} s", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _output(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    if path.endswith(".gz"):
        with gzip.open(path, "wb") as raw, io.TextIOWrapper(raw, "utf-8", newline="") as text:
            yield text
        return
    with open(path, "w", encoding="utf-8", newline="") as text:
        yield text


def _place(place: Any, row: Row) -> None:
    if place.WhichOneof("kind") == "location_id":
        row["location"] = place.location_id
    else:
        row["locationGroup"] = place.location_group_id


def _availability_row(record: Any) -> Row:
    row: Row = {}
    _place(record.place, row)
    row.update(
        sku=record.sku,
        exists=record.exists,
        onHand=record.on_hand,
        reserved=record.reserved,
        groupReserved=record.group_reserved,
        safetyStockCount=record.safety_stock,
        futures=[_future(future) for future in record.futures],
        futuresTotal=record.futures_total,
        availableToFulfill=record.available_to_fulfill,
        availableToOrder=record.available_to_order,
    )
    if record.HasField("effective_time"):
        row["effectiveDate"] = bulk_files.iso_time(record.effective_time)
    return row


def _future(future: Any) -> Row:
    row: Row = {"quantity": future.quantity}
    if future.HasField("expected_time"):
        row["expectedDate"] = bulk_files.iso_time(future.expected_time)
    return row


def _reservation_rows(reservation: Any, file_format: str) -> Iterator[Row]:
    """NDJSON: one reservation per line, as the API's JSON; CSV: one row per line of it."""
    from google.protobuf import json_format  # noqa: PLC0415
    from omniroute.inventory.v1 import reservation_pb2 as res  # noqa: PLC0415

    if file_format == "ndjson":
        yield json_format.MessageToDict(reservation)
        return
    head: Row = {
        "id": reservation.id,
        "externalRef": reservation.external_ref,
        "state": res.ReservationState.Name(reservation.state).removeprefix("RESERVATION_STATE_"),
        "createTime": bulk_files.iso_time(reservation.create_time),
        "updateTime": bulk_files.iso_time(reservation.update_time),
    }
    if reservation.HasField("expire_time"):
        head["expireTime"] = bulk_files.iso_time(reservation.expire_time)
    for line in reservation.lines:
        row = dict(
            head,
            sku=line.sku,
            quantity=line.quantity,
            fulfilled=line.fulfilled,
            released=line.released,
            transferredOut=line.transferred_out,
            open=line.open,
        )
        _place(line.place, row)
        yield row
