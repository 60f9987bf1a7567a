"""A database the server cannot reach gives callers UNAVAILABLE with reason STORE_UNAVAILABLE
and a fixed message; the driver's text (hosts, users, timings) goes to the server log only."""

from __future__ import annotations

import logging

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc

from server.app import start_server
from server.domain.errors import StoreUnavailable
from server.storage.postgres import PostgresStore
from tests.api.helpers import refused

pytestmark = pytest.mark.timeout(60)


def test_a_store_with_no_free_connection_is_unavailable_with_a_fixed_message_and_a_log(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = PostgresStore(postgres_dsn, pool_size=1, wait_s=0.3)
    running = start_server("localhost:0", store, sweep_interval_s=3600)
    try:
        with (
            grpc.insecure_channel(f"localhost:{running.port}") as channel,
            caplog.at_level(logging.WARNING),
            store.write(),  # holds the pool's only connection
        ):
            got = refused(
                inventory_pb2_grpc.InventoryServiceStub(channel).ListLocations,
                inv.ListLocationsRequest(),
            )
    finally:
        running.stop(grace_s=1)

    assert (got.code, got.reason, got.message, got.metadata) == (
        grpc.StatusCode.UNAVAILABLE,
        "STORE_UNAVAILABLE",
        StoreUnavailable.MESSAGE,
        {},
    )
    logged = [record.getMessage() for record in caplog.records]
    assert any(
        line.startswith("STORE_UNAVAILABLE: no database connection available") for line in logged
    ), logged
