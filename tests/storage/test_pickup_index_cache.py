"""The pickup index is cached per network version: built once and shared while the network
stays as it is, and a change made through another store (another server) is seen at once, for
every pickup location and for a group's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.domain.model import Location, LocationGroup, LocationType
from server.storage.postgres import PostgresStore
from server.storage.sqlite import SqliteStore


def pickup(location_id: str, latitude: float = 40.0) -> Location:
    return Location(
        location_id, location_id, LocationType.STORE, latitude, -75.0, pickup_enabled=True
    )


@pytest.fixture
def second_store(store, request, sqlite_path):
    other = (
        PostgresStore(request.getfixturevalue("postgres_dsn"), pool_size=2)
        if isinstance(store, PostgresStore)
        else SqliteStore(sqlite_path, synchronous="NORMAL")
    )
    yield other
    other.close()


def nearest(through, group_id: str = "") -> list[str]:
    with through.read() as uow:
        return [x.location_id for x in uow.pickup_index(group_id).nearest(40.0, -75.0, 10)]


def test_the_index_is_built_once_per_network_version(store):
    with store.write(network=True) as uow:
        uow.put_locations([pickup("a")])
    with store.read() as uow:
        first = uow.pickup_index()
    with store.read() as uow:
        assert uow.pickup_index() is first


def test_the_index_follows_a_change_made_through_another_store(store, second_store):
    with store.write(network=True) as uow:
        uow.put_locations([pickup("a"), pickup("b", 41.0), pickup("c", 42.0)])
        uow.put_groups([LocationGroup("web", "web", ("b", "c"))])
    assert nearest(second_store) == ["a", "b", "c"]  # now cached by the second store
    assert nearest(second_store, "web") == ["b", "c"]

    with store.write(network=True) as uow:
        uow.put_locations([replace(pickup("a"), pickup_enabled=False), pickup("c", 40.5)])
        uow.put_groups([LocationGroup("web", "web", ("a", "b", "c"))])

    assert nearest(second_store) == ["c", "b"]
    assert nearest(second_store, "web") == ["c", "b"]
