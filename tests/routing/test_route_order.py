"""RouteOrder through the real server: the seed scenario, every option, commits and bad input."""

from __future__ import annotations

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt

from server.domain import route_order
from tests.routing.network import SITES, order, publish, shipped
from tests.support import at, at_group, availability, failure, item

SKUS = ["jeans", "sweater-red", "sweater-blue"]
ALL_SKUS = SKUS


def state(inventory, reservations) -> tuple[object, object]:
    """Everything a bad request could have changed."""
    view = inventory.GetAvailability(
        inv.GetAvailabilityRequest(
            skus=ALL_SKUS, location_ids=sorted(SITES), location_group_ids=["us-web"]
        )
    )
    listed = reservations.ListReservations(res.ListReservationsRequest(page_size=1000))
    return view, listed


def test_seed_order_moves_from_us_web_to_the_nearest_location_that_ships_all_three_lines(
    inventory, reservations, routing
):
    # Miami (41 km) + Orlando (296 km) could ship it in two boxes; Atlanta (942 km) is the
    # nearest location with all three lines, and one box beats two.
    publish(
        inventory,
        {
            "miami": {"jeans": 5, "sweater-red": 5},
            "orlando": {"sweater-blue": 5},
            "atlanta": {"jeans": 2, "sweater-red": 2, "sweater-blue": 2},
            "nj-dc": {"jeans": 50, "sweater-red": 50, "sweater-blue": 50},
        },
    )
    reservations.CreateReservation(
        res.CreateReservationRequest(
            reservation_id="order-1", items=[item(sku, at_group("us-web"), 1) for sku in SKUS]
        )
    )
    before = availability(inventory, SKUS, ["atlanta"], ["us-web"])
    assert [before[("us-web", sku)].group_reserved for sku in SKUS] == [1, 1, 1]

    routed = routing.RouteOrder(
        order(
            *[(sku, 1) for sku in SKUS],
            location_group_id="us-web",
            commit=rt.COMMIT_MODE_TRANSFER,
            reservation_id="order-1",
        )
    )

    assert shipped(routed.plan) == {"atlanta": dict.fromkeys(SKUS, 1)}
    assert routed.plan.shipment_count == 1
    assert routed.plan.proven_optimal
    assert routed.plan.total_distance_km == pytest.approx(942, abs=2)
    assert {
        (line.place.location_id, line.sku, line.open)
        for line in routed.reservation.lines
        if line.open
    } == {("atlanta", sku, 1) for sku in SKUS}
    after = availability(inventory, SKUS, ["atlanta"], ["us-web"])
    for sku in SKUS:
        assert after[("atlanta", sku)].reserved == 1
        assert after[("atlanta", sku)].available_to_fulfill == 1
        assert after[("us-web", sku)].group_reserved == 0
        assert after[("us-web", sku)].reserved == 1
        assert (
            after[("us-web", sku)].available_to_order == before[("us-web", sku)].available_to_order
        )

    reservations.FulfillReservation(
        res.FulfillReservationRequest(
            reservation_id="order-1",
            items=[res.FulfillItem(sku=sku, place=at("atlanta"), quantity=1) for sku in SKUS],
        )
    )
    shipped_view = availability(inventory, SKUS, ["atlanta"], ["us-web"])
    for sku in SKUS:
        assert (
            shipped_view[("atlanta", sku)].on_hand,
            shipped_view[("atlanta", sku)].reserved,
        ) == (1, 0)
        assert shipped_view[("us-web", sku)].on_hand == before[("us-web", sku)].on_hand - 1
        assert (
            shipped_view[("us-web", sku)].available_to_order
            == before[("us-web", sku)].available_to_order
        )


