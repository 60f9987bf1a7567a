"""Reservation expiry with three servers whose sweepers race for the same due reservations, and
clients racing the sweepers: each reservation expires exactly once, releasing exactly what was
open (no double release), and the counters still equal the open lines."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter

import grpc
import pytest
from google.protobuf import duration_pb2
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
    servers,
    snapshot,
)
from tests.support import wait_until
from tests.support.process import ServerProcess

SKUS = ["s0", "s1", "s2"]
TTL_S = 2
ACTIVE, EXPIRED = 1, 3
OK = grpc.StatusCode.OK


@pytest.mark.slow
def test_reservations_expire_exactly_once_with_several_sweeping_servers(
    postgres_dsn: str,
) -> None:
    initial = {(sku, loc): 1_000 for sku in SKUS for loc in LOCATIONS}
    model = reference(GROUPS, initial)
    expiring: list[str] = []
    lasting: list[str] = []
    outcomes: list[str] = []
    lock = threading.Lock()
    with servers(postgres_dsn, 3) as running:
        seed(running[0], LOCATIONS, GROUPS, initial)

        def client(index: int) -> None:
            rng = random.Random(index)
            targets = running[index % 3 :] + running[: index % 3]
            for number in range(8):
                ttl = number % 5 != 4  # one in five never expires: the control group
                items = [
                    res.ReservationItem(
                        sku=sku, place=place(rng.choice(PLACES)), quantity=rng.randint(2, 4)
                    )
                    for sku in rng.sample(SKUS, rng.choice([1, 2]))
                ]
                request = res.CreateReservationRequest(
                    items=items,
                    ttl=duration_pb2.Duration(seconds=TTL_S) if ttl else None,
                    request_id=f"create-{uuid.uuid4()}",
                )
                outcome = call(targets, "reservations", "CreateReservation", request)
                assert outcome.code is OK, outcome
                record_created(model, outcome.response)
                rid = outcome.response.reservation.id
                with lock:
                    (expiring if ttl else lasting).append(rid)
                # Change part of it at once, through another server: it may already be too
                # late near the deadline, which is then RESERVATION_EXPIRED and changes nothing.
                change(rid, targets[1:] + targets[:1], rng)

        def change(rid: str, targets: list[ServerProcess], rng: random.Random) -> None:
            lines = open_lines(model, rid)
            if not lines:
                return
            sku, at, _units = rng.choice(lines)
            if at.startswith("G"):
                to = rng.choice(GROUPS[at])
                request = res.TransferReservationRequest(
                    reservation_id=rid,
                    items=[
                        res.TransferItem(
                            sku=sku, from_place=place(at), to_place=place(to), quantity=1
                        )
                    ],
                    request_id=f"transfer-{uuid.uuid4()}",
                )
                outcome = call(targets, "reservations", "TransferReservation", request)
                if outcome.code is OK:
                    model.transfer(rid, sku, place_key(at), place_key(to), 1)
            elif rng.random() < 0.5:
                request = res.FulfillReservationRequest(
                    reservation_id=rid,
                    items=[res.FulfillItem(sku=sku, place=place(at), quantity=1)],
                    request_id=f"fulfil-{uuid.uuid4()}",
                )
                outcome = call(targets, "reservations", "FulfillReservation", request)
                if outcome.code is OK:
                    model.fulfill(rid, sku, at, 1)
            else:
                request = res.ReleaseReservationRequest(
                    reservation_id=rid,
                    items=[res.ReleaseItem(sku=sku, place=place(at), quantity=1)],
                    request_id=f"release-{uuid.uuid4()}",
                )
                outcome = call(targets, "reservations", "ReleaseReservation", request)
                if outcome.code is OK:
                    model.release(rid, sku, place_key(at), 1)
            with lock:
                outcomes.append(f"{outcome.code.name} {outcome.reason}".strip())

        errors = run_threads([lambda i=i: client(i) for i in range(5)], timeout_s=120)
        assert not errors, f"{errors}\n{logs(running)}"

        # Clients keep poking the expiring reservations until they are all gone: each poke is
        # either before the expiry (OK, counted) or after it (RESERVATION_EXPIRED, nothing).
        stop = threading.Event()

        def poker(index: int) -> None:
            rng = random.Random(100 + index)
            while not stop.is_set():
                rid = rng.choice(expiring)
                change(rid, running[index:] + running[:index], rng)
                time.sleep(0.05)

        pokers = [threading.Thread(target=poker, args=(i,), daemon=True) for i in range(3)]
        for thread in pokers:
            thread.start()
        try:

            def all_expired() -> bool:
                """None active any more (clients may have closed some before they expired)."""
                state = snapshot(postgres_dsn)
                return all(state.reservations[rid][0] != ACTIVE for rid in expiring)

            assert wait_until(all_expired, timeout_s=TTL_S + 30, every_s=0.2), logs(running)
        finally:
            stop.set()
            for thread in pokers:
                thread.join(30)
        assert not any(thread.is_alive() for thread in pokers)

        state = snapshot(postgres_dsn)
        assert problems(state, received(model)) == []
        # Expiry released exactly what the acknowledged calls had left open, once.
        for rid in expiring:
            if open_lines(model, rid):
                assert state.reservations[rid][0] == EXPIRED, rid
                model.expire(rid)
        assert lines_differ(state, model) == []
        assert all(state.reservations[rid][0] == ACTIVE for rid in lasting)
        # (Two pokers may race for a reservation's last open unit.)
        assert set(outcomes) <= {
            "OK",
            "FAILED_PRECONDITION RESERVATION_EXPIRED",
            "FAILED_PRECONDITION INSUFFICIENT_RESERVED_QUANTITY",
        }, outcomes
        assert "FAILED_PRECONDITION RESERVATION_EXPIRED" in outcomes, "no client raced expiry"

        # An expired reservation can no longer be shipped; releasing all of it is a no-op.
        rid = next(rid for rid in expiring if state.reservations[rid][0] == EXPIRED)
        line = next(key for key in state.lines if key[0] == rid)
        late = call(
            running,
            "reservations",
            "FulfillReservation",
            res.FulfillReservationRequest(
                reservation_id=rid,
                items=[res.FulfillItem(sku=line[1], place=place(line[3]), quantity=1)],
                request_id=f"late-{uuid.uuid4()}",
            ),
        )
        assert (late.code, late.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "RESERVATION_EXPIRED",
        )
        for server in running:
            done = call(
                [server],
                "reservations",
                "ReleaseReservation",
                res.ReleaseReservationRequest(
                    reservation_id=rid, release_all=True, request_id=f"cancel-{uuid.uuid4()}"
                ),
            )
            assert done.code is OK, done
        assert snapshot(postgres_dsn).lines == state.lines
        assert "Traceback" not in logs(running), logs(running)
    states = Counter(state.reservations[rid][0] for rid in expiring)
    print(f"expiring reservations by final state {dict(states)}; pokes {dict(Counter(outcomes))}")
