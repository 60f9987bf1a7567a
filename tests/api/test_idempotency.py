"""AIP-155 through the real server: a mutating request retried with the same request_id returns
the first response, byte for byte, and changes nothing; failed requests are not remembered.

Runs against the `world` of tests/api/conftest.py (sku-1: 10 at wh-1, 5 at wh-2, 2 at st-1;
g-1 = {wh-1, wh-2}, g-2 = {wh-2, st-1}; r-1 holds 3 at wh-1 and 2 at g-1)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.inventory.v1 import reservation_pb2_grpc

from tests.api.helpers import (
    RPC_TIMEOUT_S,
    fulfill_item,
    group,
    refused,
    release_item,
    transfer_item,
)
from tests.support import at, at_group, availability, failure, item, level, location

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Mutation:
    name: str
    method: Callable[[Any], Any]
    request: Any


MUTATIONS = [
    Mutation(
        "UpsertLocations",
        lambda w: w.inventory.UpsertLocations,
        inv.UpsertLocationsRequest(locations=[location("st-2", 43.0, -71.0)]),
    ),
    Mutation(
        "UpsertLocationGroups",
        lambda w: w.inventory.UpsertLocationGroups,
        inv.UpsertLocationGroupsRequest(location_groups=[group("g-3", "wh-1", "st-1")]),
    ),
    Mutation(
        "SetStock (effective now)",
        lambda w: w.inventory.SetStock,
        inv.SetStockRequest(levels=[level("wh-2", "sku-1", 8), level("st-1", "sku-2", 4)]),
    ),
    Mutation(
        "AdjustStock",
        lambda w: w.inventory.AdjustStock,
        inv.AdjustStockRequest(
            adjustments=[inv.StockAdjustment(location_id="wh-1", sku="sku-1", on_hand_delta=4)]
        ),
    ),
    Mutation(
        "CreateReservation (generated id)",
        lambda w: w.reservations.CreateReservation,
        res.CreateReservationRequest(
            items=[item("sku-1", at("wh-1"), 2), item("sku-1", at_group("g-2"), 1)]
        ),
    ),
    Mutation(
        "CreateReservation (partial)",
        lambda w: w.reservations.CreateReservation,
        res.CreateReservationRequest(
            reservation_id="partial", items=[item("sku-1", at("st-1"), 5)], allow_partial=True
        ),
    ),
    Mutation(
        "TransferReservation",
        lambda w: w.reservations.TransferReservation,
        res.TransferReservationRequest(
            reservation_id="r-1",
            items=[transfer_item("sku-1", at_group("g-1"), at("wh-2"), 2)],
        ),
    ),
    Mutation(
        "FulfillReservation",
        lambda w: w.reservations.FulfillReservation,
        res.FulfillReservationRequest(
            reservation_id="r-1", items=[fulfill_item("sku-1", at("wh-1"), 2)]
        ),
    ),
    Mutation(
        "ReleaseReservation (items)",
        lambda w: w.reservations.ReleaseReservation,
        res.ReleaseReservationRequest(
            reservation_id="r-1", items=[release_item("sku-1", at("wh-1"), 1)]
        ),
    ),
    Mutation(
        "ReleaseReservation (all)",
        lambda w: w.reservations.ReleaseReservation,
        res.ReleaseReservationRequest(reservation_id="r-1", release_all=True),
    ),
]


def named(location_id: str, display_name: str) -> inv.Location:
    made = location(location_id, 41.0)
    made.display_name = display_name
    return made


def with_request_id(request: Any, request_id: str) -> Any:
    copied = type(request)()
    copied.CopyFrom(request)
    copied.request_id = request_id
    return copied


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_retried_mutation_returns_the_first_response_and_changes_nothing(world, mutation):
    method = mutation.method(world)
    request = with_request_id(mutation.request, "retry-me")
    before = world.snapshot()

    first = method(request, timeout=RPC_TIMEOUT_S)
    after_first = world.snapshot()
    retried = [method(request, timeout=RPC_TIMEOUT_S) for _ in range(3)]

    assert after_first != before, "the first call should have changed something"
    for response in retried:
        assert response.SerializeToString(deterministic=True) == first.SerializeToString(
            deterministic=True
        )
    assert world.snapshot() == after_first


def test_retried_create_reserves_once(world):
    request = res.CreateReservationRequest(
        request_id="checkout-7", items=[item("sku-1", at("wh-1"), 4)]
    )

    first = world.reservations.CreateReservation(request)
    second = world.reservations.CreateReservation(request)

    assert second.reservation.id == first.reservation.id
    record = availability(world.inventory, ["sku-1"], ["wh-1"])[("wh-1", "sku-1")]
    assert (record.reserved, record.available_to_order) == (3 + 4, 10 - 3 - 4)
    assert len(world.snapshot()["reservations"]) == 2


def test_retried_adjustment_adds_once(world):
    request = inv.AdjustStockRequest(
        request_id="receipt-PO-1",
        adjustments=[inv.StockAdjustment(location_id="wh-2", sku="sku-1", on_hand_delta=6)],
    )

    first = world.inventory.AdjustStock(request)
    second = world.inventory.AdjustStock(request)

    assert first.results[0].on_hand == second.results[0].on_hand == 11
    assert availability(world.inventory, ["sku-1"], ["wh-2"])[("wh-2", "sku-1")].on_hand == 11


def test_retry_after_later_changes_replays_the_first_response_without_undoing_them(world):
    adjust = inv.AdjustStockRequest(
        request_id="shrink-1",
        adjustments=[inv.StockAdjustment(location_id="wh-1", sku="sku-1", on_hand_delta=-2)],
    )
    first = world.inventory.AdjustStock(adjust)
    world.inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "sku-1", 30)]))
    upsert = inv.UpsertLocationsRequest(request_id="rename-1", locations=[named("wh-2", "old")])
    world.inventory.UpsertLocations(upsert)
    world.inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[named("wh-2", "new")]))
    before = world.snapshot()

    assert world.inventory.AdjustStock(adjust) == first
    assert world.inventory.UpsertLocations(upsert).locations[0].display_name == "old"
    assert world.snapshot() == before
    assert [loc.display_name for loc in before["locations"] if loc.id == "wh-2"] == ["new"]


def test_retried_create_after_its_reservation_was_released_does_not_reserve_again(world):
    request = res.CreateReservationRequest(
        request_id="checkout-8", reservation_id="o-8", items=[item("sku-1", at("wh-2"), 5)]
    )
    first = world.reservations.CreateReservation(request)
    world.reservations.ReleaseReservation(
        res.ReleaseReservationRequest(reservation_id="o-8", release_all=True)
    )
    before = world.snapshot()

    assert world.reservations.CreateReservation(request) == first
    assert world.snapshot() == before


def test_failed_request_is_not_remembered_so_its_retry_runs_again(world):
    request = res.CreateReservationRequest(
        request_id="checkout-9", items=[item("sku-1", at("wh-1"), 9)]
    )
    assert refused(world.reservations.CreateReservation, request).reason == "INSUFFICIENT_STOCK"
    world.inventory.AdjustStock(
        inv.AdjustStockRequest(
            adjustments=[inv.StockAdjustment(location_id="wh-1", sku="sku-1", on_hand_delta=2)]
        )
    )

    created = world.reservations.CreateReservation(request)

    assert created.items[0].reserved == 9
    assert world.reservations.CreateReservation(request) == created


def test_concurrent_duplicates_of_one_request_reserve_once_and_agree(world, omniroute):
    request = res.CreateReservationRequest(
        request_id="double-click", items=[item("sku-1", at_group("g-2"), 3)]
    )
    responses: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def client() -> None:
        try:
            with grpc.insecure_channel(f"localhost:{omniroute.port}") as channel:
                stub = reservation_pb2_grpc.ReservationServiceStub(channel)
                start.wait(timeout=RPC_TIMEOUT_S)
                responses.append(stub.CreateReservation(request, timeout=RPC_TIMEOUT_S))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert len(responses) == 16
    assert all(response == responses[0] for response in responses)
    record = availability(world.inventory, ["sku-1"], groups=["g-2"])[("g-2", "sku-1")]
    assert record.group_reserved == 3
    assert len(world.snapshot()["reservations"]) == 2


def test_one_request_id_raced_with_different_bodies_is_used_once(world, omniroute):
    # Sixteen different requests (different SKUs, so no shared stock to serialise on) race with
    # one request_id: exactly one runs, every other is refused as a reuse, nothing else changes.
    world.inventory.SetStock(
        inv.SetStockRequest(levels=[level("wh-2", f"race-{n}", 5) for n in range(16)])
    )
    before = world.snapshot()
    outcomes: list[Any] = []
    start = threading.Barrier(16)

    def client(number: int) -> None:
        request = res.CreateReservationRequest(
            request_id="one-key", items=[item(f"race-{number}", at("wh-2"), 1)]
        )
        with grpc.insecure_channel(f"localhost:{omniroute.port}") as channel:
            stub = reservation_pb2_grpc.ReservationServiceStub(channel)
            start.wait(timeout=RPC_TIMEOUT_S)
            try:
                outcomes.append(stub.CreateReservation(request, timeout=RPC_TIMEOUT_S))
            except grpc.RpcError as error:
                outcomes.append(failure(error))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    created = [o for o in outcomes if isinstance(o, res.CreateReservationResponse)]
    refusals = [
        (o.code, o.reason) for o in outcomes if not isinstance(o, res.CreateReservationResponse)
    ]
    assert len(created) == 1
    assert refusals == [(grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")] * 15
    after = world.snapshot()
    assert [r.id for r in after["reservations"]] == sorted(
        [r.id for r in before["reservations"]] + [created[0].reservation.id]
    )


def test_cancel_all_with_a_reused_request_id_for_another_reservation_is_refused_as_reuse(world):
    world.reservations.ReleaseReservation(
        res.ReleaseReservationRequest(reservation_id="r-1", release_all=True, request_id="cancel")
    )
    before = world.snapshot()

    got = refused(
        world.reservations.ReleaseReservation,
        res.ReleaseReservationRequest(
            reservation_id="no-such", release_all=True, request_id="cancel"
        ),
    )

    assert (got.code, got.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert world.snapshot() == before
