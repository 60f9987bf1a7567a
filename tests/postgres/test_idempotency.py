"""request_id idempotency (AIP-155) across servers sharing one PostgreSQL: a retry that lands on
another server gets the first answer byte for byte and changes nothing; a reused id with another
body is refused by every server; servers receiving one request at the same moment apply it once.
Also: one client-chosen reservation id created at once through two servers exists once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.postgres.cluster import (
    GROUPS,
    LOCATIONS,
    call,
    dump,
    fresh_schema,
    logs,
    place,
    problems,
    reason_of,
    run_threads,
    seed,
    servers,
    snapshot,
)
from tests.support.process import ServerProcess

SERVICE = "/omniroute.inventory.v1.ReservationService/"
SKUS = [f"s{index}" for index in range(8)]


@pytest.fixture(scope="module")
def shared_dsn() -> Iterator[str]:
    """One schema for the module: every test here uses fresh request and reservation ids."""
    with fresh_schema() as dsn:
        yield dsn


@pytest.fixture(scope="module")
def pair(shared_dsn: str) -> Iterator[list[ServerProcess]]:
    """Two servers on one schema, seeded with plenty of stock."""
    with servers(shared_dsn, 2) as running:
        seed(running[0], LOCATIONS, GROUPS, {(sku, loc): 1000 for sku in SKUS for loc in LOCATIONS})
        yield running


@pytest.fixture
def postgres_dsn(shared_dsn: str) -> str:
    return shared_dsn


def raw(server: ServerProcess, method: str, request: Any) -> bytes:
    """The response exactly as the server serialised it."""
    unary = server.channel.unary_unary(
        SERVICE + method,
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=None,  # the bytes as sent
    )
    return unary(request, timeout=20)


def refused(server: ServerProcess, method: str, request: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        raw(server, method, request)
    return caught.value.code(), reason_of(caught.value)  # type: ignore[attr-defined]


def test_a_retry_on_another_server_returns_the_first_answer_and_changes_nothing(
    pair: list[ServerProcess], postgres_dsn: str
) -> None:
    first, second = pair
    create = res.CreateReservationRequest(
        external_ref="order-1",
        items=[
            res.ReservationItem(sku="s0", place=place("GA"), quantity=3),
            res.ReservationItem(sku="s1", place=place("L2"), quantity=2),
        ],
        ttl=duration_pb2.Duration(seconds=3600),
        request_id=f"create-{uuid.uuid4()}",
    )
    answer = raw(first, "CreateReservation", create)
    rid = res.CreateReservationResponse.FromString(answer).reservation.id
    steps: list[tuple[str, Any]] = [
        ("CreateReservation", create),
        (
            "TransferReservation",
            res.TransferReservationRequest(
                reservation_id=rid,
                items=[
                    res.TransferItem(
                        sku="s0", from_place=place("GA"), to_place=place("L0"), quantity=2
                    )
                ],
                request_id=f"transfer-{uuid.uuid4()}",
            ),
        ),
        (
            "FulfillReservation",
            res.FulfillReservationRequest(
                reservation_id=rid,
                items=[res.FulfillItem(sku="s0", place=place("L0"), quantity=1)],
                request_id=f"fulfil-{uuid.uuid4()}",
            ),
        ),
        (
            "ReleaseReservation",
            res.ReleaseReservationRequest(
                reservation_id=rid,
                items=[res.ReleaseItem(sku="s1", place=place("L2"), quantity=1)],
                request_id=f"release-{uuid.uuid4()}",
            ),
        ),
        (
            "ReleaseReservation",
            res.ReleaseReservationRequest(
                reservation_id=rid, release_all=True, request_id=f"release-all-{uuid.uuid4()}"
            ),
        ),
    ]
    for method, request in steps:
        answer = raw(first, method, request) if method != "CreateReservation" else answer
        before = dump(postgres_dsn)
        for server in (second, first, second):
            assert raw(server, method, request) == answer, f"{method} replayed differently"
        assert dump(postgres_dsn) == before, f"a replayed {method} changed the database"

        # The same id with another body, or for another method: refused by both servers.
        changed = type(request)()
        changed.CopyFrom(request)
        if method == "CreateReservation":
            changed.external_ref = "order-2"
        elif changed.items:
            changed.items[0].quantity += 1
        else:
            changed.release_all = False
            changed.items.append(res.ReleaseItem(sku="s0", place=place("L0"), quantity=1))
        for server in (first, second):
            assert refused(server, method, changed) == (
                grpc.StatusCode.ALREADY_EXISTS,
                "REQUEST_ID_REUSED",
            )
            other = res.ReleaseReservationRequest(
                reservation_id=rid, release_all=True, request_id=request.request_id
            )
            if method != "ReleaseReservation":
                assert refused(server, "ReleaseReservation", other) == (
                    grpc.StatusCode.ALREADY_EXISTS,
                    "REQUEST_ID_REUSED",
                )
        assert dump(postgres_dsn) == before, f"a refused reuse of {method}'s id changed data"
    assert problems(snapshot(postgres_dsn)) == []


def _at_once(
    running: list[ServerProcess], requests: list[tuple[str, Any]], per_server: int
) -> list[Any]:
    """Sends every request at the same moment, `per_server` senders per server and request
    (round robin); returns (bytes or (code, reason)) per sender."""
    senders = [
        (running[index % len(running)], method, request)
        for index, (method, request) in enumerate(requests * per_server * len(running))
    ]
    barrier = threading.Barrier(len(senders), timeout=30)
    results: list[Any] = [None] * len(senders)

    def send(index: int) -> None:
        server, method, request = senders[index]
        barrier.wait()
        try:
            results[index] = raw(server, method, request)
        except grpc.RpcError as error:
            results[index] = (error.code(), reason_of(error))  # type: ignore[attr-defined]

    errors = run_threads([lambda i=i: send(i) for i in range(len(senders))], timeout_s=60)
    assert not errors, errors
    return results


@pytest.mark.slow
def test_one_request_id_arriving_at_two_servers_at_once_is_applied_once(
    pair: list[ServerProcess], postgres_dsn: str
) -> None:
    made = set()
    for round_number in range(8):
        sku = SKUS[round_number % len(SKUS)]
        create = res.CreateReservationRequest(
            items=[res.ReservationItem(sku=sku, place=place("GB"), quantity=1)],
            request_id=f"create-{uuid.uuid4()}",
        )
        before = set(snapshot(postgres_dsn).reservations)
        answers = _at_once(pair, [("CreateReservation", create)], per_server=3)
        assert all(answer == answers[0] for answer in answers), answers
        assert isinstance(answers[0], bytes), answers[0]
        created = set(snapshot(postgres_dsn).reservations) - before
        rid = res.CreateReservationResponse.FromString(answers[0]).reservation.id
        assert created == {rid}, "the same request created more than one reservation"
        made.add(rid)

        transfer = res.TransferReservationRequest(
            reservation_id=rid,
            items=[
                res.TransferItem(sku=sku, from_place=place("GB"), to_place=place("L1"), quantity=1)
            ],
            request_id=f"transfer-{uuid.uuid4()}",
        )
        answers = _at_once(pair, [("TransferReservation", transfer)], per_server=3)
        assert all(answer == answers[0] for answer in answers), answers
        assert isinstance(answers[0], bytes), answers[0]
    state = snapshot(postgres_dsn)
    assert problems(state) == []
    mine = {(key[0], key[3]): line for key, line in state.lines.items() if key[0] in made}
    assert sorted(mine) == sorted((rid, at) for rid in made for at in ("GB", "L1"))
    assert all(line == (1, 0, 0, 1) for (_, at), line in mine.items() if at == "GB")
    assert all(line == (1, 0, 0, 0) for (_, at), line in mine.items() if at == "L1")


@pytest.mark.slow
def test_one_request_id_with_different_bodies_at_once_is_applied_once(
    pair: list[ServerProcess], postgres_dsn: str
) -> None:
    """Different SKUs take different locks, so only the remembered response's key decides."""
    for _ in range(5):
        request_id = f"create-{uuid.uuid4()}"
        bodies = [
            (
                "CreateReservation",
                res.CreateReservationRequest(
                    items=[res.ReservationItem(sku=sku, place=place("L0"), quantity=1)],
                    request_id=request_id,
                ),
            )
            for sku in SKUS[:4]
        ]
        before = set(snapshot(postgres_dsn).reservations)
        answers = _at_once(pair, bodies, per_server=1)
        won = [answer for answer in answers if isinstance(answer, bytes)]
        lost = [answer for answer in answers if not isinstance(answer, bytes)]
        assert len({*won}) == 1, answers
        # Each loser is refused, unless it sent the winner's own body (then it gets the answer).
        assert set(lost) <= {(grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")}, lost
        assert len(set(snapshot(postgres_dsn).reservations) - before) == 1
    assert problems(snapshot(postgres_dsn)) == []


@pytest.mark.slow
def test_one_reservation_id_created_through_two_servers_at_once_exists_once(
    pair: list[ServerProcess], postgres_dsn: str
) -> None:
    """Creates of one client-chosen reservation id for different SKUs (so under different SKU
    locks), with different request ids: one wins, the others are told it already exists."""
    for round_number in range(10):
        rid = f"order-{round_number}-{uuid.uuid4().hex[:6]}"
        bodies = [
            (
                "CreateReservation",
                res.CreateReservationRequest(
                    reservation_id=rid,
                    external_ref=sku,
                    items=[res.ReservationItem(sku=sku, place=place("L2"), quantity=1)],
                    request_id=f"{rid}-{sku}",
                ),
            )
            for sku in SKUS[:4]
        ]
        answers = _at_once(pair, bodies, per_server=1)
        won = [
            res.CreateReservationResponse.FromString(answer)
            for answer in answers
            if isinstance(answer, bytes)
        ]
        lost = [answer for answer in answers if not isinstance(answer, bytes)]
        winners = {response.reservation.external_ref for response in won}
        assert len(winners) == 1, f"round {round_number}: {len(winners)} creates of {rid} won"
        assert set(lost) <= {(grpc.StatusCode.ALREADY_EXISTS, "RESERVATION_ALREADY_EXISTS")}
        state = snapshot(postgres_dsn)
        stored = {key[1] for key in state.lines if key[0] == rid}
        assert stored == winners, f"reservation {rid} holds lines of {stored}, not {winners}"
        got = call(
            pair, "reservations", "GetReservation", res.GetReservationRequest(reservation_id=rid)
        )
        assert got.response.reservation.external_ref in winners
    assert problems(snapshot(postgres_dsn)) == [], logs(pair)
