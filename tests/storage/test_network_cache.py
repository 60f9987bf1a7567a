"""Two stores on one database (two server processes, in effect) each cache the network: a
change made through one is seen through the other at once, and a rolled-back change never."""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.domain.model import Location, LocationGroup, LocationType
from server.storage.postgres import PostgresStore
from server.storage.sqlite import SqliteStore


def site(location_id: str) -> Location:
    return Location(location_id, location_id, LocationType.STORE, 40.0, -75.0)


@pytest.fixture
def second_store(store, request, sqlite_path):
    other = (
        PostgresStore(request.getfixturevalue("postgres_dsn"), pool_size=2)
        if isinstance(store, PostgresStore)
        else SqliteStore(sqlite_path, synchronous="NORMAL")
    )
    yield other
    other.close()


def members(store, group_id: str) -> tuple[str, ...]:
    with store.read() as uow:
        return uow.groups([group_id])[group_id].location_ids


def test_a_group_changed_through_another_store_is_seen_at_once(store, second_store):
    with store.write(network=True) as uow:
        uow.put_locations([site("a"), site("b")])
        uow.put_groups([LocationGroup("web", "web", ("a",))])
    assert members(second_store, "web") == ("a",)  # now cached by the second store

    with store.write(network=True) as uow:
        uow.put_groups([LocationGroup("web", "web", ("a", "b"))])

    assert members(second_store, "web") == ("a", "b")
    with second_store.read() as uow:
        assert uow.locations(["a", "b"])["b"].id == "b"


def test_a_rolled_back_network_change_never_reaches_the_cache(store):
    with store.write(network=True) as uow:
        uow.put_locations([site("a")])
        uow.put_groups([LocationGroup("web", "web", ("a",))])

    def change_then_fail() -> None:
        with store.write(network=True) as uow:
            uow.put_locations([site("b")])
            uow.put_groups([LocationGroup("web", "web", ("a", "b"))])
            assert uow.groups(["web"])["web"].location_ids == ("a", "b")  # its own change
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        change_then_fail()

    assert members(store, "web") == ("a",)
    with store.read() as uow:
        assert uow.known_locations(["a", "b"]) == {"a"}


def test_the_ship_enabled_locations_follow_a_change_made_through_another_store(store, second_store):
    def ship_enabled(through) -> list[str]:
        with through.read() as uow:
            return [location.id for location in uow.ship_enabled_locations()]

    with store.write(network=True) as uow:
        uow.put_locations([site("b"), site("a")])
    assert ship_enabled(second_store) == ["a", "b"]  # now cached by the second store
    assert ship_enabled(second_store) == ["a", "b"]

    with store.write(network=True) as uow:
        uow.put_locations([replace(site("a"), ship_enabled=False), site("c")])

    assert ship_enabled(second_store) == ["b", "c"]
