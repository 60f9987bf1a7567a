"""OpenTelemetry tracing, configured by the standard environment of a real server process:
RouteOrder's server span holds its snapshot, solve and commit; tracing is off without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_telemetry import known_calls
from tests.support.process import REPO, ServerProcess

pytestmark = pytest.mark.timeout(180)
ROUTE_ORDER = "/omniroute.routing.v1.RoutingService/RouteOrder"


def spans_in(text: str) -> list[dict[str, Any]]:
    """The console exporter's spans: JSON objects one after another."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) != -1:
        span, at = decoder.raw_decode(text, at)
        spans.append(span)
    return spans


def test_route_order_span_holds_its_snapshot_solve_and_commit(tmp_path: Path):
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "omniroute-test"}
    server = ServerProcess(tmp_path / "omniroute.sqlite3", log_dir=tmp_path, env=env)
    with server:
        known_calls(server)
    spans = spans_in(server.output())

    (route,) = [span for span in spans if span["name"] == ROUTE_ORDER]
    phases = [span for span in spans if span["name"].startswith("RouteOrder ")]
    assert [span["name"] for span in phases] == [
        "RouteOrder snapshot",
        "RouteOrder solve",
        "RouteOrder commit",
    ]
    assert {span["parent_id"] for span in phases} == {route["context"]["span_id"]}
    assert route["resource"]["attributes"]["service.name"] == "omniroute-test"
    assert {"/omniroute.inventory.v1.InventoryService/SetStock"} <= {s["name"] for s in spans}


def test_without_the_environment_nothing_is_traced(tmp_path: Path):
    server = ServerProcess(tmp_path / "omniroute.sqlite3", log_dir=tmp_path)
    with server:
        known_calls(server)

    assert spans_in(server.output()) == []


def test_an_unknown_exporter_is_refused_at_start(tmp_path: Path):
    started = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--store", str(tmp_path / "x.sqlite3")],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "OTEL_TRACES_EXPORTER": "zipkin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert started.returncode == 2
    assert "OTEL_TRACES_EXPORTER=zipkin" in started.stderr
