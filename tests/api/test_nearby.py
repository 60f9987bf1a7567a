"""Pickup at a nearby store through the real server (both backends): FindNearbyAvailability
against a brute-force oracle (haversine from the shopper to every pickup-enabled location that
ListLocations shows, ATF from GetAvailability) on random networks, its edge cases, its refusals,
and pickup_enabled as UpsertLocations and ListLocations carry it."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from server.domain.routing import postal_code_centroid
from tests.api.helpers import RPC_TIMEOUT_S, group, list_all, refused
from tests.routing.network import SITES
from tests.support import STORE, at, at_group, availability, item, level, location

pytestmark = pytest.mark.timeout(300)

EARTH_RADIUS_KM = 6371.0088
TOLERANCE_KM = 1e-6
"""How far the oracle's haversine may differ from the server's: rounding, nothing more."""
FORT_LAUDERDALE = inv.PostalCode(country_code="US", postal_code="33301")


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, half)))


def lines(*basket: tuple[str, int]) -> list[inv.BasketLine]:
    return [inv.BasketLine(sku=sku, quantity=units) for sku, units in basket]


def nearby(inventory: Any, **fields: Any) -> inv.FindNearbyAvailabilityResponse:
    return inventory.FindNearbyAvailability(  # type: ignore[no-any-return]
        inv.FindNearbyAvailabilityRequest(**fields), timeout=RPC_TIMEOUT_S
    )


def found(response: inv.FindNearbyAvailabilityResponse) -> list[tuple[str, int]]:
    """(location id, whole km) of each location answered, in answer order."""
    return [(x.location.id, round(x.distance_km)) for x in response.locations]


# --- a network one can check by hand ------------------------------------------------------------


@pytest.fixture
def florida(inventory) -> None:
    """The routing tests' US network (tests/routing/network.py); the stores offer pickup, the
    distribution centres do not. From ZIP 33301 (Fort Lauderdale): Miami 41 km, Orlando 296,
    Tampa 307, Atlanta 942. jeans: 1 at Miami, 5 at Orlando, 2 at Tampa; tee: 3 at Orlando."""
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[
                location(site, lat, lon, kind, pickup_enabled=kind == STORE)
                for site, (lat, lon, kind) in SITES.items()
            ]
        )
    )
    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(location_groups=[group("gulf", "tampa", "nj-dc")])
    )
    inventory.SetStock(
        inv.SetStockRequest(
            levels=[
                level("miami", "jeans", 1),
                level("orlando", "jeans", 5),
                level("tampa", "jeans", 2),
                level("orlando", "tee", 3),
            ]
        )
    )


@pytest.mark.usefixtures("florida")
def test_the_nearest_pickup_stores_come_first_with_what_each_can_hand_over(inventory):
    answer = nearby(inventory, postal_code=FORT_LAUDERDALE, lines=lines(("jeans", 2), ("tee", 1)))

    assert found(answer) == [("miami", 41), ("orlando", 296), ("tampa", 307), ("atlanta", 942)]
    by_id = {x.location.id: x for x in answer.locations}
    assert [
        (line.sku, line.quantity, line.available_to_fulfill) for line in by_id["orlando"].lines
    ] == [
        ("jeans", 2, 5),
        ("tee", 1, 3),
    ]
    assert [x.has_whole_basket for x in answer.locations] == [False, True, False, False]
    assert by_id["miami"].location.display_name == "miami"  # the stored location, to show
    centroid = postal_code_centroid("US", "33301")
    assert (answer.origin.latitude, answer.origin.longitude) == centroid


@pytest.mark.usefixtures("florida")
def test_a_radius_and_a_limit_bound_the_answer_and_a_group_restricts_it(inventory):
    basket = lines(("jeans", 1))
    within_300 = nearby(inventory, postal_code=FORT_LAUDERDALE, radius_km=300, lines=basket)
    nearest_two = nearby(inventory, postal_code=FORT_LAUDERDALE, max_locations=2, lines=basket)
    in_gulf = nearby(inventory, postal_code=FORT_LAUDERDALE, location_group_id="gulf", lines=basket)
    none_near = nearby(inventory, postal_code=FORT_LAUDERDALE, radius_km=40, lines=basket)

    assert found(within_300) == [("miami", 41), ("orlando", 296)]
    assert found(nearest_two) == [("miami", 41), ("orlando", 296)]
    assert found(in_gulf) == [("tampa", 307)]  # nj-dc is a member, but offers no pickup
    assert found(none_near) == []


@pytest.mark.usefixtures("florida")
def test_a_postal_code_answers_as_its_centroid_does(inventory):
    latitude, longitude = postal_code_centroid("US", "33301")
    basket = lines(("jeans", 1), ("tee", 1))
    by_code = nearby(inventory, postal_code=FORT_LAUDERDALE, lines=basket)
    by_position = nearby(
        inventory, position=inv.GeoPoint(latitude=latitude, longitude=longitude), lines=basket
    )
    plus_four = nearby(
        inventory,
        postal_code=inv.PostalCode(country_code="usa", postal_code="33301-1234"),
        lines=basket,
    )

    assert by_code == by_position == plus_four


@pytest.mark.usefixtures("florida")
def test_group_reservations_lower_the_atf_shown_as_get_availability_shows_it(
    inventory, reservations
):
    # gulf = {tampa, nj-dc}; nj-dc has no jeans, so a group reservation of 2 jeans at gulf
    # takes all of Tampa's.
    reservations.CreateReservation(
        res.CreateReservationRequest(items=[item("jeans", at_group("gulf"), 2)])
    )
    reservations.CreateReservation(
        res.CreateReservationRequest(items=[item("jeans", at("orlando"), 4)])
    )

    answer = nearby(inventory, postal_code=FORT_LAUDERDALE, lines=lines(("jeans", 1)))

    shown = {x.location.id: x.lines[0].available_to_fulfill for x in answer.locations}
    stock = availability(inventory, ["jeans"], list(shown))
    assert shown == {x: stock[(x, "jeans")].available_to_fulfill for x in shown}
    assert shown == {"miami": 1, "orlando": 1, "tampa": 0, "atlanta": 0}


@pytest.mark.usefixtures("florida")
def test_the_answer_follows_network_changes_at_once(inventory):
    basket = lines(("jeans", 1))
    assert found(nearby(inventory, postal_code=FORT_LAUDERDALE, lines=basket))[0] == ("miami", 41)

    # Miami stops offering pickup, Atlanta moves next door, Tampa joins nothing new.
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[
                location("miami", *SITES["miami"][:2], STORE, pickup_enabled=False),
                location("atlanta", 26.1, -80.2, STORE, pickup_enabled=True),
            ]
        )
    )
    assert [x for x, _ in found(nearby(inventory, postal_code=FORT_LAUDERDALE, lines=basket))] == [
        "atlanta",
        "orlando",
        "tampa",
    ]

    inventory.UpsertLocationGroups(
        inv.UpsertLocationGroupsRequest(location_groups=[group("gulf", "orlando")])
    )
    in_gulf = nearby(inventory, postal_code=FORT_LAUDERDALE, location_group_id="gulf", lines=basket)
    assert found(in_gulf) == [("orlando", 296)]


def test_a_location_exactly_at_the_radius_is_in_and_ties_are_ordered_by_id(inventory):
    # Three stores at one point and one a little farther: the radius set to the distance the
    # server measured keeps the three, and they come in id order.
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[
                location(x, 40.7, -74.0, STORE, pickup_enabled=True) for x in ("c", "a", "b")
            ]
            + [location("far", 40.8, -74.0, STORE, pickup_enabled=True)]
        )
    )
    origin = inv.GeoPoint(latitude=40.6, longitude=-73.9)
    everything = nearby(inventory, position=origin, lines=lines(("sku", 1)))
    assert [x.location.id for x in everything.locations] == ["a", "b", "c", "far"]
    at_three = everything.locations[0].distance_km
    assert everything.locations[2].distance_km == at_three

    exact = nearby(inventory, position=origin, radius_km=at_three, lines=lines(("sku", 1)))
    cut_tie = nearby(inventory, position=origin, max_locations=2, lines=lines(("sku", 1)))

    assert [x.location.id for x in exact.locations] == ["a", "b", "c"]
    assert [x.location.id for x in cut_tie.locations] == ["a", "b"]


def test_pickup_enabled_round_trips_and_defaults_to_false(inventory):
    sent = [
        location("yes", pickup_enabled=True),
        location("no", pickup_enabled=False),
        location("unset"),
    ]
    stored = inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=sent)).locations
    listed = list_all(inventory.ListLocations, inv.ListLocationsRequest(), "locations")

    expected = {"yes": True, "no": False, "unset": False}
    for answer in (stored, listed):
        assert {x.id: x.pickup_enabled for x in answer} == expected
        assert all(x.HasField("pickup_enabled") and x.ship_enabled for x in answer)
    # A replaced location takes what the new request says (unset: false again).
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=[location("yes")]))
    listed = list_all(inventory.ListLocations, inv.ListLocationsRequest(), "locations")
    assert {x.id: x.pickup_enabled for x in listed}["yes"] is False


# --- refusals ------------------------------------------------------------------------------------

HERE = inv.GeoPoint(latitude=40.0, longitude=-75.0)
BASKET = lines(("sku-1", 1))


@dataclass(frozen=True)
class Bad:
    name: str
    fields: dict[str, Any]
    reason: str
    bad_field: str
    code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT

    def sent(self) -> inv.FindNearbyAvailabilityRequest:
        return inv.FindNearbyAvailabilityRequest(
            **{"position": HERE, "lines": BASKET, **self.fields}
        )


def _position(latitude: float, longitude: float = -75.0) -> dict[str, Any]:
    return {"position": inv.GeoPoint(latitude=latitude, longitude=longitude)}


BAD = [
    Bad("radius-zero", {"radius_km": 0.0}, "INVALID_FIELD", "radius_km"),
    Bad("radius-negative", {"radius_km": -1.0}, "INVALID_FIELD", "radius_km"),
    Bad("radius-nan", {"radius_km": math.nan}, "INVALID_FIELD", "radius_km"),
    Bad("radius-infinite", {"radius_km": math.inf}, "INVALID_FIELD", "radius_km"),
    Bad("radius-too-large", {"radius_km": 20_000.001}, "INVALID_FIELD", "radius_km"),
    Bad("latitude-nan", _position(math.nan), "INVALID_FIELD", "position.latitude"),
    Bad("latitude-out", _position(90.5), "INVALID_FIELD", "position.latitude"),
    Bad("longitude-inf", _position(0.0, math.inf), "INVALID_FIELD", "position.longitude"),
    Bad("no-origin", {"position": None}, "MISSING_FIELD", "origin"),
    Bad("empty-basket", {"lines": []}, "MISSING_FIELD", "lines"),
    Bad(
        "basket-too-big",
        {"lines": lines(*((f"sku-{i}", 1) for i in range(101)))},
        "TOO_MANY_ITEMS",
        "lines",
    ),
    Bad("repeated-sku", {"lines": lines(("a", 1), ("a", 2))}, "DUPLICATE_ITEM", "lines[1]"),
    Bad("zero-units", {"lines": lines(("a", 0))}, "INVALID_QUANTITY", "lines[0].quantity"),
    Bad(
        "too-many-units",
        {"lines": lines(("a", 10**12 + 1))},
        "QUANTITY_TOO_LARGE",
        "lines[0].quantity",
    ),
    Bad("empty-sku", {"lines": lines(("", 1))}, "INVALID_ID", "lines[0].sku"),
    Bad("max-locations-negative", {"max_locations": -1}, "INVALID_FIELD", "max_locations"),
    Bad("max-locations-too-many", {"max_locations": 101}, "INVALID_FIELD", "max_locations"),
    Bad("group-id-spaces", {"location_group_id": " g "}, "INVALID_ID", "location_group_id"),
    Bad(
        "unknown-postal-code",
        {"position": None, "postal_code": inv.PostalCode(country_code="US", postal_code="00000")},
        "UNKNOWN_POSTAL_CODE",
        "postal_code",
    ),
    Bad(
        "postal-country-too-long",
        {"position": None, "postal_code": inv.PostalCode(country_code="USAA", postal_code="1")},
        "INVALID_FIELD",
        "postal_code.country_code",
    ),
    Bad(
        "unknown-group",
        {"location_group_id": "no-such-group"},
        "LOCATION_GROUP_NOT_FOUND",
        "",
        grpc.StatusCode.NOT_FOUND,
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[case.name for case in BAD])
def test_bad_input_is_refused_with_the_documented_reason(inventory, case: Bad):
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location("store", pickup_enabled=True)])
    )
    got = refused(inventory.FindNearbyAvailability, case.sent())

    assert (got.code, got.reason) == (case.code, case.reason), got.message
    if case.bad_field:
        assert case.bad_field in got.fields, got.fields
    else:
        assert got.metadata == {"location_group": "no-such-group"}


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_the_largest_answer_the_limits_allow_fits_in_one_reply(inventory):
    # 100 locations with the longest ids and texts, 100 SKUs of 128 characters.
    sites = [location(f"{i:03d}".ljust(128, "l"), pickup_enabled=True) for i in range(100)]
    for site in sites:
        site.display_name, site.postal_code = "n" * 256, "p" * 32
    inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=sites))
    skus = [f"{i:03d}".ljust(128, "s") for i in range(100)]

    answer = nearby(
        inventory, position=HERE, max_locations=100, lines=lines(*((x, 1) for x in skus))
    )

    assert len(answer.locations) == 100
    assert all(len(x.lines) == 100 for x in answer.locations)


# --- against the oracle, on random networks ----------------------------------------------------

SPECIAL_POINTS = [
    (0.0, 180.0),
    (0.0, -180.0),  # the same place as the one above
    (0.0, 179.999),
    (90.0, 0.0),
    (90.0, 120.0),  # the north pole again
    (-90.0, 45.0),
    (40.7357, -74.1724),
    (40.7357, -74.1723),
]
points = st.one_of(
    st.sampled_from(SPECIAL_POINTS),
    st.tuples(st.floats(40.0, 41.0), st.floats(-75.0, -74.0)),  # a dense region
    st.tuples(st.floats(-90.0, 90.0), st.floats(-180.0, 180.0)),
)


@dataclass
class Arena:
    """What the last example published on the one server every example shares: each example
    first takes pickup away from those, so that it sees only its own pickup locations."""

    examples: itertools.count[int] = field(default_factory=itertools.count)
    published: list[inv.Location] = field(default_factory=list)


@pytest.fixture
def arena() -> Arena:
    return Arena()


@dataclass(frozen=True)
class Site:
    id: str
    latitude: float
    longitude: float
    pickup: bool


def publish_network(
    data: st.DataObject, inventory: Any, reservations: Any, arena: Arena
) -> tuple[list[Site], dict[str, set[str]], list[str]]:
    """A random network, stock and reservations; returns the sites, groups and SKUs."""
    prefix = f"e{next(arena.examples)}-"
    if arena.published:
        for message in arena.published:
            message.pickup_enabled = False
        inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=arena.published))
        arena.published.clear()
    positions: list[tuple[float, float]] = []
    for _ in range(data.draw(st.one_of(st.just(0), st.integers(2, 18)), label="locations")):
        again = positions and data.draw(st.booleans(), label="same place as another")
        positions.append(data.draw(st.sampled_from(positions)) if again else data.draw(points))
    sites = [
        Site(f"{prefix}{n:02d}", lat, lon, data.draw(st.integers(0, 4), label="pickup") > 0)
        for n, (lat, lon) in enumerate(positions)
    ]
    messages = [
        location(x.id, x.latitude, x.longitude, STORE, pickup_enabled=x.pickup) for x in sites
    ]
    if messages:
        inventory.UpsertLocations(inv.UpsertLocationsRequest(locations=messages))
    arena.published.extend(messages)

    ids = [x.id for x in sites]
    groups: dict[str, set[str]] = {}
    for g in range(data.draw(st.integers(0, 2), label="groups") if ids else 0):
        groups[f"{prefix}g{g}"] = set(
            data.draw(st.lists(st.sampled_from(ids), unique=True), label="members")
        )
    if groups:
        inventory.UpsertLocationGroups(
            inv.UpsertLocationGroupsRequest(
                location_groups=[group(g, *sorted(members)) for g, members in groups.items()]
            )
        )
    skus = [f"{prefix}sku-{s}" for s in range(3)]
    levels = [
        level(x, sku, data.draw(st.integers(0, 4)), data.draw(st.integers(0, 1)))
        for x in ids
        for sku in skus
        if data.draw(st.booleans(), label="stocked")
    ]
    if levels:
        inventory.SetStock(inv.SetStockRequest(levels=levels))
    places = [at(x) for x in ids] + [at_group(g) for g in groups]
    for _ in range(data.draw(st.integers(0, 4), label="reservations") if places else 0):
        wanted = item(
            data.draw(st.sampled_from(skus)),
            data.draw(st.sampled_from(places)),
            data.draw(st.integers(1, 3)),
        )
        request = res.CreateReservationRequest(items=[wanted], allow_partial=True)
        try:
            reservations.CreateReservation(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION  # nothing to reserve
    return sites, groups, skus


def check_answer(
    inventory: Any,
    request: inv.FindNearbyAvailabilityRequest,
    answer: inv.FindNearbyAvailabilityResponse,
) -> None:
    """The answer against the oracle, allowing for rounding: a distance within TOLERANCE_KM of
    the radius may be in or out, and locations whose distances differ by less than it may come
    in either order, unless they stand at the same place (then the id decides)."""
    origin = (request.position.latitude, request.position.longitude)
    limit = request.max_locations or 10
    radius = request.radius_km if request.HasField("radius_km") else None
    sites = [
        x
        for x in list_all(
            inventory.ListLocations, inv.ListLocationsRequest(page_size=1000), "locations"
        )
        if x.pickup_enabled
    ]
    if request.location_group_id:
        groups = list_all(
            inventory.ListLocationGroups,
            inv.ListLocationGroupsRequest(page_size=1000),
            "location_groups",
        )
        members = {x for g in groups if g.id == request.location_group_id for x in g.location_ids}
        sites = [x for x in sites if x.id in members]
    where = {x.id: (x.position.latitude, x.position.longitude) for x in sites}
    distance = {x: haversine_km(*origin, *point) for x, point in where.items()}

    got = [(x.location.id, x.distance_km) for x in answer.locations]
    assert len(got) <= limit
    assert got == sorted(got, key=lambda x: (x[1], x[0])), "nearest first, then by id"
    for location_id, km in got:
        assert location_id in distance, f"{location_id} is no pickup location in scope"
        assert abs(km - distance[location_id]) <= TOLERANCE_KM
        assert radius is None or km <= radius
    answered = dict(got)
    farthest = max(answered.values(), default=0.0)
    for left_out in set(distance) - set(answered):
        if radius is not None and distance[left_out] > radius - TOLERANCE_KM:
            continue  # out of range (or on its edge, where rounding decides)
        assert len(got) == limit, f"{left_out} is in range and the limit was not reached"
        assert distance[left_out] >= farthest - TOLERANCE_KM, f"{left_out} is nearer"
        for location_id in answered:
            assert not (where[location_id] == where[left_out] and left_out < location_id), (
                f"{left_out} stands where {location_id} does and comes first by id"
            )

    basket = [(line.sku, line.quantity) for line in request.lines]
    stock = availability(inventory, [sku for sku, _ in basket], list(answered)) if answered else {}
    for x in answer.locations:
        expected = [
            (sku, units, stock[(x.location.id, sku)].available_to_fulfill) for sku, units in basket
        ]
        assert [(y.sku, y.quantity, y.available_to_fulfill) for y in x.lines] == expected
        assert x.has_whole_basket == all(atf >= units for _, units, atf in expected)


def basket_of(data: st.DataObject, skus: list[str]) -> list[inv.BasketLine]:
    chosen = data.draw(
        st.lists(st.sampled_from([*skus, "never-stocked"]), min_size=1, unique=True),
        label="basket",
    )
    return lines(*((sku, data.draw(st.integers(1, 4), label="units")) for sku in chosen))


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_answers_match_a_brute_force_oracle_on_random_networks(
    inventory, reservations, arena, data
):
    sites, groups, skus = publish_network(data, inventory, reservations, arena)
    for _ in range(data.draw(st.integers(1, 3), label="queries")):
        if sites and data.draw(st.booleans(), label="at a location"):
            site = data.draw(st.sampled_from(sites))
            latitude, longitude = site.latitude, site.longitude
        else:
            latitude, longitude = data.draw(points, label="origin")
        request = inv.FindNearbyAvailabilityRequest(
            position=inv.GeoPoint(latitude=latitude, longitude=longitude),
            max_locations=data.draw(st.integers(0, len(sites) + 2), label="max_locations"),
            lines=basket_of(data, skus),
        )
        if groups and data.draw(st.booleans(), label="in a group"):
            request.location_group_id = data.draw(st.sampled_from(sorted(groups)))
        radius = data.draw(
            st.one_of(
                st.none(),
                st.floats(0.001, 20_000.0),
                st.sampled_from([0.001, 20_000.0, "exactly at a location"]),
            ),
            label="radius",
        )
        edge = None
        if radius == "exactly at a location":
            # The distance the server measures to a location: that location is in range.
            everything = inv.FindNearbyAvailabilityRequest()
            everything.CopyFrom(request)
            everything.max_locations = 100
            ranked = list(inventory.FindNearbyAvailability(everything).locations)
            rank = data.draw(st.integers(0, len(ranked) - 1)) if ranked else None
            if rank is not None and 0 < ranked[rank].distance_km <= 20_000:
                request.radius_km = ranked[rank].distance_km
                edge = (rank, ranked[rank].location.id)
        elif radius is not None:
            request.radius_km = float(radius)

        answer = inventory.FindNearbyAvailability(request, timeout=RPC_TIMEOUT_S)

        check_answer(inventory, request, answer)
        event(f"answered {min(len(answer.locations), 3)}+ locations")
        event(f"limit reached: {len(answer.locations) == (request.max_locations or 10)}")
        event(f"radius: {request.HasField('radius_km')}, group: {bool(request.location_group_id)}")
        event(f"some whole basket: {any(x.has_whole_basket for x in answer.locations)}")
        if edge is not None and edge[0] < (request.max_locations or 10):
            assert edge[1] in {x.location.id for x in answer.locations}
