"""Bulk stock import: `omniroute import stock` against plain SetStock calls, on the same records.

For each backend and file size, a fresh store and server (`python -m server`, the change log on
as by default) get the network (locations of 100 SKUs each), then the records twice over:
through the CLI's streaming ImportStock (one process, a file on disk), and, on another fresh
server, through SetStock calls of 1,000 levels from one client process that reads the same
file. Reported: records/s end to end (the client's wall time, file reading included) and peak
RSS of server and client (VmHWM; the server's includes its start), at two file sizes, so that
memory flat in the file's size shows as equal peaks.

  .venv/bin/python benchmarks/import_bench.py              # SQLite, 100k and 1M records
  .venv/bin/python benchmarks/import_bench.py --postgres   # and PostgreSQL
  .venv/bin/python benchmarks/import_bench.py --quick

Writes benchmarks/results/import.{json,md,png}. Not a test: never run it from the test suite.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from omniroute.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from support import (
    BenchParser,
    header,
    listed,
    log,
    markdown_table,
    omniroute_server,
    pg_schema,
    plots,
    stock_network,
    text_table,
)
from support.cli import POSTGRES_ENV
from support.report import REPO

SKUS_PER_LOCATION = 100
SET_STOCK_BATCH = 1000
HEADERS = (
    "backend",
    "records",
    "path",
    "seconds",
    "records/s",
    "server peak RSS MiB",
    "client peak RSS MiB",
)


def write_file(path: Path, records: int) -> None:
    """`records` levels, SKUS_PER_LOCATION per location, in OCI's inventory-record shape."""
    with path.open("w") as out:
        for n in range(records):
            location, sku = divmod(n, SKUS_PER_LOCATION)
            out.write(
                json.dumps(
                    {
                        "recordId": f"r{n}",
                        "location": f"loc-{location:05d}",
                        "sku": f"sku-{sku:03d}",
                        "onHand": 10 + n % 90,
                        "safetyStockCount": n % 3,
                        "effectiveDate": "2026-01-01T00:00:00Z",
                    },
                    separators=(",", ":"),
                )
                + "\n"
            )


