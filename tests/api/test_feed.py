"""The availability change feed through real servers: a consumer that keeps the latest record
per key, disconnecting and resuming at random points (across a server restart, and on
PostgreSQL across servers), ends equal to GetAvailability for every watched key, seeing every
sequence number once and in order; plus tokens, filters, heartbeats, retention and paging."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omniroute.inventory.v1 import availability_feed_pb2 as fd
from omniroute.inventory.v1 import (
    availability_feed_pb2_grpc,
    inventory_pb2_grpc,
    reservation_pb2_grpc,
)
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

import server.feed
from server.app import Running, start_server
from server.storage.postgres import PostgresStore
from server.storage.sqlite import SqliteStore
from tests.api.helpers import RPC_TIMEOUT_S, fulfill_item, group
from tests.support import at, at_group, failure, item, level, location, wait_until

pytestmark = pytest.mark.timeout(300)
LOCATIONS = ("loc-a", "loc-b", "loc-c", "loc-d")
GROUPS = {"grp-ab": ("loc-a", "loc-b"), "grp-bc": ("loc-b", "loc-c"), "grp-abcd": LOCATIONS}
SKUS = ("sku-1", "sku-2")
WATCHED = fd.AvailabilityFilter(
    skus=list(SKUS), location_ids=list(LOCATIONS), location_group_ids=list(GROUPS)
)


def key(record: inv.AvailabilityRecord) -> tuple[str, str, str]:
    return (record.sku, record.place.location_id, record.place.location_group_id)


def current(
    channel: grpc.Channel, skus: Sequence[str] = SKUS
) -> dict[tuple[str, str, str], inv.AvailabilityRecord]:
    request = inv.GetAvailabilityRequest(
        skus=list(skus), location_ids=list(LOCATIONS), location_group_ids=list(GROUPS)
    )
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    records = stub.GetAvailability(request, timeout=RPC_TIMEOUT_S).records
    return {key(record): record for record in records}


def build_network(channel: grpc.Channel) -> None:
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location(name) for name in LOCATIONS])
    )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(
            location_groups=[group(name, *members) for name, members in GROUPS.items()]
        )
    )


class Consumer:
    """Keeps the latest record per key from WatchAvailability on a thread, hanging up after a
    few messages and resuming from its last token on whichever server `target()` names."""

    def __init__(self, target: Callable[[], str], rng: random.Random) -> None:
        self.target = target
        self.rng = rng
        self.table: dict[tuple[str, str, str], inv.AvailabilityRecord] = {}
        self.token = ""
        self.last_sequence = 0
        self.seen: set[int] = set()
        self.reconnects = 0
        self.caught_up = threading.Event()  # a heartbeat arrived: nothing left to read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Consumer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            request = fd.WatchAvailabilityRequest(filter=WATCHED, heartbeat_interval={"seconds": 1})
            if self.token:
                request.resume_token = self.token
            else:
                request.snapshot = True
            with grpc.insecure_channel(self.target()) as channel:
                stream = availability_feed_pb2_grpc.AvailabilityFeedServiceStub(
                    channel
                ).WatchAvailability(request)
                budget = self.rng.randint(1, 4)
                try:
                    for message in stream:
                        self._take(message)
                        budget -= 1
                        if budget <= 0 or self._stop.is_set():
                            stream.cancel()
                            break
                except grpc.RpcError as error:  # a restarting server; cancelled by us
                    if error.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE):
                        raise
                    time.sleep(0.05)
            self.reconnects += 1

    def _take(self, message: fd.WatchAvailabilityResponse) -> None:
        for record in message.snapshot:
            self.table[key(record)] = record
        for change in message.changes:
            assert change.sequence > self.last_sequence, "sequence numbers increase"
            assert change.sequence not in self.seen, "no entry twice"
            self.seen.add(change.sequence)
            self.last_sequence = change.sequence
            self.table[key(change.record)] = change.record
        self.token = message.resume_token
        if not message.snapshot and not message.changes:
            self.caught_up.set()
        else:
            self.caught_up.clear()

    def drained(self) -> bool:
        """Whether a heartbeat came after the last change (wait for it with wait_until)."""
        self.caught_up.clear()
        return self.caught_up.wait(timeout=5)


def random_operations(channels: list[grpc.Channel], rng: random.Random, count: int) -> None:
    """Stock changes, the reservation lifecycle and group membership changes over overlapping
    groups, through any of the servers; refusals (not enough stock, say) change nothing and
    are expected."""
    held: list[str] = []
    for _ in range(count):
        channel = rng.choice(channels)
        inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
        reservations = reservation_pb2_grpc.ReservationServiceStub(channel)
        sku = rng.choice(SKUS)
        action = rng.choice(
            ["stock", "stock", "adjust", "reserve", "reserve", "release", "move", "regroup"]
        )
        with contextlib.suppress(grpc.RpcError):
            if action == "stock":
                inventory.SetStock(
                    inv.SetStockRequest(
                        levels=[level(rng.choice(LOCATIONS), sku, rng.randint(0, 6))]
                    ),
                    timeout=RPC_TIMEOUT_S,
                )
            elif action == "adjust":
                inventory.AdjustStock(
                    inv.AdjustStockRequest(
                        adjustments=[
                            inv.StockAdjustment(
                                location_id=rng.choice(LOCATIONS),
                                sku=sku,
                                on_hand_delta=rng.choice([-2, -1, 1, 3]),
                            )
                        ]
                    ),
                    timeout=RPC_TIMEOUT_S,
                )
            elif action == "reserve":
                place = (
                    at_group(rng.choice(list(GROUPS)))
                    if rng.random() < 0.6
                    else at(rng.choice(LOCATIONS))
                )
                made = reservations.CreateReservation(
                    res.CreateReservationRequest(
                        items=[item(sku, place, rng.randint(1, 3))], allow_partial=True
                    ),
                    timeout=RPC_TIMEOUT_S,
                )
                held.append(made.reservation.id)
            elif action == "regroup":  # refused when it would uncover group reservations
                name = rng.choice(list(GROUPS))
                members = rng.sample(LOCATIONS, rng.randint(1, len(LOCATIONS)))
                inventory.UpsertLocationGroups(
                    inv.UpsertLocationGroupsRequest(location_groups=[group(name, *members)]),
                    timeout=RPC_TIMEOUT_S,
                )
            elif action == "release" and held:
                reservations.ReleaseReservation(
                    res.ReleaseReservationRequest(
                        reservation_id=held.pop(rng.randrange(len(held))), release_all=True
                    ),
                    timeout=RPC_TIMEOUT_S,
                )
            elif action == "move" and held:
                reservation = reservations.GetReservation(
                    res.GetReservationRequest(reservation_id=rng.choice(held)),
                    timeout=RPC_TIMEOUT_S,
                ).reservation
                line = reservation.lines[0]
                open_units = line.quantity - line.fulfilled - line.released - line.transferred_out
                if open_units and line.place.location_group_id:
                    members = GROUPS[line.place.location_group_id]
                    reservations.TransferReservation(
                        res.TransferReservationRequest(
                            reservation_id=reservation.id,
                            items=[
                                res.TransferItem(
                                    sku=line.sku,
                                    from_place=line.place,
                                    to_place=at(rng.choice(members)),
                                    quantity=open_units,
                                )
                            ],
                        ),
                        timeout=RPC_TIMEOUT_S,
                    )
                elif open_units:
                    reservations.FulfillReservation(
                        res.FulfillReservationRequest(
                            reservation_id=reservation.id,
                            items=[fulfill_item(line.sku, line.place, 1)],
                        ),
                        timeout=RPC_TIMEOUT_S,
                    )


def assert_agrees(consumer: Consumer, channel: grpc.Channel) -> None:
    assert wait_until(consumer.drained, timeout_s=60), "the consumer never caught up"
    now = current(channel)
    assert set(consumer.table) == set(now)
    for found, record in now.items():
        assert consumer.table[found] == record, found


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32))
def test_a_resuming_consumer_ends_equal_to_get_availability_across_a_restart(
    tmp_path: Path, seed: int
):
    rng = random.Random(seed)
    path = tmp_path / f"feed-{seed}.sqlite3"
    running = start_server("localhost:0", SqliteStore(path, synchronous="NORMAL"))
    address = [f"localhost:{running.port}"]
    try:
        with grpc.insecure_channel(address[0]) as channel:
            build_network(channel)
        with Consumer(lambda: address[0], rng) as consumer:
            with grpc.insecure_channel(address[0]) as channel:
                random_operations([channel], rng, 25)
            running.stop(grace_s=0.5)  # the consumer's stream breaks; it resumes on the new one
            running = start_server("localhost:0", SqliteStore(path, synchronous="NORMAL"))
            address[0] = f"localhost:{running.port}"
            with grpc.insecure_channel(address[0]) as channel:
                random_operations([channel], rng, 25)
                assert_agrees(consumer, channel)
            assert consumer.reconnects > 1
    finally:
        running.stop(grace_s=0.5)


@pytest.fixture
def two_postgres_servers(postgres_dsn: str) -> Iterator[list[Running]]:
    started = [
        start_server("localhost:0", PostgresStore(postgres_dsn, pool_size=4)) for _ in range(2)
    ]
    yield started
    for running in started:
        running.stop(grace_s=0.5)


def test_on_postgresql_a_consumer_switching_servers_sees_every_server_s_changes(
    two_postgres_servers: list[Running],
):
    rng = random.Random(7)
    targets = [f"localhost:{running.port}" for running in two_postgres_servers]
    channels = [grpc.insecure_channel(target) for target in targets]
    try:
        build_network(channels[0])
        with Consumer(lambda: rng.choice(targets), random.Random(8)) as consumer:
            random_operations(channels, rng, 60)
            assert_agrees(consumer, channels[1])
            assert consumer.reconnects > 1
    finally:
        for channel in channels:
            channel.close()


# --- tokens, filters, heartbeats, retention --------------------------------------------------


@pytest.fixture
def feed(omniroute: Running) -> Iterator[tuple[grpc.Channel, Any]]:
    with grpc.insecure_channel(f"localhost:{omniroute.port}") as channel:
        build_network(channel)
        yield channel, availability_feed_pb2_grpc.AvailabilityFeedServiceStub(channel)


def test_paging_returns_each_change_once_and_says_when_it_is_caught_up(feed):
    channel, stub = feed
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    for on_hand in range(1, 6):
        inventory.SetStock(inv.SetStockRequest(levels=[level("loc-d", "sku-9", on_hand)]))
    sequences, token = [], ""
    while True:
        page = stub.ListAvailabilityChanges(
            fd.ListAvailabilityChangesRequest(
                page_token=token, page_size=2, filter=fd.AvailabilityFilter(skus=["sku-9"])
            )
        )
        sequences += [change.sequence for change in page.changes]
        assert [c.record.on_hand for c in page.changes] == sorted(
            c.record.on_hand for c in page.changes
        )
        token = page.next_page_token
        if page.caught_up:
            break
    # loc-d and grp-abcd (which holds it) change with each level
    assert len(sequences) == 10
    assert sequences == sorted(set(sequences))
    inventory.SetStock(inv.SetStockRequest(levels=[level("loc-d", "sku-9", 9)]))
    later = stub.ListAvailabilityChanges(fd.ListAvailabilityChangesRequest(page_token=token))
    assert [(c.record.place.location_id, c.record.on_hand) for c in later.changes] == [
        ("loc-d", 9),
        ("", 9),
    ]


def test_a_filter_that_matches_nothing_gets_heartbeats_that_move_its_token(feed):
    channel, stub = feed
    stream = stub.WatchAvailability(
        fd.WatchAvailabilityRequest(
            filter=fd.AvailabilityFilter(skus=["no-such-sku"]), heartbeat_interval={"seconds": 1}
        ),
        timeout=30,
    )
    first = next(stream)
    inventory_pb2_grpc.InventoryServiceStub(channel).SetStock(
        inv.SetStockRequest(levels=[level("loc-a", "sku-1", 4)])
    )
    heartbeat = next(stream)
    stream.cancel()
    assert not heartbeat.changes
    assert heartbeat.resume_token != first.resume_token, "the token moved past what was skipped"


def test_a_token_older_than_the_retention_is_out_of_range(store):
    running = start_server("localhost:0", store, sweep_interval_s=0.05, change_log_retention_s=0.2)
    try:
        with grpc.insecure_channel(f"localhost:{running.port}") as channel:
            build_network(channel)
            stub = availability_feed_pb2_grpc.AvailabilityFeedServiceStub(channel)
            first = stub.ListAvailabilityChanges(fd.ListAvailabilityChangesRequest())
            inventory_pb2_grpc.InventoryServiceStub(channel).SetStock(
                inv.SetStockRequest(levels=[level("loc-a", "sku-1", 4)])
            )

            def refused() -> bool:
                try:
                    stub.ListAvailabilityChanges(
                        fd.ListAvailabilityChangesRequest(page_token=first.next_page_token)
                    )
                except grpc.RpcError as error:
                    return failure(error).reason == "CHANGE_TOKEN_EXPIRED"
                return False

            assert wait_until(refused, timeout_s=30)
            with pytest.raises(grpc.RpcError) as caught:
                next(
                    stub.WatchAvailability(
                        fd.WatchAvailabilityRequest(resume_token=first.next_page_token),
                        timeout=RPC_TIMEOUT_S,
                    )
                )
            refusal = failure(caught.value)
            assert (refusal.code, refusal.reason) == (
                grpc.StatusCode.OUT_OF_RANGE,
                "CHANGE_TOKEN_EXPIRED",
            )
            # the oldest token still resumes
            stub.ListAvailabilityChanges(
                fd.ListAvailabilityChangesRequest(page_token=refusal.metadata["oldest_token"])
            )
    finally:
        running.stop(grace_s=0.5)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (fd.WatchAvailabilityRequest(resume_token="not-a-token"), "resume_token"),
        (
            fd.WatchAvailabilityRequest(snapshot=True, filter=fd.AvailabilityFilter(skus=["a"])),
            "filter",
        ),
        (fd.WatchAvailabilityRequest(heartbeat_interval={"nanos": 1000}), "heartbeat_interval"),
        (
            fd.WatchAvailabilityRequest(filter=fd.AvailabilityFilter(skus=["a", "a"])),
            "filter.skus[1]",
        ),
    ],
)
def test_bad_watch_requests_are_refused_with_the_field(feed, request_, field):
    _channel, stub = feed
    with pytest.raises(grpc.RpcError) as caught:
        next(stub.WatchAvailability(request_, timeout=RPC_TIMEOUT_S))
    refusal = failure(caught.value)
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in refusal.fields


@pytest.mark.parametrize("kept", [10_000, 5], ids=["in memory", "memory overtaken"])
def test_a_consumer_that_stops_reading_holds_up_no_one_and_later_gets_everything(
    feed, monkeypatch: pytest.MonkeyPatch, kept: int
):
    """With 5 entries kept in memory the stream falls behind what the server holds and reads
    the log itself."""
    monkeypatch.setattr(server.feed, "KEPT", kept)
    channel, stub = feed
    slow = stub.WatchAvailability(
        fd.WatchAvailabilityRequest(filter=fd.AvailabilityFilter(skus=["sku-1"])), timeout=120
    )
    opening = next(slow)  # and then nothing read while the changes commit
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    for on_hand in range(1, 301):  # loc-a, grp-ab and grp-abcd change each time
        inventory.SetStock(inv.SetStockRequest(levels=[level("loc-a", "sku-1", on_hand)]))
    polled, token = 0, opening.resume_token
    while True:
        page = stub.ListAvailabilityChanges(
            fd.ListAvailabilityChangesRequest(page_token=token, page_size=1000)
        )
        polled += len(page.changes)
        token = page.next_page_token
        if page.caught_up:
            break
    assert polled == 900
    at_loc_a, sequences = [], []
    for message in slow:
        for change in message.changes:
            sequences.append(change.sequence)
            if change.record.place.location_id == "loc-a":
                at_loc_a.append(change.record.on_hand)
        if len(sequences) >= 900:
            break
    slow.cancel()
    assert at_loc_a == list(range(1, 301))
    assert sequences == sorted(set(sequences))


def test_a_group_change_that_moves_what_reservations_need_logs_the_locations_it_frees(feed):
    """grp-ab's 5 units can come only from loc-b until grp-ab also holds loc-c: then loc-b, a
    member before and after, can promise its stock again."""
    channel, stub = feed
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    inventory.SetStock(
        inv.SetStockRequest(levels=[level("loc-b", "sku-7", 5), level("loc-c", "sku-7", 5)])
    )
    reservation_pb2_grpc.ReservationServiceStub(channel).CreateReservation(
        res.CreateReservationRequest(items=[item("sku-7", at_group("grp-ab"), 5)])
    )
    assert current(channel, ["sku-7"])[("sku-7", "loc-b", "")].available_to_order == 0
    token = ""
    while not (
        page := stub.ListAvailabilityChanges(fd.ListAvailabilityChangesRequest(page_token=token))
    ).caught_up:
        token = page.next_page_token
    token = page.next_page_token
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(
            location_groups=[group("grp-ab", "loc-a", "loc-b", "loc-c")]
        )
    )
    logged = {
        key(change.record): change.record
        for change in stub.ListAvailabilityChanges(
            fd.ListAvailabilityChangesRequest(page_token=token)
        ).changes
    }
    now = current(channel, ["sku-7"])
    assert now[("sku-7", "loc-b", "")].available_to_order == 5
    for changed in (("sku-7", "loc-b", ""), ("sku-7", "", "grp-ab")):
        assert logged[changed] == now[changed], changed