def test_when_no_location_has_every_line_the_fewest_then_nearest_locations_ship(inventory, routing):
    # Two boxes are needed; Miami + Orlando (41 + 296 km) beats Miami + Tampa (41 + 307 km).
    publish(
        inventory,
        {
            "miami": {"jeans": 1, "sweater-red": 1},
            "orlando": {"sweater-blue": 1},
            "tampa": {"sweater-blue": 1},
            "tx-dc": {"jeans": 9, "sweater-blue": 9},
        },
    )
    routed = routing.RouteOrder(order(*[(sku, 1) for sku in SKUS], location_group_id="us-web"))
    assert shipped(routed.plan) == {
        "miami": {"jeans": 1, "sweater-red": 1},
        "orlando": {"sweater-blue": 1},
    }
    assert routed.plan.total_distance_km == pytest.approx(41 + 296, abs=2)


def test_dry_run_changes_nothing(inventory, reservations, routing):
    publish(inventory, {"miami": {"jeans": 3}})
    before = state(inventory, reservations)
    routed = routing.RouteOrder(order(("jeans", 2)))
    assert shipped(routed.plan) == {"miami": {"jeans": 2}}
    assert not routed.HasField("reservation")
    assert state(inventory, reservations) == before


def test_reserve_commit_creates_the_reservation_at_the_chosen_locations(
    inventory, reservations, routing
):
    publish(inventory, {"miami": {"jeans": 1}, "orlando": {"jeans": 5}})
    routed = routing.RouteOrder(
        order(("jeans", 2), order_id="web-77", commit=rt.COMMIT_MODE_RESERVE)
    )
    assert shipped(routed.plan) == {"orlando": {"jeans": 2}}
    stored = reservations.GetReservation(
        res.GetReservationRequest(reservation_id="web-77")
    ).reservation
    assert stored == routed.reservation
    assert [(line.place.location_id, line.open) for line in stored.lines] == [("orlando", 2)]
    assert availability(inventory, ["jeans"], ["orlando"])[("orlando", "jeans")].reserved == 2


def test_a_deadline_too_short_to_solve_is_deadline_exceeded_and_reserves_nothing(
    inventory, reservations, routing
):
    publish(inventory, {"miami": {"jeans": 3}})
    before = state(inventory, reservations)
    request = order(("jeans", 2), commit=rt.COMMIT_MODE_RESERVE)

    # Too short for even the greedy plan, but long enough to hear why.
    with pytest.raises(grpc.RpcError) as refused:
        routing.RouteOrder(request, timeout=0.8 * route_order.SHORTEST_ATTEMPT_S)

    assert (failure(refused.value).code, failure(refused.value).reason) == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "DEADLINE_EXCEEDED",
    )
    assert state(inventory, reservations) == before
    assert shipped(routing.RouteOrder(request, timeout=30).plan) == {"miami": {"jeans": 2}}


def test_a_retried_commit_returns_the_first_answer_and_reserves_once(inventory, routing):
    publish(inventory, {"miami": {"jeans": 3}})
    request = order(("jeans", 2), commit=rt.COMMIT_MODE_RESERVE, request_id="route-req-1")
    first = routing.RouteOrder(request)
    again = routing.RouteOrder(request)
    assert again.SerializeToString(deterministic=True) == first.SerializeToString(
        deterministic=True
    )
    assert availability(inventory, ["jeans"], ["miami"])[("miami", "jeans")].reserved == 2


def test_excluded_locations_never_ship(inventory, routing):
    publish(inventory, {"miami": {"jeans": 1}, "orlando": {"jeans": 1}, "tampa": {"jeans": 1}})
    options = rt.RoutingOptions(excluded_location_ids=["miami"])
    assert shipped(routing.RouteOrder(order(("jeans", 1), options=options)).plan) == {
        "orlando": {"jeans": 1}
    }


def test_least_cost_objective_trades_distance_for_cheaper_shipments(inventory, routing):
    # Miami: 50 + 0.01 x 41 km = 50.41; Tampa: 0 + 0.01 x 307 km = 3.07.
    publish(inventory, {"miami": {"jeans": 1}, "tampa": {"jeans": 1}}, miami=50.0)
    nearest = routing.RouteOrder(order(("jeans", 1))).plan
    cheapest = routing.RouteOrder(
        order(
            ("jeans", 1),
            options=rt.RoutingOptions(objective=rt.OBJECTIVE_LEAST_COST, cost_per_km=0.01),
        )
    ).plan
    assert shipped(nearest) == {"miami": {"jeans": 1}}
    assert shipped(cheapest) == {"tampa": {"jeans": 1}}
    assert cheapest.total_cost == pytest.approx(3.07, abs=0.02)


