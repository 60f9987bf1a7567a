"""Durability: a server process killed with SIGKILL in the middle of a stream of acknowledged
reservations restarts on the same store with every acknowledged reservation present, exactly as
acknowledged, and the ledger's counters equal to the open reservation lines (read from the
database directly); its change log holds every acknowledged change and nothing that did not
commit. SQLite runs with its default durability (FULL) and with NORMAL."""

from __future__ import annotations

import sqlite3
import threading
from collections import defaultdict
from contextlib import closing
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from omniroute.inventory.v1 import availability_feed_pb2 as fd
from omniroute.inventory.v1 import (
    availability_feed_pb2_grpc,
    inventory_pb2_grpc,
    reservation_pb2_grpc,
)
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.api.helpers import (
    RPC_TIMEOUT_S,
    all_reservations,
    group,
    open_by_place,
)
from tests.support import at, at_group, availability, item, level, location, wait_until
from tests.support.process import ServerProcess

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
ACKNOWLEDGED_BEFORE_KILL = 40


def stubs(channel: grpc.Channel) -> tuple[Any, Any]:
    return (
        inventory_pb2_grpc.InventoryServiceStub(channel),
        reservation_pb2_grpc.ReservationServiceStub(channel),
    )


def order(number: int) -> Any:
    return res.CreateReservationRequest(
        reservation_id=f"ord-{number:05d}",
        request_id=f"req-{number:05d}",
        items=[
            item("sku-a", at("wh-1"), number % 3 + 1),
            item("sku-b", at_group("web"), 1),
        ],
    )


