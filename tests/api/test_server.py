"""The server as a process: health checking, reflection, graceful shutdown on SIGTERM/SIGINT
(NOT_SERVING first, in-flight calls finish, exit 0), and its command line."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc, reservation_pb2_grpc
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt
from omniroute.routing.v1 import routing_pb2_grpc

from server.app import start_server
from server.domain.ledger import Ledger
from server.transport.services import SERVICE_NAMES
from tests.api.helpers import RPC_TIMEOUT_S, all_reservations
from tests.routing.network import order as route_order
from tests.support import at, item, level, location, wait_until
from tests.support.process import REPO, ServerProcess

pytestmark = pytest.mark.timeout(180)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
INVENTORY = "omniroute.inventory.v1.InventoryService"
RESERVATIONS = "omniroute.inventory.v1.ReservationService"


def health_of(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT_S).status


# --- health and reflection -----------------------------------------------------------------


def test_health_reports_serving_for_the_server_and_every_service(channel):
    assert {INVENTORY, RESERVATIONS} <= set(SERVICE_NAMES)
    for service in ("", *SERVICE_NAMES):
        assert health_of(channel, service) == SERVING, service


def test_health_of_an_unknown_service_is_not_found(channel):
    with pytest.raises(grpc.RpcError) as caught:
        health_of(channel, "omniroute.nothing.v1.NoService")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_services_and_describes_their_methods(channel):
    database = ProtoReflectionDescriptorDatabase(channel)

    services = set(database.get_services())

    assert {*SERVICE_NAMES, "grpc.health.v1.Health"} <= services
    pool = descriptor_pool.DescriptorPool(database)
    inventory = pool.FindServiceByName(INVENTORY)
    assert {method.name for method in inventory.methods} == set(
        inv.DESCRIPTOR.services_by_name["InventoryService"].methods_by_name
    )
    reservations = pool.FindServiceByName(RESERVATIONS)
    assert {method.name for method in reservations.methods} == set(
        res.DESCRIPTOR.services_by_name["ReservationService"].methods_by_name
    )
    request = pool.FindMessageTypeByName("omniroute.inventory.v1.CreateReservationRequest")
    assert "request_id" in request.fields_by_name


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_answers_on_v1_and_v1alpha_and_describes_itself(channel, version):
    """Raw calls: each version's request is the same bytes (v1 renamed v1alpha's package)."""
    info = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    own = f"grpc.reflection.{version}.ServerReflection"

    listed, described = info(
        iter(
            [
                reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=own),
            ]
        ),
        timeout=RPC_TIMEOUT_S,
    )

    services = {service.name for service in listed.list_services_response.service}
    assert {*SERVICE_NAMES, "grpc.health.v1.Health", own} <= services
    (file_bytes,) = described.file_descriptor_response.file_descriptor_proto
    file = descriptor_pb2.FileDescriptorProto.FromString(file_bytes)
    assert file.package == f"grpc.reflection.{version}"
    assert [service.name for service in file.service] == ["ServerReflection"]


# --- graceful shutdown, in process ---------------------------------------------------------


class GatedLedger(Ledger):
    """A ledger whose reads for routing wait at a gate, so a test can hold a RouteOrder in
    flight (it runs on a worker thread; the event loop goes on serving health meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def shippable(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        if not self.gate.wait(timeout=60):
            raise TimeoutError("the test never opened the gate")
        return super().shippable(*args, **kwargs)


class Watch:
    """A health Watch stream read on a thread: every status it delivers goes to `statuses`."""

    def __init__(self, channel: grpc.Channel, service: str = "") -> None:
        self.call = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=service), timeout=120
        )
        self.statuses: queue.Queue[int] = queue.Queue()
        self.ended: list[grpc.StatusCode] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.statuses.put(response.status)
        except grpc.RpcError as error:
            self.ended.append(error.code())  # type: ignore[attr-defined]

    def next_status(self) -> int:
        return self.statuses.get(timeout=30)

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(timeout=30)


def test_calls_beyond_the_concurrency_bound_are_refused_at_once_and_the_server_recovers(
    tmp_path: Path,
):
    store = tmp_path / "omniroute.sqlite3"
    with ServerProcess(store, "--max-concurrent-rpcs", "2", log_dir=tmp_path) as server:
        watches = [Watch(server.channel) for _ in range(2)]  # two RPCs that stay in flight
        try:
            assert [watch.next_status() for watch in watches] == [SERVING, SERVING]
            with pytest.raises(grpc.RpcError) as refused:
                # A queued call would run into its deadline instead of being refused.
                server.inventory.ListLocations(inv.ListLocationsRequest(), timeout=10)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            for watch in watches:
                watch.close()

        def serves() -> bool:
            try:
                server.inventory.ListLocations(inv.ListLocationsRequest(), timeout=RPC_TIMEOUT_S)
            except grpc.RpcError:
                return False
            return True

        assert wait_until(serves, timeout_s=30)
        assert health_of(server.channel, "") == SERVING