def test_max_shipments_refuses_an_order_that_needs_more_boxes_unless_partial(
    inventory, reservations, routing
):
    publish(inventory, {"miami": {"jeans": 1}, "orlando": {"sweater-red": 1}})
    two_lines = [("jeans", 1), ("sweater-red", 1)]
    before = state(inventory, reservations)
    with pytest.raises(grpc.RpcError) as refused:
        routing.RouteOrder(
            order(
                *two_lines,
                options=rt.RoutingOptions(max_shipments=1),
                commit=rt.COMMIT_MODE_RESERVE,
            )
        )
    assert (failure(refused.value).code, failure(refused.value).reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "MAX_SHIPMENTS_EXCEEDED",
    )
    assert state(inventory, reservations) == before
    partial = routing.RouteOrder(
        order(*two_lines, options=rt.RoutingOptions(max_shipments=1, allow_partial=True))
    ).plan
    assert partial.shipment_count == 1
    assert shipped(partial) == {"miami": {"jeans": 1}}
    assert [(line.sku, line.quantity) for line in partial.unrouted] == [("sweater-red", 1)]


def test_allow_partial_routes_what_exists_and_reports_the_rest(inventory, routing):
    publish(inventory, {"miami": {"jeans": 2}})
    with pytest.raises(grpc.RpcError) as refused:
        routing.RouteOrder(order(("jeans", 5)))
    info = failure(refused.value)
    assert (info.code, info.reason, info.metadata["sku"], info.metadata["available"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_ROUTE",
        "jeans",
        "2",
    )
    partial = routing.RouteOrder(
        order(("jeans", 5), options=rt.RoutingOptions(allow_partial=True))
    ).plan
    assert shipped(partial) == {"miami": {"jeans": 2}}
    assert [(line.sku, line.quantity) for line in partial.unrouted] == [("jeans", 3)]


def test_keep_lines_whole_ships_each_line_from_one_location(inventory, routing):
    # Split: Miami (1 jeans + sweater) + Orlando (1 jeans), 337 km. Whole: the two jeans must
    # come from Newark, the only location with 2, so Newark + Miami.
    publish(
        inventory,
        {"miami": {"jeans": 1, "sweater-red": 1}, "orlando": {"jeans": 1}, "nj-dc": {"jeans": 2}},
    )
    lines = [("jeans", 2), ("sweater-red", 1)]
    split = routing.RouteOrder(order(*lines)).plan
    whole = routing.RouteOrder(order(*lines, options=rt.RoutingOptions(keep_lines_whole=True))).plan
    assert shipped(split) == {"miami": {"jeans": 1, "sweater-red": 1}, "orlando": {"jeans": 1}}
    assert shipped(whole) == {"nj-dc": {"jeans": 2}, "miami": {"sweater-red": 1}}


def test_alternatives_are_the_next_best_distinct_location_sets_in_rank_order(inventory, routing):
    publish(inventory, {site: {"jeans": 1} for site in ("miami", "orlando", "tampa", "atlanta")})
    routed = routing.RouteOrder(order(("jeans", 1), options=rt.RoutingOptions(alternatives=2)))
    ranked = [routed.plan, *routed.alternatives]
    assert [next(iter(shipped(plan))) for plan in ranked] == ["miami", "orlando", "tampa"]


def test_candidate_scope_is_the_listed_locations_or_every_ship_enabled_location(inventory, routing):
    publish(inventory, {"miami": {"jeans": 1}, "tampa": {"jeans": 1}, "tx-dc": {"jeans": 1}})
    inventory.SetStock(
        inv.SetStockRequest(levels=[inv.StockLevel(location_id="outlet", sku="jeans", on_hand=9)])
    )
    listed = routing.RouteOrder(order(("jeans", 1), location_ids=["tampa", "tx-dc"])).plan
    everywhere = routing.RouteOrder(
        order(("jeans", 5), options=rt.RoutingOptions(allow_partial=True))
    ).plan
    assert shipped(listed) == {"tampa": {"jeans": 1}}
    assert "outlet" not in shipped(everywhere)  # not ship-enabled, though nearest with most stock
    assert sum(line.quantity for line in everywhere.unrouted) == 2


def test_a_time_limit_bounds_the_solve_and_the_answer_says_whether_it_is_proven(inventory, routing):
    publish(inventory, {site: {"jeans": 1, "sweater-red": 1} for site in SITES})
    routed = routing.RouteOrder(
        order(
            ("jeans", 2),
            ("sweater-red", 2),
            options=rt.RoutingOptions(time_limit={"nanos": 50_000_000}),
        )
    )
    assert routed.plan.shipment_count == 2
    assert routed.stats.solve_time.seconds < 5
    assert routed.plan.proven_optimal  # small enough to prove within 50 ms


@pytest.mark.parametrize(
    ("case", "build", "code", "reason"),
    [
        (
            "unknown sku",
            lambda: order(("no-such-sku", 1)),
            grpc.StatusCode.NOT_FOUND,
            "SKU_NOT_FOUND",
        ),
        (
            "unknown location",
            lambda: order(("jeans", 1), location_ids=["nowhere"]),
            grpc.StatusCode.NOT_FOUND,
            "LOCATION_NOT_FOUND",
        ),
        (
            "unknown group",
            lambda: order(("jeans", 1), location_group_id="eu-web"),
            grpc.StatusCode.NOT_FOUND,
            "LOCATION_GROUP_NOT_FOUND",
        ),
        (
            "unknown reservation",
            lambda: order(("jeans", 1), commit=rt.COMMIT_MODE_TRANSFER, reservation_id="nope"),
            grpc.StatusCode.NOT_FOUND,
            "RESERVATION_NOT_FOUND",
        ),
        (
            "unknown postal code",
            lambda: order(
                ("jeans", 1),
                destination=rt.Destination(
                    postal_code=rt.PostalCode(country_code="US", postal_code="00000")
                ),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "UNKNOWN_POSTAL_CODE",
        ),
        (
            "mismatched quantities",
            lambda: order(("jeans", 2), commit=rt.COMMIT_MODE_TRANSFER, reservation_id="held"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "RESERVATION_MISMATCH",
        ),
        ("zero lines", order, grpc.StatusCode.INVALID_ARGUMENT, "MISSING_FIELD"),
        (
            "too many lines",
            lambda: order(*[(f"sku-{i}", 1) for i in range(101)]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "TOO_MANY_ITEMS",
        ),
        (
            "zero quantity",
            lambda: order(("jeans", 0)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_QUANTITY",
        ),
        (
            "group and locations",
            lambda: order(("jeans", 1), location_group_id="us-web", location_ids=["miami"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
        ),
        (
            "transfer without reservation",
            lambda: order(("jeans", 1), commit=rt.COMMIT_MODE_TRANSFER),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ID",
        ),
        (
            "no destination",
            lambda: order(("jeans", 1), destination=rt.Destination()),
            grpc.StatusCode.INVALID_ARGUMENT,
            "MISSING_FIELD",
        ),
        (
            "latitude out of range",
            lambda: order(
                ("jeans", 1),
                destination=rt.Destination(position=inv.GeoPoint(latitude=91, longitude=0)),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
        ),
    ],
)
def test_bad_route_requests_get_the_documented_error_and_change_nothing(
    inventory, reservations, routing, case, build, code, reason
):
    publish(inventory, {"miami": {"jeans": 3}})
    reservations.CreateReservation(
        res.CreateReservationRequest(
            reservation_id="held", items=[item("jeans", at_group("us-web"), 1)]
        )
    )
    before = state(inventory, reservations)
    with pytest.raises(grpc.RpcError) as refused:
        routing.RouteOrder(build(), timeout=10)
    info = failure(refused.value)
    assert (info.code, info.reason) == (code, reason), case
    assert state(inventory, reservations) == before
