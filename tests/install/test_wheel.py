"""`pip install` of the built wheel, into a fresh virtualenv and away from the checkout, gives a
service that serves: the `omniroute` command, the generated stubs and the bundled protos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from omniroute.inventory.v1 import inventory_pb2 as inv

from tests.support import level, location
from tests.support.process import REPO, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def run(*command: str | Path, cwd: Path) -> str:
    """`command` to completion; its output, or a failure that shows it."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh virtualenv holding the wheel built from this checkout."""
    root = tmp_path_factory.mktemp("install")
    wheels = root / "wheels"
    # Built as `pip install .` builds it: in an isolated environment with the declared backend.
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, REPO,
        cwd=root)  # fmt: skip
    (wheel,) = wheels.glob("omniroute-*.whl")
    run(sys.executable, "-m", "venv", root / "venv", cwd=root)
    run(root / "venv/bin/python", "-m", "pip", "install", "--quiet", wheel, cwd=root)
    return root / "venv/bin"


def test_the_installed_code_is_the_wheels_not_the_checkouts(installed: Path, tmp_path: Path):
    shown = run(
        installed / "python",
        "-c",
        "import omniroute.inventory.v1.inventory_pb2 as stubs, server, solver;"
        "print(stubs.__file__, server.__file__, solver.__file__)",
        cwd=tmp_path,
    )

    for path in shown.split():
        assert Path(path).is_relative_to(installed.parent), path


def test_omniroute_protos_names_one_include_root_with_the_services_and_google_rpc(
    installed: Path, tmp_path: Path
):
    root = Path(run(installed / "omniroute", "protos", cwd=tmp_path).strip())

    assert root.is_relative_to(installed.parent)
    for proto in (
        "omniroute/inventory/v1/inventory.proto",
        "omniroute/inventory/v1/reservation.proto",
        "omniroute/routing/v1/routing.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "google/rpc/code.proto",
    ):
        assert (root / proto).read_text() == (REPO / "gen/omniroute/protos" / proto).read_text()


def test_omniroute_migrate_prepares_a_store_and_exits(installed: Path, tmp_path: Path):
    store = tmp_path / "data" / "omniroute.sqlite3"

    said = run(installed / "omniroute", "migrate", "--store", store, cwd=tmp_path)

    assert "up to date" in said
    assert store.exists()


def test_omniroute_serve_answers_rpcs_from_the_installed_package(installed: Path, tmp_path: Path):
    store = tmp_path / "omniroute.sqlite3"
    command = (str(installed / "omniroute"),)

    with ServerProcess(store, log_dir=tmp_path, command=command, cwd=tmp_path) as server:
        health = health_pb2_grpc.HealthStub(server.channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
        server.inventory.UpsertLocations(
            inv.UpsertLocationsRequest(locations=[location("store-1")]), timeout=30
        )
        server.inventory.SetStock(
            inv.SetStockRequest(levels=[level("store-1", "sku-1", 7)]), timeout=30
        )
        found = server.inventory.GetAvailability(
            inv.GetAvailabilityRequest(skus=["sku-1"], location_ids=["store-1"]), timeout=30
        )

    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert [(r.sku, r.on_hand, r.available_to_fulfill) for r in found.records] == [("sku-1", 7, 7)]
