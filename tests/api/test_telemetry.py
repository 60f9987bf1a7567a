"""What a running server tells its operator, through the real process: Prometheus metrics
scraped over HTTP after a known sequence of calls, and one JSON access-log line per RPC."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from omniroute.inventory.v1 import availability_feed_pb2 as fd
from omniroute.inventory.v1 import availability_feed_pb2_grpc
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import RPC_TIMEOUT_S
from tests.routing.network import order
from tests.support import at, item, level, location, wait_until
from tests.support.process import ServerProcess

pytestmark = pytest.mark.timeout(180)
_METRICS = re.compile(r"omniroute metrics on port (\d+)")


def known_calls(server: ServerProcess) -> None:
    """Two successes, a refusal for stock, a malformed request and a routed order."""
    server.inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location("dc")]), timeout=RPC_TIMEOUT_S
    )
    server.inventory.SetStock(
        inv.SetStockRequest(levels=[level("dc", "jeans", 2)], request_id="stock-1"),
        timeout=RPC_TIMEOUT_S,
    )
    for request in (
        res.CreateReservationRequest(items=[item("jeans", at("dc"), 5)]),  # 2 on hand
        res.CreateReservationRequest(items=[item("", at("dc"), 1)]),  # no SKU
    ):
        with pytest.raises(grpc.RpcError):
            server.reservations.CreateReservation(request, timeout=RPC_TIMEOUT_S)
    routing_pb2_grpc.RoutingServiceStub(server.channel).RouteOrder(
        order(("jeans", 1)), timeout=RPC_TIMEOUT_S
    )


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and labels."""
    with urllib.request.urlopen(f"http://localhost:{port}/metrics", timeout=30) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def rpcs(method: str, code: str, reason: str = "") -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("omniroute_rpcs_total", (("code", code), ("method", method), ("reason", reason)))


def test_metrics_count_each_rpc_by_method_code_and_reason_and_describe_routing(tmp_path: Path):
    flags = ("--metrics-address", "localhost:0")
    with ServerProcess(tmp_path / "omniroute.sqlite3", *flags, log_dir=tmp_path) as server:
        port = int(server.wait_printed(_METRICS).group(1))
        known_calls(server)
        samples = scrape(port)

    assert samples[rpcs("InventoryService/UpsertLocations", "OK")] == 1
    assert samples[rpcs("InventoryService/SetStock", "OK")] == 1
    create = "ReservationService/CreateReservation"
    assert samples[rpcs(create, "FAILED_PRECONDITION", "INSUFFICIENT_STOCK")] == 1
    assert samples[rpcs(create, "INVALID_ARGUMENT", "INVALID_ID")] == 1
    assert samples[rpcs("RoutingService/RouteOrder", "OK")] == 1
    latency = ("omniroute_rpc_duration_seconds_count", (("method", create),))
    assert samples[latency] == 2
    assert samples[("omniroute_route_order_plans_total", (("proven", "true"),))] == 1
    assert samples[("omniroute_route_order_attempts_total", ())] == 1
    assert samples[("omniroute_rpcs_in_flight", ())] == 0
    assert samples[("omniroute_build_info", (("version", "0.1.0"),))] == 1


def test_metrics_report_sqlite_commits_and_reservations_released_at_expiry(tmp_path: Path):
    flags = ("--metrics-address", "localhost:0")
    with ServerProcess(tmp_path / "omniroute.sqlite3", *flags, log_dir=tmp_path) as server:
        port = int(server.wait_printed(_METRICS).group(1))
        known_calls(server)
        server.reservations.CreateReservation(
            res.CreateReservationRequest(
                items=[item("jeans", at("dc"), 1)], ttl=Duration(nanos=200_000_000)
            ),
            timeout=RPC_TIMEOUT_S,
        )

        watching = availability_feed_pb2_grpc.AvailabilityFeedServiceStub(
            server.channel
        ).WatchAvailability(fd.WatchAvailabilityRequest(), timeout=RPC_TIMEOUT_S)
        next(watching)

        def expired() -> bool:
            return scrape(port).get(("omniroute_reservations_expired_total", ())) == 1

        assert wait_until(expired, timeout_s=30)
        samples = scrape(port)
        watching.cancel()

    writes = samples[("omniroute_sqlite_committed_writes_total", ())]
    assert writes >= 4  # the network, the stock, the reservation, its expiry
    assert samples[("omniroute_sqlite_commits_total", ())] >= 1
    assert samples[("omniroute_sqlite_commit_seconds_total", ())] > 0
    assert samples[("omniroute_feed_watchers", ())] == 1
    # the stock and the reservation changed dc's jeans record (the expiry may be a tick away)
    assert samples[("omniroute_change_log_newest_sequence", ())] >= 2


def test_metrics_report_the_postgresql_pool(postgres_dsn: str, tmp_path: Path):
    flags = ("--metrics-address", "localhost:0", "--pool-size", "3")
    with ServerProcess(postgres_dsn, *flags, log_dir=tmp_path) as server:
        port = int(server.wait_printed(_METRICS).group(1))
        known_calls(server)
        samples = scrape(port)

    assert 1 <= samples[("omniroute_postgres_pool_connections", ())] <= 3
    assert samples[("omniroute_postgres_pool_waiting_requests", ())] == 0
    assert ("omniroute_postgres_connections_lost_total", ()) in samples


def test_the_access_log_is_one_json_object_per_rpc_with_method_code_and_duration(tmp_path: Path):
    flags = ("--access-log", "--log-format", "json")
    with ServerProcess(tmp_path / "omniroute.sqlite3", *flags, log_dir=tmp_path) as server:
        known_calls(server)
        log_path = server.log_path
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]

    calls = [line for line in lines if line["name"] == "omniroute.access"]
    assert [(c["method"].rpartition("/")[2], c["code"], c["reason"]) for c in calls] == [
        ("UpsertLocations", "OK", ""),
        ("SetStock", "OK", ""),
        ("CreateReservation", "FAILED_PRECONDITION", "INSUFFICIENT_STOCK"),
        ("CreateReservation", "INVALID_ARGUMENT", "INVALID_ID"),
        ("RouteOrder", "OK", ""),
    ]
    assert all(call["duration_ms"] >= 0 and call["peer"] for call in calls)
    assert [call["request_id"] for call in calls][1] == "stock-1"
    assert {line["levelname"] for line in lines} <= {"INFO", "WARNING"}
