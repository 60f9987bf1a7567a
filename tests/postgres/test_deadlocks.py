"""No interleaving of multi-item reservations and transfers deadlocks: clients on two servers
touch the same SKUs in opposite orders ([a, b] against [b, a]) in creates, transfers, fulfils,
releases and stock receipts, on shared reservations, while the network is re-published.

The servers' sessions run with deadlock_timeout = 60 s, far beyond the clients' 20 s deadline:
a deadlock would therefore not be broken (and hidden by the server's retry) by PostgreSQL's
detector, but show up as a DEADLINE_EXCEEDED call. Every call must end with a documented code,
and the ledger must still add up."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from typing import Any

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.postgres.cluster import (
    GROUPS,
    LOCATIONS,
    PLACES,
    call,
    lines_differ,
    logs,
    open_lines,
    place,
    place_key,
    problems,
    received,
    record_created,
    reference,
    run_threads,
    seed,
    server_dsn,
    servers,
    snapshot,
)
from tests.support.process import ServerProcess

SKUS = ["a", "b", "c"]
OK = grpc.StatusCode.OK
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
DOCUMENTED = {
    "OK",
    "FAILED_PRECONDITION INSUFFICIENT_STOCK",
    "FAILED_PRECONDITION INSUFFICIENT_RESERVED_QUANTITY",
    "ABORTED CONFLICT",
}


@pytest.mark.slow
def test_opposite_lock_orders_never_deadlock(postgres_dsn: str) -> None:
    dsn = server_dsn(postgres_dsn, settings={"deadlock_timeout": "60s"})
    initial = {(sku, loc): 40 for sku in SKUS for loc in LOCATIONS}
    model = reference(GROUPS, initial)
    shared: list[str] = []
    shared_lock = threading.Lock()
    outcomes: Counter[str] = Counter()

    with servers(dsn, 2) as running:
        seed(running[0], LOCATIONS, GROUPS, initial)

        def note(what: str, outcome: Any) -> bool:
            key = f"{outcome.code.name} {outcome.reason}".strip()
            with shared_lock:
                outcomes[key] += 1
                outcomes[f"{what} {key}"] += 1
            return outcome.code is OK

        def client(index: int) -> None:
            rng = random.Random(index)
            targets: list[ServerProcess] = running[index % 2 :] + running[: index % 2]
            for _ in range(20):
                order = list(SKUS) if index % 2 else list(reversed(SKUS))
                chosen = order[: rng.choice([2, 3])]
                kind = rng.choices(
                    ["create", "transfer", "fulfil", "release", "adjust", "network"],
                    weights=[4, 4, 2, 2, 1, 1],
                )[0]
                with shared_lock:
                    rid = rng.choice(shared) if shared else ""
                lines = {sku: (at, units) for sku, at, units in open_lines(model, rid)}
                if kind == "create" or not rid:
                    request: Any = res.CreateReservationRequest(
                        items=[
                            res.ReservationItem(
                                sku=sku, place=place(rng.choice(PLACES)), quantity=1
                            )
                            for sku in chosen
                        ],
                        request_id=f"create-{uuid.uuid4()}",
                    )
                    outcome = call(
                        targets, "reservations", "CreateReservation", request, attempts=3
                    )
                    if note("create", outcome):
                        record_created(model, outcome.response)
                        with shared_lock:
                            shared.append(outcome.response.reservation.id)
                elif kind == "transfer":
                    moves = [
                        (sku, lines[sku][0], rng.choice([p for p in PLACES if p != lines[sku][0]]))
                        for sku in chosen
                        if sku in lines
                    ]
                    if not moves:
                        continue
                    request = res.TransferReservationRequest(
                        reservation_id=rid,
                        items=[
                            res.TransferItem(
                                sku=sku, from_place=place(source), to_place=place(to), quantity=1
                            )
                            for sku, source, to in moves
                        ],
                        request_id=f"transfer-{uuid.uuid4()}",
                    )
                    outcome = call(
                        targets, "reservations", "TransferReservation", request, attempts=3
                    )
                    if note("transfer", outcome):
                        for sku, source, to in moves:
                            model.transfer(rid, sku, place_key(source), place_key(to), 1)
                elif kind in ("fulfil", "release"):
                    picked = [
                        (sku, lines[sku][0])
                        for sku in chosen
                        if sku in lines and (kind == "release" or not lines[sku][0].startswith("G"))
                    ]
                    if not picked:
                        continue
                    if kind == "fulfil":
                        request = res.FulfillReservationRequest(
                            reservation_id=rid,
                            items=[
                                res.FulfillItem(sku=sku, place=place(at), quantity=1)
                                for sku, at in picked
                            ],
                            request_id=f"fulfil-{uuid.uuid4()}",
                        )
                        outcome = call(
                            targets, "reservations", "FulfillReservation", request, attempts=3
                        )
                        if note("fulfil", outcome):
                            for sku, at in picked:
                                model.fulfill(rid, sku, at, 1)
                    else:
                        request = res.ReleaseReservationRequest(
                            reservation_id=rid,
                            items=[
                                res.ReleaseItem(sku=sku, place=place(at), quantity=1)
                                for sku, at in picked
                            ],
                            request_id=f"release-{uuid.uuid4()}",
                        )
                        outcome = call(
                            targets, "reservations", "ReleaseReservation", request, attempts=3
                        )
                        if note("release", outcome):
                            for sku, at in picked:
                                model.release(rid, sku, place_key(at), 1)
                elif kind == "adjust":
                    request = inv.AdjustStockRequest(
                        adjustments=[
                            inv.StockAdjustment(
                                location_id=rng.choice(LOCATIONS), sku=sku, on_hand_delta=1
                            )
                            for sku in chosen
                        ],
                        request_id=f"adjust-{uuid.uuid4()}",
                    )
                    outcome = call(targets, "inventory", "AdjustStock", request, attempts=3)
                    if note("adjust", outcome):
                        for adjustment in request.adjustments:
                            model.adjust(adjustment.location_id, adjustment.sku, 1)
                else:
                    # The same membership again: takes the exclusive network lock.
                    request = inv.UpsertLocationGroupsRequest(
                        location_groups=[
                            inv.LocationGroup(id=group, display_name=group, location_ids=members)
                            for group, members in sorted(GROUPS.items(), reverse=index % 2 == 0)
                        ],
                        request_id=f"groups-{uuid.uuid4()}",
                    )
                    note(
                        "network",
                        call(targets, "inventory", "UpsertLocationGroups", request, attempts=3),
                    )

        errors = run_threads([lambda i=i: client(i) for i in range(10)], timeout_s=90)
        assert not errors, f"{errors} (hung calls: deadlock?) {dict(outcomes)}\n{logs(running)}"
        undocumented = {
            key: count
            for key, count in outcomes.items()
            if key.split(" ")[0] in {code.name for code in grpc.StatusCode}
            and key not in DOCUMENTED
        }
        assert not undocumented, f"{undocumented} (DEADLINE_EXCEEDED: deadlock)\n{logs(running)}"
        final = snapshot(postgres_dsn)
        assert problems(final, received(model)) == []
        assert lines_differ(final, model) == []
    assert outcomes["transfer OK"] > 0, outcomes
    assert outcomes["create OK"] > 0, outcomes
    print(dict(outcomes))
