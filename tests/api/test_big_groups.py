"""Big overlapping groups through the real server (both backends): ten groups that each hold
every one of 2,000 locations, stock at every location, and group reservations. The answers are
the members' sums, and the server keeps answering other callers while a request that must sum
every member's stock (a cold cache, after a stock update) runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.api.helpers import group
from tests.support import at, at_group, item, level, location

LOCATIONS = [f"store-{i:04d}" for i in range(2000)]
GROUPS = [f"grp-{g}" for g in range(10)]
SKUS = [f"sku-{s:02d}" for s in range(8)]
ON_HAND = 3


@pytest.fixture
def big_groups(inventory, reservations) -> None:
    for start in range(0, len(LOCATIONS), 1000):
        inventory.UpsertLocations(
            inv.UpsertLocationsRequest(
                locations=[location(x) for x in LOCATIONS[start : start + 1000]]
            )
        )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(location_groups=[group(g, *LOCATIONS) for g in GROUPS])
    )
    stock = [level(x, sku, ON_HAND) for sku in SKUS for x in LOCATIONS]
    for start in range(0, len(stock), 1000):
        inventory.SetStock(inv.SetStockRequest(levels=stock[start : start + 1000]))
    reservations.CreateReservation(
        res.CreateReservationRequest(items=[item(sku, at_group("grp-0"), 5) for sku in SKUS])
    )


def answers_meanwhile(channel: grpc.Channel, heavy: Callable[[], Any]) -> tuple[Any, list[bool]]:
    """Runs `heavy` on another thread and sends health checks one after another until it
    returns; for each, whether it was answered while `heavy` was still running."""
    health = health_pb2_grpc.HealthStub(channel)
    done = threading.Event()
    result: list[Any] = []

    def run() -> None:
        result.append(heavy())
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    answered = []
    while not done.is_set() and len(answered) < 3:
        health.Check(health_pb2.HealthCheckRequest(), timeout=30)
        answered.append(not done.is_set())
    worker.join()
    return result[0], answered


def invalidate(inventory) -> None:
    """A network change: every SKU's sums per membership class are read again."""
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location(LOCATIONS[0])]))


@pytest.mark.usefixtures("big_groups")
def test_group_availability_over_every_member_is_answered_while_health_checks_go_on(
    inventory, channel
):
    invalidate(inventory)
    request = inv.GetAvailabilityRequest(skus=SKUS, location_group_ids=GROUPS)
    response, answered = answers_meanwhile(
        channel, lambda: inventory.GetAvailability(request, timeout=60)
    )
    assert answered
    assert all(answered), "health checks waited for the group read"
    total = ON_HAND * len(LOCATIONS)
    for record in response.records:
        held = 5 if record.place.location_group_id == "grp-0" else 0
        assert (record.on_hand, record.reserved) == (total, held)
        # Every group can still take what grp-0's reservation leaves: the members are shared.
        assert record.available_to_order == total - 5, (record.place, record.sku)


@pytest.mark.usefixtures("big_groups")
def test_a_reservation_at_a_big_group_is_placed_while_health_checks_go_on(
    inventory, reservations, channel
):
    invalidate(inventory)
    request = res.CreateReservationRequest(items=[item(sku, at_group("grp-7"), 2) for sku in SKUS])
    response, answered = answers_meanwhile(
        channel, lambda: reservations.CreateReservation(request, timeout=60)
    )
    assert answered
    assert all(answered), "health checks waited for the reservation"
    assert {line.sku for line in response.reservation.lines} == set(SKUS)
    at_store = inventory.GetAvailability(
        inv.GetAvailabilityRequest(skus=SKUS[:1], location_ids=LOCATIONS[:1])
    ).records[0]
    # 7 units are held at groups over 6,000 units of stock: no single store is needed.
    assert at_store.available_to_order == ON_HAND


@pytest.mark.usefixtures("big_groups")
def test_reservations_at_stores_of_big_groups_keep_group_answers_exact(inventory, reservations):
    for index in range(3):
        reservations.CreateReservation(
            res.CreateReservationRequest(items=[item(SKUS[0], at(LOCATIONS[index]), 2)])
        )
    record = inventory.GetAvailability(
        inv.GetAvailabilityRequest(skus=SKUS[:1], location_group_ids=["grp-3"])
    ).records[0]
    assert record.reserved == 6  # at its members; grp-0's 5 are grp-0's own
    assert record.available_to_order == ON_HAND * len(LOCATIONS) - 6 - 5
