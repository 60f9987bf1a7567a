"""Races through the real server: many client threads, each on its own channel, compete for
scarce stock. Whatever the interleaving, nothing is oversold, the ledger's counters equal the
reservation lines, and group reservations stay coverable by their members' stock."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc, reservation_pb2_grpc
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.api.helpers import (
    RPC_TIMEOUT_S,
    all_reservations,
    fulfill_item,
    group,
    open_by_place,
    place_id,
    release_item,
    retry_aborted,
    transfer_item,
)
from tests.support import at, at_group, availability, failure, item, level, location, wait_until

pytestmark = pytest.mark.timeout(180)
THREADS = 16


class Client:
    """One client thread's stubs on its own channel."""

    def __init__(self, channel: grpc.Channel, index: int) -> None:
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
        self.reservations = reservation_pb2_grpc.ReservationServiceStub(channel)
        self.index = index
        self.random = random.Random(index)

    def create(self, sku: str, place: inv.Place, quantity: int, reservation_id: str = "") -> Any:
        return retry_aborted(
            self.reservations.CreateReservation,
            res.CreateReservationRequest(
                reservation_id=reservation_id, items=[item(sku, place, quantity)]
            ),
        )


def race(port: int, body: Callable[[Client], None], threads: int = THREADS) -> None:
    """Runs `body` in `threads` threads that start together, each with its own channel;
    re-raises the first failure and fails if any thread is still running after 120 s."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def run(index: int) -> None:
        try:
            with grpc.insecure_channel(f"localhost:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
                client = Client(channel, index)
                start.wait(timeout=RPC_TIMEOUT_S)
                body(client)
        except BaseException as error:  # re-raised in the test thread
            errors.append(error)

    workers = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers), "a client thread hung"
    if errors:
        raise errors[0]


def stock_out(error: grpc.RpcError) -> int:
    """The `available` of an INSUFFICIENT_STOCK refusal (anything else is re-raised)."""
    refused = failure(error)
    if (refused.code, refused.reason) != (
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_STOCK",
    ):
        raise error
    return int(refused.metadata["available"])


def grab_until_refused(
    client: Client, sku: str, targets: list[inv.Place], granted: list[tuple[str, str, int]]
) -> None:
    """Reserves 1-3 units at random targets until every target has refused with nothing
    available (availability only falls in these races, so that is final)."""
    exhausted: set[str] = set()
    for _ in range(1000):
        left = [target for target in targets if place_id(target) not in exhausted]
        if not left:
            return
        target = client.random.choice(left)
        quantity = client.random.randint(1, 3)
        try:
            created = client.create(sku, target, quantity)
        except grpc.RpcError as error:
            if stock_out(error) == 0:
                exhausted.add(place_id(target))
            continue
        assert created.items[0].reserved == quantity
        granted.append((created.reservation.id, place_id(target), quantity))
    raise AssertionError("a client never ran out of stock")


def test_racing_reservations_of_a_scarce_sku_grant_exactly_the_stock(
    inventory, reservations, omniroute
):
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location("wh-1")]))
    inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "scarce", 100)]))
    granted: list[tuple[str, str, int]] = []

    race(omniroute.port, lambda client: grab_until_refused(client, "scarce", [at("wh-1")], granted))

    assert sum(quantity for _, _, quantity in granted) == 100
    record = availability(inventory, ["scarce"], ["wh-1"])[("wh-1", "scarce")]
    assert (record.on_hand, record.reserved) == (100, 100)
    assert (record.available_to_order, record.available_to_fulfill) == (0, 0)
    listed = all_reservations(reservations)
    assert sorted(r.id for r in listed) == sorted(rid for rid, _, _ in granted)
    assert open_by_place(listed, "scarce") == {"wh-1": 100}
    quantities = {r.id: r.lines[0].open for r in listed}
    assert all(quantities[rid] == quantity for rid, _, quantity in granted)


def test_racing_group_reservations_on_overlapping_groups_never_promise_more_than_members_cover(
    inventory, reservations, omniroute
):
    # Groups {A, B} and {B, C} share B; threads reserve at both groups and at the locations.
    stock = {"A": 20, "B": 15, "C": 25}
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location(name) for name in stock])
    )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(
            location_groups=[group("AB", "A", "B"), group("BC", "B", "C")]
        )
    )
    inventory.SetStock(
        inv.SetStockRequest(levels=[level(name, "hot", units) for name, units in stock.items()])
    )
    targets = [at_group("AB"), at_group("BC"), at("A"), at("B"), at("C")]
    granted: list[tuple[str, str, int]] = []

    race(omniroute.port, lambda client: grab_until_refused(client, "hot", targets, granted))

    by_place: dict[str, int] = defaultdict(int)
    for _, place, quantity in granted:
        by_place[place] += quantity
    view = availability(inventory, ["hot"], list(stock), ["AB", "BC"])
    assert {name: view[(name, "hot")].reserved for name in stock} == {
        name: by_place[name] for name in stock
    }
    assert {name: view[(name, "hot")].group_reserved for name in ("AB", "BC")} == {
        name: by_place[name] for name in ("AB", "BC")
    }
    listed = all_reservations(reservations)
    assert open_by_place(listed, "hot") == dict(by_place)
    assert_groups_coverable(
        {name: stock[name] - by_place[name] for name in stock}, by_place["AB"], by_place["BC"]
    )
    # Every thread was refused everywhere: every unit is promised, and nothing more.
    assert sum(by_place.values()) == sum(stock.values())
    assert all(record.available_to_order == 0 for record in view.values())


def assert_groups_coverable(capacity: dict[str, int], ab: int, bc: int) -> None:
    """Hall's condition for groups AB = {A, B} and BC = {B, C} over the capacity left at each
    location after its own reservations: the group reservations have an assignment."""
    assert all(units >= 0 for units in capacity.values()), capacity
    assert ab <= capacity["A"] + capacity["B"], (capacity, ab)
    assert bc <= capacity["B"] + capacity["C"], (capacity, bc)
    assert ab + bc <= sum(capacity.values()), (capacity, ab, bc)


def test_mixed_race_of_creates_transfers_fulfils_and_releases_keeps_the_ledger_consistent(
    inventory, reservations, omniroute
):
    stock = {"A": 40, "B": 30, "C": 50}
    members = {"AB": ("A", "B"), "BC": ("B", "C")}
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location(name) for name in stock])
    )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(
            location_groups=[group(name, *ids) for name, ids in members.items()]
        )
    )
    inventory.SetStock(
        inv.SetStockRequest(levels=[level(name, "mix", units) for name, units in stock.items()])
    )
    last_seen: dict[str, Any] = {}
    lock = threading.Lock()

    def shopper(client: Client) -> None:
        mine: dict[str, Any] = {}
        for step in range(40):
            action = client.random.choice(["create", "create", "transfer", "fulfil", "release"])
            try:
                reservation = act(client, action, mine, members, f"{client.index}-{step}")
            except grpc.RpcError as error:
                stock_out(error)  # only running out of stock is an acceptable refusal
                continue
            if reservation is not None:
                mine[reservation.id] = reservation
        with lock:
            last_seen.update(mine)

    race(omniroute.port, shopper, threads=8)

    listed = {r.id: r for r in all_reservations(reservations)}
    assert listed == last_seen  # every acknowledged change is exactly what is stored
    for reservation in listed.values():
        for line in reservation.lines:
            assert (
                line.quantity == line.fulfilled + line.released + line.transferred_out + line.open
            )
    opened = open_by_place(listed.values(), "mix")
    fulfilled: dict[str, int] = defaultdict(int)
    for reservation in listed.values():
        for line in reservation.lines:
            fulfilled[place_id(line.place)] += line.fulfilled
    view = availability(inventory, ["mix"], list(stock), list(members))
    for name, units in stock.items():
        record = view[(name, "mix")]
        assert record.on_hand == units - fulfilled[name]
        assert record.reserved == opened.get(name, 0)
        assert 0 <= record.available_to_order <= record.on_hand - record.reserved
    for name in members:
        assert view[(name, "mix")].group_reserved == opened.get(name, 0)
    assert_groups_coverable(
        {name: view[(name, "mix")].on_hand - opened.get(name, 0) for name in stock},
        opened.get("AB", 0),
        opened.get("BC", 0),
    )


def act(
    client: Client,
    action: str,
    mine: dict[str, Any],
    members: dict[str, tuple[str, ...]],
    new_id: str,
) -> Any:
    """One random step of a shopper on its own reservations; returns the reservation as the
    server left it (None when there was nothing to do)."""
    rng = client.random
    stub = client.reservations
    lines = [(rid, line) for rid, r in sorted(mine.items()) for line in r.lines if line.open > 0]
    if action == "create" or not lines:
        target = rng.choice([at_group("AB"), at_group("BC"), at("A"), at("B"), at("C")])
        return client.create("mix", target, rng.randint(1, 3), f"mix-{new_id}").reservation
    rid, line = rng.choice(lines)
    quantity = rng.randint(1, line.open)
    if action == "transfer":
        if line.place.location_group_id:
            target = at(rng.choice(members[line.place.location_group_id]))
        else:
            others = [name for name in ("A", "B", "C") if name != line.place.location_id]
            target = rng.choice([at(rng.choice(others)), at_group(rng.choice(list(members)))])
        request: Any = res.TransferReservationRequest(
            reservation_id=rid, items=[transfer_item("mix", line.place, target, quantity)]
        )
        return retry_aborted(stub.TransferReservation, request).reservation
    if action == "fulfil" and line.place.location_id:
        request = res.FulfillReservationRequest(
            reservation_id=rid, items=[fulfill_item("mix", line.place, quantity)]
        )
        return retry_aborted(stub.FulfillReservation, request).reservation
    if rng.random() < 0.3:
        request = res.ReleaseReservationRequest(reservation_id=rid, release_all=True)
    else:
        request = res.ReleaseReservationRequest(
            reservation_id=rid, items=[release_item("mix", line.place, quantity)]
        )
    return retry_aborted(stub.ReleaseReservation, request).reservation


def test_expiry_racing_fulfilment_never_both_ships_and_releases_a_unit(
    inventory, reservations, omniroute
):
    # Reservations of 4 units with TTLs spread over half a second are shipped a unit at a time
    # by racing clients, so some ship fully, some partly and some not at all before they
    # expire: each unit ends either shipped (and out of on hand) or released, never both.
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location("wh-1")]))
    inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "perishable", 1000)]))
    ids = [f"ttl-{n:03d}" for n in range(32)]
    for number, reservation_id in enumerate(ids):
        reservations.CreateReservation(
            res.CreateReservationRequest(
                reservation_id=reservation_id,
                items=[item("perishable", at("wh-1"), 4)],
                ttl=Duration(nanos=(100 + 15 * number) * 1_000_000),
            )
        )
    shipped: dict[str, int] = defaultdict(int)
    lock = threading.Lock()

    def shipper(client: Client) -> None:
        pending = ids[client.index :: THREADS // 2]
        for _ in range(1000):
            if not pending:
                return
            for reservation_id in list(pending):
                request = res.FulfillReservationRequest(
                    reservation_id=reservation_id,
                    items=[fulfill_item("perishable", at("wh-1"), 1)],
                )
                try:
                    retry_aborted(client.reservations.FulfillReservation, request)
                except grpc.RpcError as error:
                    refused = failure(error)
                    assert refused.reason == "RESERVATION_EXPIRED", refused
                    pending.remove(reservation_id)
                    continue
                with lock:
                    shipped[reservation_id] += 1
                    if shipped[reservation_id] == 4:
                        pending.remove(reservation_id)
            time.sleep(0.02)
        raise AssertionError("reservations neither shipped nor expired")

    race(omniroute.port, shipper, threads=THREADS // 2)

    assert wait_until(
        lambda: all(r.state != res.RESERVATION_STATE_ACTIVE for r in all_reservations(reservations))
    ), "the sweeper left reservations active"
    stored = {r.id: r.lines[0] for r in all_reservations(reservations)}
    for reservation_id, line in stored.items():
        assert line.fulfilled == shipped[reservation_id]
        assert (line.open, line.fulfilled + line.released) == (0, 4)
    record = availability(inventory, ["perishable"], ["wh-1"])[("wh-1", "perishable")]
    assert (record.on_hand, record.reserved) == (1000 - sum(shipped.values()), 0)


def test_group_membership_changes_racing_group_reservations_keep_them_coverable(
    inventory, reservations, omniroute
):
    stock = {"A": 6, "B": 6, "C": 12}
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location(name) for name in stock])
    )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(location_groups=[group("web", "A", "B", "C")])
    )
    inventory.SetStock(
        inv.SetStockRequest(levels=[level(name, "flux", units) for name, units in stock.items()])
    )
    granted: list[tuple[str, str, int]] = []

    def body(client: Client) -> None:
        if client.index == 0:
            # The merchant keeps redrawing the group; shrinking is refused once the
            # remaining members could not cover what the group holds.
            for step in range(60):
                members = ("A", "B") if step % 2 == 0 else ("A", "B", "C")
                try:
                    retry_aborted(
                        client.inventory.UpsertLocationGroups,
                        inv.UpsertLocationGroupsRequest(location_groups=[group("web", *members)]),
                    )
                except grpc.RpcError as error:
                    assert failure(error).reason == "GROUP_RESERVATIONS_UNCOVERABLE"
            return
        for _ in range(30):
            try:
                created = client.create("flux", at_group("web"), client.random.randint(1, 2))
            except grpc.RpcError as error:
                stock_out(error)
                continue
            granted.append((created.reservation.id, "web", created.items[0].reserved))

    race(omniroute.port, body, threads=8)

    members = next(
        g.location_ids
        for g in inventory.ListLocationGroups(inv.ListLocationGroupsRequest()).location_groups
        if g.id == "web"
    )
    held = sum(quantity for _, _, quantity in granted)
    view = availability(inventory, ["flux"], groups=["web"])[("web", "flux")]
    assert view.group_reserved == held
    assert open_by_place(all_reservations(reservations), "flux") == ({"web": held} if held else {})
    assert held <= sum(stock[name] for name in members)