@pytest.mark.parametrize("durability", ["default", "sqlite NORMAL"])
def test_acknowledged_reservations_survive_sigkill_mid_stream(
    tmp_path: Path, store_target: str, durability: str
):
    store = store_target
    flags = []
    if durability == "sqlite NORMAL":
        if is_postgres(store):
            pytest.skip("--sqlite-synchronous applies to SQLite only")
        flags = ["--sqlite-synchronous", "NORMAL"]
    acknowledged: dict[str, Any] = {}
    failures: list[grpc.RpcError] = []

    with (
        ServerProcess(store, *flags, log_dir=tmp_path) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        inventory, reservations = stubs(channel)
        inventory.UpsertLocations(
            inv.UpsertLocationsRequest(locations=[location("wh-1"), location("wh-2", 41.0)])
        )
        inventory.UpsertLocationGroups(
            inv.UpsertLocationGroupsRequest(location_groups=[group("web", "wh-1", "wh-2")])
        )
        inventory.SetStock(
            inv.SetStockRequest(
                levels=[level("wh-1", "sku-a", 1_000_000), level("wh-2", "sku-b", 1_000_000)]
            )
        )
        stop = threading.Event()

        def stream() -> None:
            for number in range(100_000):
                if stop.is_set():
                    return
                try:
                    created = reservations.CreateReservation(order(number), timeout=RPC_TIMEOUT_S)
                except grpc.RpcError as error:
                    failures.append(error)
                    return
                acknowledged[created.reservation.id] = created.reservation

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        try:
            assert wait_until(lambda: len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL, 60), (
                f"only {len(acknowledged)} reservations acknowledged; log: {server.log()}"
            )
            server.process.kill()
            server.process.wait(timeout=30)
        finally:
            stop.set()
            streamer.join(timeout=30)
        assert not streamer.is_alive()
    assert [error.code() for error in failures] in ([], [grpc.StatusCode.UNAVAILABLE])

    with (
        ServerProcess(store, *flags, log_dir=tmp_path) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        inventory, reservations = stubs(channel)
        stored = {r.id: r for r in all_reservations(reservations)}
        for reservation_id, reservation in acknowledged.items():
            assert stored.get(reservation_id) == reservation, reservation_id
        # At most the one call in flight at the kill is stored without an acknowledgement,
        # and then whole: every line of it or nothing.
        unacknowledged = set(stored) - set(acknowledged)
        assert unacknowledged <= {f"ord-{len(acknowledged):05d}"}
        for reservation_id in unacknowledged:
            assert len(stored[reservation_id].lines) == 2
        view = availability(inventory, ["sku-a", "sku-b"], ["wh-1", "wh-2"], ["web"])
        assert view[("wh-1", "sku-a")].reserved == open_by_place(stored.values(), "sku-a")["wh-1"]
        assert view[("web", "sku-b")].group_reserved == len(stored)
        assert view[("wh-1", "sku-a")].on_hand == view[("wh-2", "sku-b")].on_hand == 1_000_000
        assert_change_log_matches(channel, len(acknowledged), len(unacknowledged))
        # A retried acknowledged request is still answered from the log, not run again.
        retried = reservations.CreateReservation(order(0), timeout=RPC_TIMEOUT_S)
        assert retried.reservation == acknowledged["ord-00000"]
        assert server.terminate(timeout_s=30) == 0

    assert_ledger_file_consistent(store)


def assert_change_log_matches(channel: grpc.Channel, acknowledged: int, in_flight: int) -> None:
    """The change log, read from its start, holds wh-1's reserved sku-a after each acknowledged
    reservation, in order (and after the one in flight, if it committed), and folds into
    exactly what GetAvailability reports: no change without its entry, no entry without its
    change."""
    feed = availability_feed_pb2_grpc.AvailabilityFeedServiceStub(channel)
    latest: dict[tuple[str, str], Any] = {}
    reserved_at_wh1: list[int] = []
    token = ""
    while True:
        page = feed.ListAvailabilityChanges(
            fd.ListAvailabilityChangesRequest(page_token=token, page_size=1000),
            timeout=RPC_TIMEOUT_S,
        )
        for change in page.changes:
            place = change.record.place.location_id or change.record.place.location_group_id
            latest[(place, change.record.sku)] = change.record
            if (place, change.record.sku) == ("wh-1", "sku-a"):
                reserved_at_wh1.append(change.record.reserved)
        token = page.next_page_token
        if page.caught_up:
            break
    sums = [
        sum(n % 3 + 1 for n in range(count)) for count in range(1, acknowledged + 1 + in_flight)
    ]
    assert reserved_at_wh1[-len(sums) :] == sums
    inventory, _ = stubs(channel)
    view = availability(inventory, ["sku-a", "sku-b"], ["wh-1", "wh-2"], ["web"])
    for (place, sku), record in view.items():
        if record.exists or record.reserved:
            assert latest[(place, sku)] == record, (place, sku)


def is_postgres(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


def assert_ledger_file_consistent(store: str) -> None:
    """Reads the database directly (stdlib sqlite3 on the file, or psycopg): it is intact, every
    line's parts add up, and each stored reserved counter equals the sum of the open
    reservation lines at its place."""
    connect: Any = psycopg.connect if is_postgres(store) else sqlite3.connect
    with closing(connect(store)) as db:
        if not is_postgres(store):
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        open_lines: dict[tuple[str, int, str], int] = defaultdict(int)
        for sku, kind, place, quantity, fulfilled, released, moved in db.execute(
            "SELECT sku, place_kind, place_id, quantity, fulfilled, released, transferred_out"
            " FROM reservation_lines"
        ):
            assert min(fulfilled, released, moved) >= 0
            assert fulfilled + released + moved <= quantity
            open_lines[(sku, kind, place)] += quantity - fulfilled - released - moved
        counters: dict[tuple[str, int, str], int] = {}
        for sku, location_id, reserved, on_hand in db.execute(
            "SELECT sku, location_id, reserved, on_hand FROM stock"
        ):
            assert min(reserved, on_hand) >= 0
            counters[(sku, 1, location_id)] = reserved
        for sku, group_id, reserved in db.execute(
            "SELECT sku, group_id, reserved FROM group_reserved"
        ):
            counters[(sku, 2, group_id)] = reserved
    assert {key: units for key, units in counters.items() if units} == {
        key: units for key, units in open_lines.items() if units
    }