def test_stop_reports_not_serving_first_and_lets_in_flight_calls_finish(store):
    ledger = GatedLedger()
    running = start_server("localhost:0", store, ledger=ledger, sweep_interval_s=0.05)
    stopper = threading.Thread(target=running.stop, kwargs={"grace_s": 30}, daemon=True)
    try:
        with grpc.insecure_channel(f"localhost:{running.port}") as channel:
            inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
            inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location("wh-1")]))
            inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "sku-1", 7)]))
            watches = [Watch(channel, name) for name in ("", *SERVICE_NAMES)]
            assert [watch.next_status() for watch in watches] == [SERVING] * len(watches)
            in_flight = routing_pb2_grpc.RoutingServiceStub(channel).RouteOrder.future(
                route_order(("sku-1", 2), commit=rt.COMMIT_MODE_DRY_RUN), timeout=120
            )
            assert ledger.entered.wait(timeout=30), f"never reached the ledger: {in_flight!r}"

            stopper.start()

            # Health says NOT_SERVING on every watched name while the server still runs the
            # in-flight call (the subprocess tests below check that new calls are refused) ...
            assert [watch.next_status() for watch in watches] == [NOT_SERVING] * len(watches)
            assert not in_flight.done()
            for watch in watches:
                watch.close()
            # ... and the in-flight call completes with a proper answer.
            ledger.gate.set()
            (shipment,) = in_flight.result(timeout=60).plan.shipments
            assert shipment.location_id == "wh-1"
            stopper.join(timeout=60)
            assert not stopper.is_alive(), "stop() did not return after the last call finished"
    finally:
        ledger.gate.set()
        if stopper.ident is None:
            running.stop(grace_s=1)
        else:
            stopper.join(timeout=90)


# --- graceful shutdown of the process ------------------------------------------------------


@pytest.mark.slow
def test_sigterm_stops_the_process_cleanly_under_load_and_keeps_every_answered_call(
    tmp_path: Path, store_target: str
):
    store = store_target
    outcomes: list[tuple[str, grpc.StatusCode]] = []
    lock = threading.Lock()
    with ServerProcess(store, "--grace", "20", log_dir=tmp_path) as server:
        with grpc.insecure_channel(server.target) as channel:
            inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
            inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location("wh-1")]))
            inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "sku-1", 1_000_000)]))

        def client(index: int) -> None:
            # Each client keeps calling until the server turns it away.
            with grpc.insecure_channel(server.target) as own:
                stub = reservation_pb2_grpc.ReservationServiceStub(own)
                for number in range(100_000):
                    reservation_id = f"c{index:02d}-{number:05d}"
                    try:
                        stub.CreateReservation(
                            res.CreateReservationRequest(
                                reservation_id=reservation_id, items=[item("sku-1", at("wh-1"), 1)]
                            ),
                            timeout=60,
                        )
                        code = grpc.StatusCode.OK
                    except grpc.RpcError as error:
                        code = error.code()  # type: ignore[attr-defined]
                    with lock:
                        outcomes.append((reservation_id, code))
                    if code != grpc.StatusCode.OK:
                        return

        clients = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(12)]
        for thread in clients:
            thread.start()
        assert wait_until(lambda: len(outcomes) >= 100, 60), server.log()
        server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(timeout=20 + 30)
        for thread in clients:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in clients)
    assert exit_code == 0, server.log()
    # Refusals are clean: UNAVAILABLE, or CANCELLED for a call that grpc-core still held
    # unmatched (not yet handed to a worker) when shutdown began; never applied (checked below).
    assert {code for _, code in outcomes} <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
    }
    answered = {rid for rid, code in outcomes if code == grpc.StatusCode.OK}
    refused = {rid for rid, code in outcomes if code != grpc.StatusCode.OK}

    with (
        ServerProcess(store, log_dir=tmp_path) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        stored = {
            r.id for r in all_reservations(reservation_pb2_grpc.ReservationServiceStub(channel))
        }
        assert stored == answered
        assert not refused & stored
        inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
        record = inventory.GetAvailability(
            inv.GetAvailabilityRequest(skus=["sku-1"], location_ids=["wh-1"])
        ).records[0]
        assert record.reserved == len(stored)
        assert server.terminate(timeout_s=50) == 0


# --- command line --------------------------------------------------------------------------


def test_serve_help_exits_0_and_names_every_flag_and_environment_variable():
    shown = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert shown.returncode == 0, shown.stderr
    for flag in (
        "--address",
        "--store",
        "--sqlite-synchronous",
        "--workers",
        "--grace",
        "--max-concurrent-rpcs",
    ):
        assert flag in shown.stdout
    for variable in ("ADDRESS", "STORE", "SQLITE_SYNCHRONOUS", "WORKERS", "GRACE"):
        assert f"OMNIROUTE_{variable}" in shown.stdout


def test_environment_variables_configure_address_and_store_and_sigint_stops_it(tmp_path: Path):
    store = tmp_path / "from-env" / "omniroute.sqlite3"
    env = {"OMNIROUTE_ADDRESS": "localhost:0", "OMNIROUTE_STORE": str(store)}

    with ServerProcess(store, env=env, flags=False, log_dir=tmp_path) as server:
        with grpc.insecure_channel(server.target) as channel:
            assert health_of(channel, "") == SERVING
        assert store.exists()
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=50) == 0


