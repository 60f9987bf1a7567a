"""Bulk data as an operator moves it: `omniroute import` and `omniroute export` run as processes
against a real server on each backend, files with deliberate bad lines, gzip, standard input,
CSV and NDJSON, a client killed mid-import, and a round trip into an empty server."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc
from omniroute.inventory.v1 import reservation_pb2 as res

from server.app import Running, start_server
from server.domain.port import Store
from server.storage.postgres import PostgresStore
from server.storage.sqlite import SqliteStore
from tests.conftest import POSTGRES_DSN, with_schema
from tests.support import wait_until
from tests.support.process import REPO

pytestmark = pytest.mark.timeout(240)

LOCATIONS = [f"store-{n:02d}" for n in range(4)]
SKUS = [f"sku-{n:03d}" for n in range(30)]


def run_cli(port: int, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """`omniroute ARGS` against the server on `port`, bounded; `stdin` as its standard input."""
    done = subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=REPO,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "OMNIROUTE_ADDRESS": f"localhost:{port}"},
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def record(location: str, sku: str, on_hand: int, **extra: object) -> dict[str, object]:
    return {
        "recordId": f"{location}/{sku}",
        "location": location,
        "sku": sku,
        "onHand": on_hand,
        "safetyStockCount": 1,
        "effectiveDate": "2026-01-01T00:00:00Z",
        **extra,
    }


def stock_lines() -> list[str]:
    """A level for every SKU at every location, with a restock at the first location."""
    lines = []
    for n, (location, sku) in enumerate((loc, sku) for loc in LOCATIONS for sku in SKUS):
        futures = (
            [{"quantity": 5, "expectedDate": "2026-02-01"}] if location == LOCATIONS[0] else []
        )
        lines.append(json.dumps(record(location, sku, 10 + n % 7, futures=futures)))
    return lines


def write_network(tmp_path: Path, port: int) -> None:
    """The locations and a group over half of them, through `omniroute import`."""
    locations = tmp_path / "locations.csv"
    rows = [f"{loc},Store {loc},STORE,40.{n},-73.{n}" for n, loc in enumerate(LOCATIONS)]
    locations.write_text("id,displayName,type,latitude,longitude\n" + "\n".join(rows) + "\n")
    made = run_cli(port, "import", "locations", str(locations))
    assert made.returncode == 0, made.stderr
    groups = tmp_path / "groups.ndjson"
    groups.write_text(json.dumps({"id": "east", "locationIds": LOCATIONS[:2]}) + "\n")
    made = run_cli(port, "import", "groups", str(groups))
    assert made.returncode == 0, made.stderr


def availability(port: int, skus: list[str], places: list[str]) -> dict[tuple[str, str], tuple]:
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        response = inventory_pb2_grpc.InventoryServiceStub(channel).GetAvailability(
            inv.GetAvailabilityRequest(skus=skus, location_ids=places), timeout=30
        )
    return {
        (r.sku, r.place.location_id): (r.exists, r.on_hand, r.available_to_order)
        for r in response.records
    }


def errors_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def port(omniroute: Running) -> int:
    """The port of a real server on each backend (conftest's `omniroute`)."""
    return omniroute.port


def test_an_import_reports_exactly_its_bad_lines_and_applies_the_rest(tmp_path: Path, port: int):
    write_network(tmp_path, port)
    lines = stock_lines()
    bad = {
        7: "{not json",
        20: json.dumps(record("nowhere", "sku-001", 3)),
        33: json.dumps(record(LOCATIONS[1], "sku-002", -4)),
        48: json.dumps(record(LOCATIONS[1], "sku-003", 2.5)),
        61: json.dumps(record(LOCATIONS[2], "", 2)),
        75: json.dumps(record(LOCATIONS[2], "sku-004", 1, effectiveDate="yesterday")),
    }
    for line, text in bad.items():
        lines.insert(line - 1, text)
    source = tmp_path / "stock.ndjson"
    source.write_text("\n".join(lines) + "\n")

    done = run_cli(port, "import", "stock", str(source), "--batch-size", "16")

    assert done.returncode == 3, done.stderr
    reported = errors_of(tmp_path / "stock.ndjson.errors.ndjson")
    assert [error["line"] for error in reported] == sorted(bad)
    assert [error["reason"] for error in reported] == [
        "MALFORMED_LINE",
        "LOCATION_NOT_FOUND",
        "INVALID_QUANTITY",
        "INVALID_QUANTITY",
        "INVALID_ID",
        "INVALID_FIELD",
    ]
    good = len(LOCATIONS) * len(SKUS)
    assert f"{good:,} applied, 0 stale, {len(bad)} failed" in done.stderr
    stored = availability(port, ["sku-000", "sku-029"], LOCATIONS)
    assert stored[("sku-000", LOCATIONS[0])] == (True, 10, 10 - 1 + 5)
    assert all(exists for exists, _, _ in stored.values())


def test_an_import_run_again_changes_nothing_even_after_stock_moved(tmp_path: Path, port: int):
    write_network(tmp_path, port)
    source = tmp_path / "stock.ndjson"
    source.write_text("\n".join(stock_lines()) + "\n")
    first = run_cli(port, "import", "stock", str(source))
    assert first.returncode == 0, first.stderr
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        inventory_pb2_grpc.InventoryServiceStub(channel).AdjustStock(
            inv.AdjustStockRequest(
                adjustments=[
                    inv.StockAdjustment(location_id=LOCATIONS[0], sku="sku-000", on_hand_delta=-3)
                ]
            ),
            timeout=30,
        )

    again = run_cli(port, "import", "stock", str(source))

    assert again.returncode == 0, again.stderr
    assert "this run: 0 records" in again.stderr
    assert availability(port, ["sku-000"], [LOCATIONS[0]])[("sku-000", LOCATIONS[0])][1] == 7


def test_gzipped_csv_from_standard_input_is_imported(tmp_path: Path, port: int):
    write_network(tmp_path, port)
    rows = ["recordId,location,sku,onHand,safetyStockCount,futures,effectiveDate"]
    rows += [
        f'r{n},{loc},{sku},{n},0,"[{{""quantity"":2}}]",2026-01-01T00:00:00Z'
        for n, (loc, sku) in enumerate((loc, sku) for loc in LOCATIONS for sku in SKUS[:5])
    ]
    rows.insert(3, "r-bad,store-00,sku-x,lots,0,,2026-01-01")
    errors = tmp_path / "errors.ndjson"

    done = run_cli(
        port,
        "import",
        "stock",
        "-",
        "--format",
        "csv",
        "--errors",
        str(errors),
        stdin=gzip.compress(("\n".join(rows) + "\n").encode()),
    )

    assert done.returncode == 3, done.stderr
    assert [(e["line"], e["reason"]) for e in errors_of(errors)] == [(4, "INVALID_QUANTITY")]
    assert f"{len(LOCATIONS) * 5} applied" in done.stderr
    stored = availability(port, ["sku-004"], [LOCATIONS[3]])
    assert stored[("sku-004", LOCATIONS[3])] == (True, 19, 21)


def test_an_import_whose_client_is_killed_resumes_without_duplicates(tmp_path: Path, port: int):
    write_network(tmp_path, port)
    skus = [f"many-{n:04d}" for n in range(1500)]
    lines = [json.dumps(record(loc, sku, 5)) for loc in LOCATIONS for sku in skus]
    bad_lines = [2, 3001, 5999]
    for line in bad_lines:
        lines.insert(line - 1, "[1, 2]")
    source = tmp_path / "big.ndjson"
    source.write_text("\n".join(lines) + "\n")
    last = (skus[-1], LOCATIONS[-1])
    client = subprocess.Popen(
        [sys.executable, "-m", "server", "import", "stock", str(source), "--batch-size", "10"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "OMNIROUTE_ADDRESS": f"localhost:{port}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(
            lambda: availability(port, [skus[200]], [LOCATIONS[0]])[(skus[200], LOCATIONS[0])][0],
            timeout_s=60,
        )
        client.send_signal(signal.SIGKILL)
    finally:
        client.kill()
        client.wait(timeout=30)
    assert not availability(port, [last[0]], [last[1]])[last][0], "the import finished first"
    with grpc.insecure_channel(f"localhost:{port}") as channel:  # stock moves meanwhile
        inventory_pb2_grpc.InventoryServiceStub(channel).AdjustStock(
            inv.AdjustStockRequest(
                adjustments=[
                    inv.StockAdjustment(location_id=LOCATIONS[0], sku=skus[0], on_hand_delta=4)
                ]
            ),
            timeout=30,
        )

    resumed = run_cli(port, "import", "stock", str(source), "--batch-size", "100")

    assert resumed.returncode == 3, resumed.stderr
    assert "has committed lines 1 to" in resumed.stderr
    total = len(LOCATIONS) * len(skus)
    assert f"{total:,} applied, 0 stale, {len(bad_lines)} failed" in resumed.stderr
    reported = errors_of(tmp_path / "big.ndjson.errors.ndjson")
    assert sorted(error["line"] for error in reported) == bad_lines
    assert availability(port, [skus[0]], [LOCATIONS[0]])[(skus[0], LOCATIONS[0])][1] == 9
    assert availability(port, [last[0]], [last[1]])[last] == (True, 5, 4)


@pytest.fixture
def empty_server(store: Store, tmp_path: Path) -> Iterator[Running]:
    """A second server on an empty store of the same backend."""
    if isinstance(store, PostgresStore):
        schema = f"omniroute_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
        empty: Store = PostgresStore(with_schema(POSTGRES_DSN, schema), pool_size=4)
    else:
        empty = SqliteStore(tmp_path / "empty.sqlite3", synchronous="NORMAL")
    running = start_server("localhost:0", empty, sweep_interval_s=0.05)
    yield running
    running.stop(grace_s=1)
    if isinstance(store, PostgresStore):
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.parametrize("file_format", ["ndjson", "csv"])
def test_stock_exported_and_imported_into_an_empty_server_gives_the_same_availability(
    tmp_path: Path, port: int, empty_server: Running, file_format: str
):
    write_network(tmp_path, port)
    source = tmp_path / "stock.ndjson"
    source.write_text("\n".join(stock_lines()) + "\n")
    assert run_cli(port, "import", "stock", str(source)).returncode == 0
    with grpc.insecure_channel(f"localhost:{port}") as channel:  # a record without a level
        inventory_pb2_grpc.InventoryServiceStub(channel).AdjustStock(
            inv.AdjustStockRequest(
                adjustments=[
                    inv.StockAdjustment(location_id=LOCATIONS[3], sku="adjusted", on_hand_delta=6)
                ]
            ),
            timeout=30,
        )
    exported = tmp_path / f"stock.{file_format}.gz"
    made = run_cli(port, "export", "stock", "--format", file_format, "-o", str(exported))
    assert made.returncode == 0, made.stderr
    write_network(tmp_path, empty_server.port)

    copied = run_cli(empty_server.port, "import", "stock", str(exported))

    assert copied.returncode == 0, copied.stderr
    before = run_cli(port, "export", "availability")
    after = run_cli(empty_server.port, "export", "availability")
    assert before.returncode == after.returncode == 0
    rows = before.stdout.splitlines()
    assert len(rows) == len(LOCATIONS) * len(SKUS) + 1 + len(SKUS)  # + the group's records
    assert rows == after.stdout.splitlines()


def test_reservations_are_exported_one_per_line_or_one_row_per_reservation_line(
    tmp_path: Path, port: int, reservations
):
    write_network(tmp_path, port)
    source = tmp_path / "stock.ndjson"
    source.write_text("\n".join(stock_lines()) + "\n")
    assert run_cli(port, "import", "stock", str(source)).returncode == 0
    reservations.CreateReservation(
        res.CreateReservationRequest(
            reservation_id="order-1",
            items=[
                res.ReservationItem(
                    sku="sku-000", place=inv.Place(location_group_id="east"), quantity=2
                ),
                res.ReservationItem(
                    sku="sku-001", place=inv.Place(location_id=LOCATIONS[3]), quantity=1
                ),
            ],
        ),
        timeout=30,
    )

    as_json = run_cli(port, "export", "reservations")
    as_csv = run_cli(port, "export", "reservations", "--format", "csv")

    assert as_json.returncode == as_csv.returncode == 0
    (only,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert only["id"] == "order-1"
    assert len(only["lines"]) == 2
    header, *rows = as_csv.stdout.splitlines()
    assert header.startswith("id,externalRef,state")
    assert [row.split(",")[0] for row in rows] == ["order-1", "order-1"]


def test_bad_locations_and_groups_are_reported_by_line_and_the_rest_stored(
    tmp_path: Path, port: int
):
    locations = tmp_path / "locations.ndjson"
    locations.write_text(
        "\n".join(
            [
                json.dumps({"id": "a", "type": "STORE", "latitude": 1, "longitude": 2}),
                json.dumps({"id": "b", "type": "STORE", "latitude": 91, "longitude": 2}),
                json.dumps({"id": "c", "type": "WAREHOUSE", "latitude": 1, "longitude": 2}),
                json.dumps({"id": "d", "type": "CASTLE", "latitude": 1, "longitude": 2}),
            ]
        )
        + "\n"
    )
    groups = tmp_path / "groups.csv"
    groups.write_text("id,locationIds\ng1,a c\ng2,a b\n")

    made = run_cli(port, "import", "locations", str(locations))
    grouped = run_cli(port, "import", "groups", str(groups))

    assert made.returncode == grouped.returncode == 3
    assert [(e["line"], e["reason"]) for e in errors_of(Path(f"{locations}.errors.ndjson"))] == [
        (2, "INVALID_FIELD"),
        (4, "INVALID_FIELD"),
    ]
    assert [(e["line"], e["reason"]) for e in errors_of(Path(f"{groups}.errors.ndjson"))] == [
        (3, "LOCATION_NOT_FOUND")
    ]
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        listed = stub.ListLocations(inv.ListLocationsRequest(), timeout=30).locations
        assert [location.id for location in listed] == ["a", "c"]
        stored = stub.ListLocationGroups(inv.ListLocationGroupsRequest(), timeout=30)
        assert [(g.id, sorted(g.location_ids)) for g in stored.location_groups] == [
            ("g1", ["a", "c"])
        ]


def test_an_import_id_used_for_other_content_is_refused(tmp_path: Path, port: int):
    write_network(tmp_path, port)
    first, second = tmp_path / "one.ndjson", tmp_path / "two.ndjson"
    first.write_text(json.dumps(record(LOCATIONS[0], "x", 1)) + "\n")
    second.write_text(json.dumps(record(LOCATIONS[0], "x", 2)) + "\n")
    assert run_cli(port, "import", "stock", str(first), "--import-id", "daily").returncode == 0

    refused = run_cli(port, "import", "stock", str(second), "--import-id", "daily")

    assert refused.returncode == 1
    assert "ALREADY_EXISTS" in refused.stderr
    assert availability(port, ["x"], [LOCATIONS[0]])[("x", LOCATIONS[0])][1] == 1


def test_progress_shows_records_and_rate_when_asked(tmp_path: Path, port: int):
    write_network(tmp_path, port)
    source = tmp_path / "stock.ndjson"
    source.write_text("\n".join(stock_lines()) + "\n")

    done = run_cli(port, "import", "stock", str(source), "--progress")

    assert done.returncode == 0, done.stderr
    assert f"{len(LOCATIONS) * len(SKUS)}/{len(LOCATIONS) * len(SKUS)}" in done.stderr
    assert "records/s" in done.stderr
