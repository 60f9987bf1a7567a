"""Free stock names its locations by number: every unit of work at one network version numbers
the locations alike (free stock cached by one is read by another), and a network change
renumbers them."""

from __future__ import annotations

from server.domain.model import Location, LocationType, StockRecord
from server.domain.port import Store


def site(location_id: str) -> Location:
    return Location(location_id, location_id, LocationType.STORE, 40.0, -75.0)


def free_at(store: Store, sku: str) -> dict[str, int]:
    with store.read() as uow:
        stock = uow.free_stock([sku])[sku]
        ids = uow.location_numbering().location_ids
    found = zip(stock.locations.tolist(), stock.free_to_fulfill.tolist(), strict=True)
    return {ids[n]: units for n, units in found}


def test_every_read_of_one_network_numbers_the_locations_alike(store: Store) -> None:
    with store.write(network=True) as uow:
        uow.put_locations([site(x) for x in ("c", "a", "b")])
    for _ in range(2):  # the first reads the numbering, the second finds it cached
        with store.read() as uow:
            assert uow.location_numbering().location_ids == ("a", "b", "c")


def test_free_stock_names_its_locations_through_a_network_change(store: Store) -> None:
    with store.write(network=True) as uow:
        uow.put_locations([site("b"), site("d")])
    with store.write(["jeans"]) as uow:
        uow.put_stock([StockRecord("jeans", "b", 3), StockRecord("jeans", "d", 5)])
    assert free_at(store, "jeans") == {"b": 3, "d": 5}

    with store.write(network=True) as uow:
        uow.put_locations([site("a"), site("c")])  # renumbers b and d

    assert free_at(store, "jeans") == {"b": 3, "d": 5}