def seed(address: str, records: int) -> None:
    sites = [
        inventory_pb2.Location(
            id=f"loc-{n:05d}",
            display_name=f"store {n}",
            type=inventory_pb2.LOCATION_TYPE_STORE,
            position=inventory_pb2.GeoPoint(latitude=30 + n % 15, longitude=-120 + n % 50),
            country_code="US",
        )
        for n in range(records // SKUS_PER_LOCATION)
    ]
    with grpc.insecure_channel(address) as channel:
        stock_network(channel, sites, [])


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def import_with_cli(address: str, source: Path) -> tuple[float, float, str]:
    """Seconds, the client's peak RSS and its summary line."""
    started = time.monotonic()
    client = subprocess.Popen(
        [sys.executable, "-m", "server", "import", "stock", str(source), "--no-progress"],
        cwd=REPO,
        env={**os.environ, "OMNIROUTE_ADDRESS": address},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert client.stderr is not None
    summary = client.stderr.read()
    _, status, usage = os.wait4(client.pid, 0)
    seconds = time.monotonic() - started
    client.returncode = os.waitstatus_to_exitcode(status)
    if client.returncode != 0:
        raise RuntimeError(f"import failed ({client.returncode}): {summary}")
    return seconds, usage.ru_maxrss / 1024, summary.strip().splitlines()[-1]


def set_stock_client(address: str, source: str, out: Any) -> None:
    """What a user's script does: read the file, SetStock 1,000 levels per call."""
    import resource  # noqa: PLC0415

    started = time.monotonic()
    with grpc.insecure_channel(address) as channel, open(source) as lines:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        batch = inventory_pb2.SetStockRequest()
        for line in lines:
            row = json.loads(line)
            level = batch.levels.add(
                location_id=row["location"],
                sku=row["sku"],
                on_hand=row["onHand"],
                safety_stock=row["safetyStockCount"],
            )
            level.effective_time.FromJsonString(row["effectiveDate"])
            if len(batch.levels) == SET_STOCK_BATCH:
                stub.SetStock(batch, timeout=300)
                batch = inventory_pb2.SetStockRequest()
        if batch.levels:
            stub.SetStock(batch, timeout=300)
    seconds = time.monotonic() - started
    out.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def set_stock_with_calls(address: str, source: Path) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    client = context.Process(target=set_stock_client, args=(address, str(source), out))
    client.start()
    seconds, rss = out.get(timeout=3600)
    client.join()
    return seconds, rss


@contextlib.contextmanager
def fresh_server(backend: str, workdir: Path, dsn: str, tag: str) -> Iterator[Any]:
    if backend == "SQLite":
        with omniroute_server(workdir / f"{tag}.sqlite3") as server:
            yield server
        return
    with (
        pg_schema(dsn, "omniroute-import-bench") as schema,
        omniroute_server(schema, log_path=workdir / f"{tag}.pg.log") as server,
    ):
        yield server


def measure(backend: str, records: int, source: Path, workdir: Path, dsn: str) -> list[dict]:
    rows = []
    with fresh_server(backend, workdir, dsn, f"import-{records}") as server:
        seed(server.address, records)
        seconds, client_rss, summary = import_with_cli(server.address, source)
        rows.append(_row(backend, records, "omniroute import", seconds, server.pid, client_rss))
        log(f"[{backend}] {summary}")
    with fresh_server(backend, workdir, dsn, f"setstock-{records}") as server:
        seed(server.address, records)
        seconds, client_rss = set_stock_with_calls(server.address, source)
        rows.append(_row(backend, records, "SetStock x 1,000", seconds, server.pid, client_rss))
    for row in rows:
        log(
            f"[{backend}] {records:,} via {row['path']}: {row['records_per_s']:,.0f} records/s, "
            f"server {row['server_peak_rss_mib']:.0f} MiB, client {row['client_peak_rss_mib']:.0f}"
        )
    return rows


def _row(
    backend: str, records: int, path: str, seconds: float, server_pid: int, client_rss: float
) -> dict[str, Any]:
    return {
        "backend": backend,
        "records": records,
        "path": path,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "server_peak_rss_mib": peak_rss_mib(server_pid),
        "client_peak_rss_mib": client_rss,
    }


def plot(rows: list[dict[str, Any]]) -> Any:
    figure, (rate, memory) = plots.subplots(1, 2, figsize=(11, 4.5))
    labels = [
        f"{row['backend']}\n{row['records'] // 1000:,}k\n{row['path'].split()[0]}" for row in rows
    ]
    colours = ["#1f5f99" if row["path"].startswith("omniroute") else "#e08a1e" for row in rows]
    rate.bar(range(len(rows)), [row["records_per_s"] for row in rows], color=colours)
    rate.axhline(50_000, color="grey", linestyle="--", linewidth=1, label="target 50,000/s")
    rate.set_xticks(range(len(rows)), labels, fontsize=6)
    rate.set_ylabel("records/s")
    rate.legend(fontsize=8)
    rate.set_title("Throughput, end to end", fontsize=10)
    width = 0.4
    memory.bar(
        [n - width / 2 for n in range(len(rows))],
        [row["server_peak_rss_mib"] for row in rows],
        width,
        label="server",
        color="#1f5f99",
    )
    memory.bar(
        [n + width / 2 for n in range(len(rows))],
        [row["client_peak_rss_mib"] for row in rows],
        width,
        label="client",
        color="#7aa6c2",
    )
    memory.set_xticks(range(len(rows)), labels, fontsize=6)
    memory.set_ylabel("peak RSS, MiB")
    memory.legend(fontsize=8)
    memory.set_title("Peak memory", fontsize=10)
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = BenchParser(
        __doc__, "import", quick={"sizes": [10_000, 50_000]}, quick_help="10k and 50k records"
    )
    parser.add_argument("--sizes", type=listed(int), default="100000,1000000")
    parser.add_argument("--postgres", action="store_true", help="also PostgreSQL")
    args = parser.parse(argv)
    dsn = next((os.environ[name] for name in POSTGRES_ENV if os.environ.get(name)), "")
    if args.postgres and not dsn:
        parser.error(f"--postgres needs {' or '.join(POSTGRES_ENV)}")
    backends = ["SQLite", *(["PostgreSQL"] if args.postgres else [])]
    results: dict[str, Any] = {**header("import"), "config": {"sizes": args.sizes}, "rows": []}
    with tempfile.TemporaryDirectory(prefix="import-bench-") as folder:
        workdir = Path(folder)
        for records in args.sizes:
            source = workdir / f"stock-{records}.ndjson"
            write_file(source, records)
            log(f"{source.name}: {source.stat().st_size / 2**20:.0f} MiB")
            for backend in backends:
                results["rows"] += measure(backend, records, source, workdir, dsn)
            source.unlink()
    table = [
        [
            row["backend"],
            f"{row['records']:,}",
            row["path"],
            f"{row['seconds']:.1f}",
            f"{row['records_per_s']:,.0f}",
            f"{row['server_peak_rss_mib']:.0f}",
            f"{row['client_peak_rss_mib']:.0f}",
        ]
        for row in results["rows"]
    ]
    print()
    print(results["note"])
    print(text_table(HEADERS, table, left=3))
    markdown = "\n".join(
        [
            "# Bulk stock import",
            "",
            results["note"],
            "",
            "End to end: the client process's wall time from start to exit, reading the file "
            "included. The change log is on. Peak RSS is VmHWM (the server's includes its "
            "start and the network it was given).",
            "",
            markdown_table(HEADERS, table, left=3),
            "",
        ]
    )
    args.files.save(results, markdown=markdown, figures={"": plot(results["rows"])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
