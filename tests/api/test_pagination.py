"""List RPCs page through everything exactly once, in id order, with small pages; the last
page has an empty next_page_token."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.api.helpers import RPC_TIMEOUT_S, group, list_all, release_item
from tests.support import at, at_group, failure, item, level, location, wait_until

pytestmark = pytest.mark.timeout(120)


def pages(list_method: Any, request: Any, field: str) -> list[list[str]]:
    """The ids on each page, following next_page_token until it is empty (bounded)."""
    found = []
    for _ in range(1000):
        page = list_method(request, timeout=RPC_TIMEOUT_S)
        found.append([element.id for element in getattr(page, field)])
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token
    raise AssertionError("pagination did not end")


def add_locations(inventory: Any, ids: list[str]) -> None:
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location(i) for i in ids]))


@pytest.mark.parametrize(("count", "page_size"), [(23, 5), (20, 5), (7, 1), (6, 1000)])
def test_locations_page_through_everything_once_in_id_order(inventory, count, page_size):
    ids = [f"loc-{n:03d}" for n in range(count)]
    add_locations(inventory, list(reversed(ids)))

    got = pages(inventory.ListLocations, inv.ListLocationsRequest(page_size=page_size), "locations")

    assert [len(page) for page in got[:-1]] == [page_size] * (len(got) - 1)
    assert 0 < len(got[-1]) <= page_size
    assert [i for page in got for i in page] == ids


def test_default_page_size_is_100(inventory):
    ids = [f"loc-{n:03d}" for n in range(130)]
    add_locations(inventory, ids)

    got = pages(inventory.ListLocations, inv.ListLocationsRequest(), "locations")

    assert [len(page) for page in got] == [100, 30]


def test_empty_lists_have_one_empty_page(inventory, reservations):
    assert pages(inventory.ListLocations, inv.ListLocationsRequest(page_size=3), "locations") == [
        []
    ]
    assert pages(
        inventory.ListLocationGroups, inv.ListLocationGroupsRequest(page_size=3), "location_groups"
    ) == [[]]
    assert pages(
        reservations.ListReservations, res.ListReservationsRequest(page_size=3), "reservations"
    ) == [[]]


def test_longest_and_non_ascii_ids_page_through_once(inventory):
    # Ids of 128 characters, some 4-byte UTF-8: the page token after each must still work.
    ids = sorted(
        [f"{n:02d}" + "x" * 126 for n in range(4)]
        + [f"{n:02d}" + "\U0001f4e6" * 126 for n in range(4, 8)]
        + ["short", "ünïcode-ß"]
    )
    add_locations(inventory, ids)

    got = pages(inventory.ListLocations, inv.ListLocationsRequest(page_size=1), "locations")

    assert [i for page in got for i in page] == ids


def test_location_groups_page_with_their_own_members(inventory):
    add_locations(inventory, [f"loc-{n}" for n in range(5)])
    groups = [group(f"grp-{n:02d}", *[f"loc-{m}" for m in range(n % 5 + 1)]) for n in range(11)]
    inventory.UpsertLocationGroups(inv.UpsertLocationGroupsRequest(location_groups=groups))

    listed = []
    request = inv.ListLocationGroupsRequest(page_size=3)
    for _ in range(100):
        page = inventory.ListLocationGroups(request, timeout=RPC_TIMEOUT_S)
        assert len(page.location_groups) <= 3
        listed.extend(page.location_groups)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token

    assert [(g.id, sorted(g.location_ids)) for g in listed] == [
        (g.id, sorted(g.location_ids)) for g in groups
    ]


def test_reservations_page_through_each_state_exactly_once(inventory, reservations):
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location("wh-1")]))
    inventory.SetStock(inv.SetStockRequest(levels=[level("wh-1", "sku-1", 1000)]))
    expected: dict[int, list[str]] = {
        res.RESERVATION_STATE_ACTIVE: [],
        res.RESERVATION_STATE_CLOSED: [],
        res.RESERVATION_STATE_EXPIRED: [],
    }
    for n in range(24):
        reservation_id = f"res-{n:03d}"
        kind = n % 3
        reservations.CreateReservation(
            res.CreateReservationRequest(
                reservation_id=reservation_id,
                items=[item("sku-1", at("wh-1"), 2)],
                ttl=Duration(nanos=100_000_000) if kind == 2 else None,
            )
        )
        if kind == 1:
            reservations.ReleaseReservation(
                res.ReleaseReservationRequest(
                    reservation_id=reservation_id, items=[release_item("sku-1", at("wh-1"), 2)]
                )
            )
        state = [
            res.RESERVATION_STATE_ACTIVE,
            res.RESERVATION_STATE_CLOSED,
            res.RESERVATION_STATE_EXPIRED,
        ][kind]
        expected[state].append(reservation_id)

    def listed(state: int, page_size: int) -> list[list[str]]:
        return pages(
            reservations.ListReservations,
            res.ListReservationsRequest(page_size=page_size, state=state),  # type: ignore[arg-type]
            "reservations",
        )

    assert wait_until(
        lambda: (
            [i for page in listed(res.RESERVATION_STATE_EXPIRED, 1000) for i in page]
            == expected[res.RESERVATION_STATE_EXPIRED]
        )
    ), "the expiring reservations did not all expire"
    for state, ids in expected.items():
        for page_size in (1, 3, 8):
            got = listed(state, page_size)
            assert [i for page in got for i in page] == ids, (state, page_size)
            assert all(0 < len(page) <= page_size for page in got)
    everything = listed(res.RESERVATION_STATE_UNSPECIFIED, 5)
    assert [i for page in everything for i in page] == sorted(
        i for ids in expected.values() for i in ids
    )


# A full page of the largest documented entities is more than one 4 MiB message can carry: the
# server must end such a page early (AIP-158 lets a page hold fewer than page_size) instead of
# failing the call. The limit is in the transport, not the store, so one backend is enough.


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_page_of_large_reservations_ends_early_to_fit_one_message(inventory, reservations):
    place = "L" * 128
    skus = [f"{n:03d}" + "s" * 125 for n in range(100)]
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location(place)]))
    inventory.SetStock(inv.SetStockRequest(levels=[level(place, sku, 1000) for sku in skus]))
    ids = [f"{n:04d}" + "r" * 124 for n in range(160)]  # 160 x 100 lines: about 4.4 MB
    for reservation_id in ids:
        reservations.CreateReservation(
            res.CreateReservationRequest(
                reservation_id=reservation_id,
                external_ref="e" * 256,
                items=[item(sku, at(place), 1) for sku in skus],
            ),
            timeout=RPC_TIMEOUT_S,
        )

    got = pages(
        reservations.ListReservations, res.ListReservationsRequest(page_size=1000), "reservations"
    )

    assert len(got) > 1
    assert [i for page in got for i in page] == ids


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_page_of_large_location_groups_ends_early_to_fit_one_message(inventory):
    members = [f"{n:05d}" + "m" * 123 for n in range(8200)]
    for start in range(0, len(members), 1000):
        add_locations(inventory, members[start : start + 1000])
    groups = [f"big-{n}" for n in range(4)]  # 4 x 8200 members of 128 characters: about 4.3 MB
    for group_id in groups:
        inventory.UpsertLocationGroups(
            inv.UpsertLocationGroupsRequest(location_groups=[group(group_id, *members)]),
            timeout=RPC_TIMEOUT_S,
        )

    listed = []
    request = inv.ListLocationGroupsRequest()
    for _ in range(10):
        page = inventory.ListLocationGroups(request, timeout=RPC_TIMEOUT_S)
        listed.extend(page.location_groups)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token

    assert [g.id for g in listed] == groups
    assert all(list(g.location_ids) == members for g in listed)


def test_reservations_filter_by_external_ref_sku_and_place_across_pages(inventory, reservations):
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location("a"), location("b")]))
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(location_groups=[group("web", "a", "b")])
    )
    inventory.SetStock(
        inv.SetStockRequest(levels=[level(loc, sku, 100) for loc in "ab" for sku in ("s1", "s2")])
    )
    made = {}
    for number in range(12):
        sku = ("s1", "s2")[number % 2]
        place = at("a") if number % 3 else at_group("web")
        made[f"r-{number:02d}"] = (f"order-{number % 4}", sku, place)
        reservations.CreateReservation(
            res.CreateReservationRequest(
                reservation_id=f"r-{number:02d}",
                external_ref=f"order-{number % 4}",
                items=[item(sku, place, 1)],
            )
        )

    def listed(**wanted: Any) -> list[str]:
        found = list_all(
            reservations.ListReservations,
            res.ListReservationsRequest(page_size=2, **wanted),
            "reservations",
        )
        return [reservation.id for reservation in found]

    assert listed(external_ref="order-1") == [
        r for r, (ref, _, _) in made.items() if ref == "order-1"
    ]
    assert listed(sku="s2") == [r for r, (_, sku, _) in made.items() if sku == "s2"]
    assert listed(place=at_group("web")) == [
        r for r, (_, _, p) in made.items() if p == at_group("web")
    ]
    assert listed(sku="s1", place=at("a"), external_ref="order-2") == [
        r for r, (ref, sku, p) in made.items() if (ref, sku, p) == ("order-2", "s1", at("a"))
    ]
    assert listed(sku="no-such-sku") == []
    with pytest.raises(grpc.RpcError) as caught:
        reservations.ListReservations(res.ListReservationsRequest(place=inv.Place()))
    assert failure(caught.value).fields == ["place"]