def test_a_second_server_on_a_port_already_served_refuses_to_start(tmp_path: Path):
    with ServerProcess(tmp_path / "first.sqlite3", log_dir=tmp_path) as first:
        second_store = str(tmp_path / "second.sqlite3")
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "server",
                "serve",
                "--address",
                first.target,
                "--store",
                second_store,
            ],
            check=False,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stderr
        assert "refusing to start" in second.stderr
        assert "in use" in second.stderr
        with grpc.insecure_channel(first.target) as channel:
            assert health_of(channel, "") == SERVING


def test_the_store_password_is_never_printed_or_logged(postgres_dsn: str, tmp_path: Path):
    secret = "s3cret-pw-7f"
    parts = urlsplit(postgres_dsn)  # trust auth: the server ignores the password
    with_password = urlunsplit(
        parts._replace(netloc=f"root:{secret}@{parts.netloc.split('@')[-1]}")
    )

    with ServerProcess(with_password, "--log-level", "DEBUG", log_dir=tmp_path) as server:
        with grpc.insecure_channel(server.target) as channel:
            assert health_of(channel, "") == SERVING
        assert server.terminate(timeout_s=60) == 0
        printed = server.listening_line + server.log()
    assert "root:***@" in server.listening_line
    assert secret not in printed


# --- limits an operator sets ---------------------------------------------------------------


def test_a_request_over_max_request_bytes_is_refused_and_the_server_goes_on(tmp_path: Path):
    flags = ("--max-request-bytes", "65536")
    many = inv.UpsertLocationsRequest(locations=[location(f"loc-{n:04d}") for n in range(1000)])
    for each in many.locations:
        each.display_name = "x" * 200
    assert many.ByteSize() > 65536

    with ServerProcess(tmp_path / "omniroute.sqlite3", *flags, log_dir=tmp_path) as server:
        with pytest.raises(grpc.RpcError) as refused:
            server.inventory.UpsertLocations(many, timeout=RPC_TIMEOUT_S)
        few = inv.UpsertLocationsRequest(locations=many.locations[:10])
        server.inventory.UpsertLocations(few, timeout=RPC_TIMEOUT_S)

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_request_id_is_forgotten_after_its_retention(store):
    running = start_server("localhost:0", store, sweep_interval_s=0.05, request_id_retention_s=0.2)
    try:
        with grpc.insecure_channel(f"localhost:{running.port}") as channel:
            inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
            inventory.UpsertLocations(
                inv.UpsertLocationsRequest(locations=[location("wh")]), timeout=RPC_TIMEOUT_S
            )

            def set_stock(on_hand: int) -> inv.SetStockResponse:
                request = inv.SetStockRequest(
                    levels=[level("wh", "sku", on_hand)], request_id="stock-once"
                )
                return inventory.SetStock(request, timeout=RPC_TIMEOUT_S)

            set_stock(5)
            with pytest.raises(grpc.RpcError) as reused:  # remembered: another body is refused
                set_stock(6)
            assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS

            def forgotten() -> bool:
                try:
                    set_stock(7)
                except grpc.RpcError:
                    return False
                return True

            assert wait_until(forgotten, timeout_s=30)
    finally:
        running.stop(1)
