"""The servers' database connections killed (pg_terminate_backend from an admin connection, by
the servers' application_name) again and again under load: callers see only OK or retryable
codes, every acknowledged change is stored exactly as acknowledged (and every change whose
outcome was unknown is resolved by retrying it with its request_id), the ledger's invariants
hold, and the same server processes serve again afterwards without a restart."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.ledger.model import Ledger
from tests.postgres.cluster import (
    GROUPS,
    LOCATIONS,
    PLACES,
    RETRYABLE,
    backends,
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
    terminate,
)
from tests.support import wait_until
from tests.support.process import ServerProcess

SKUS = [f"s{index}" for index in range(6)]
KILL_ROUNDS = 25


@dataclass
class Pending:
    """A call whose outcome the caller does not know (it got a retryable code)."""

    service: str
    method: str
    request: Any
    apply: Callable[[Any], None]


class Client:
    """Creates reservations, then ships or releases parts of them; one attempt per call, so
    the codes the servers answer are seen as they are."""

    def __init__(self, index: int, running: list[ServerProcess], model: Ledger) -> None:
        self.server = running[index % len(running)]
        self.model = model
        self.rng = random.Random(index)
        self.prefix = f"{uuid.uuid4().hex[:8]}-{index}"
        self.count = 0
        self.codes: Counter[str] = Counter()
        self.pending: list[Pending] = []
        self.own: list[str] = []

    def request_id(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count}"

    def once(self, service: str, method: str, request: Any, apply: Callable[[Any], None]) -> bool:
        try:
            response = getattr(getattr(self.server, service), method)(request, timeout=20)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            self.codes[code.name] += 1
            if code in RETRYABLE:
                self.pending.append(Pending(service, method, request, apply))
            return False
        self.codes["OK"] += 1
        apply(response)
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            lines = open_lines(self.model, self.own[-1]) if self.own else []
            at_location = [line for line in lines if not line[1].startswith("G")]
            if at_location and self.rng.random() < 0.5:
                sku, at, units = self.rng.choice(at_location)
                rid = self.own.pop()  # whatever the outcome, this client is done with it
                if self.rng.random() < 0.5:
                    request: Any = res.FulfillReservationRequest(
                        reservation_id=rid,
                        items=[res.FulfillItem(sku=sku, place=place(at), quantity=units)],
                        request_id=self.request_id(),
                    )
                    apply = lambda _r, a=(rid, sku, at, units): self.model.fulfill(*a)  # noqa: E731
                    self.once("reservations", "FulfillReservation", request, apply)
                else:
                    request = res.ReleaseReservationRequest(
                        reservation_id=rid,
                        items=[res.ReleaseItem(sku=sku, place=place(at), quantity=units)],
                        request_id=self.request_id(),
                    )
                    where = place_key(at)
                    apply = lambda _r, a=(rid, sku, where, units): self.model.release(*a)  # noqa: E731
                    self.once("reservations", "ReleaseReservation", request, apply)
                continue
            request = res.CreateReservationRequest(
                items=[
                    res.ReservationItem(sku=sku, place=place(self.rng.choice(PLACES)), quantity=1)
                    for sku in self.rng.sample(SKUS, self.rng.choice([1, 2]))
                ],
                request_id=self.request_id(),
            )
            self.once("reservations", "CreateReservation", request, self.created)

    def created(self, response: Any) -> None:
        record_created(self.model, response)
        self.own.append(response.reservation.id)


@pytest.mark.slow
def test_killed_connections_give_retryable_codes_lose_nothing_and_servers_heal(
    postgres_dsn: str,
) -> None:
    application = f"omniroute-kill-{uuid.uuid4().hex[:8]}"
    dsn = server_dsn(postgres_dsn, application_name=application)
    initial = {(sku, loc): 10_000 for sku in SKUS for loc in LOCATIONS}
    model = reference(GROUPS, initial)
    with servers(dsn, 2, pool_size=3) as running:
        seed(running[0], LOCATIONS, GROUPS, initial)
        clients = [Client(index, running, model) for index in range(8)]
        stop = threading.Event()
        killed: list[int] = []

        def killer() -> None:
            try:
                for _ in range(KILL_ROUNDS):
                    time.sleep(0.12)
                    killed.append(terminate(application))
                time.sleep(0.3)
            finally:
                stop.set()

        errors = run_threads(
            [killer, *[lambda c=client: c.run(stop) for client in clients]], timeout_s=120
        )
        assert not errors, f"{errors}\n{logs(running)}"
        assert sum(killed) > 0, "no server connection was killed: the test tested nothing"

        codes = sum((client.codes for client in clients), Counter())
        assert set(codes) <= {"OK", "UNAVAILABLE", "ABORTED"}, f"{codes}\n{logs(running)}"

        # The same processes serve again, each within a bounded wait.
        for server in running:
            assert server.process.poll() is None, f"a server died: {logs(running)}"
            probe = res.GetReservationRequest(reservation_id="none")

            def serves(server: ServerProcess = server, probe: Any = probe) -> bool:
                try:
                    server.reservations.GetReservation(probe, timeout=5)
                except grpc.RpcError as error:
                    return error.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
                return False

            assert wait_until(serves, timeout_s=30), f"server did not recover: {logs(running)}"
        assert backends(application), "the recovered servers hold no database connections"

        # A caller told UNAVAILABLE/ABORTED retries with the same request_id and gets an answer:
        # the first one if the change had committed, a fresh one if it had not.
        unresolved = []
        for client in clients:
            for pending in client.pending:
                outcome = call(running, pending.service, pending.method, pending.request)
                if outcome.code is grpc.StatusCode.OK:
                    pending.apply(outcome.response)
                else:
                    unresolved.append((pending.method, outcome.code.name, outcome.reason))
        assert not unresolved, unresolved

        final = snapshot(postgres_dsn)
        assert problems(final, received(model)) == []
        assert lines_differ(final, model) == [], "an acknowledged change was lost or altered"
        assert set(final.reservations) == set(model.bookings)
        print(f"killed {killed} backends; client codes {dict(codes)}")
