"""PostgreSQL transactions run in pipeline mode, so a write the database refuses is reported
later than it ran, with other statements queued behind it. On one connection, again and again:
every refused transaction is a retryable Conflict and changes nothing, and the transaction after
it succeeds. psycopg prepares a statement on its fifth use, and an aborted pipeline could leave
its prepared statements out of step with the server's ("prepared statement does not exist")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.domain.errors import Conflict
from server.domain.model import (
    Location,
    LocationType,
    Place,
    Reservation,
    ReservationLine,
    StockRecord,
)
from server.domain.port import RememberedResponse
from server.storage.postgres import PostgresStore

SKU, SITE = "sku-1", "dc-1"
ROUNDS = 12  # past psycopg's prepare threshold (5) for every statement, twice over


@pytest.fixture
def one_connection(postgres_dsn: str) -> Iterator[PostgresStore]:
    store = PostgresStore(postgres_dsn, pool_size=1)
    yield store
    store.close()


def reservation(reservation_id: str) -> Reservation:
    place = Place.location(SITE)
    return Reservation(
        reservation_id, "", 1, 1, lines={(SKU, place): ReservationLine(SKU, place, quantity=1)}
    )


def write(store: PostgresStore, reservation_id: str, on_hand: int, request_id: str) -> None:
    with store.write([SKU]) as uow:
        uow.put_reservation(reservation(reservation_id))  # a plain INSERT for a new id
        uow.put_stock([StockRecord(SKU, SITE, on_hand=on_hand, reserved=1, effective_us=1)])
        uow.remember(request_id, RememberedResponse("Create", b"f", b"r"), 1)


def test_a_refused_write_leaves_the_connection_clean_for_the_next(one_connection) -> None:
    store = one_connection
    with store.write(network=True) as uow:
        uow.put_locations([Location(SITE, SITE, LocationType.WAREHOUSE, 40.0, -74.0)])
    write(store, "taken", on_hand=1, request_id="first")

    for number in range(ROUNDS):
        with pytest.raises(Conflict):
            write(store, "taken", on_hand=7, request_id=f"refused-{number}")
        write(store, f"ok-{number}", on_hand=100 + number, request_id=f"ok-{number}")

    with store.read() as uow:
        assert uow.stock([SKU], [SITE])[SKU][SITE].on_hand == 100 + ROUNDS - 1
        assert len(uow.list_reservations("", 100)) == ROUNDS + 1
        assert uow.remembered(f"refused-{ROUNDS - 1}") is None
        assert uow.remembered(f"ok-{ROUNDS - 1}") is not None
    with store.write() as uow:  # a pipelined DELETE still reports its row count
        assert uow.forget_responses_before(2) == ROUNDS + 1
