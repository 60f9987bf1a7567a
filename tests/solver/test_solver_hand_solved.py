"""Hand-solved instances (optimum worked out in each docstring) and one test per option showing
it changes the answer the way it should. Objective values are asserted, not assignments, where
ties are legitimate."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from solver import NoFeasiblePlan, Score, SolveParams, evaluate, solve
from solver.baselines import greedy
from tests.solver.conftest import metres, order

# These instances are small enough for the exhaustive path; tests that name the path a larger
# order would take switch it off.
PATHS = SolveParams(exhaustive_up_to=0)


def test_fewest_shipments_beats_nearer_split(one_far_or_two_near: dict[str, Any]) -> None:
    """F ships everything in one box from 10 deg; nearer N1 + N2 would need two boxes."""
    problem = order(**one_far_or_two_near)
    plan = solve(problem, PATHS)
    assert plan.objective == Score(0, 0, 1, metres(10))
    assert plan.location_ids == ("F",)
    assert dict(plan.shipments[0].units) == {"A": 2, "B": 1}
    assert plan.method == "single-location"
    assert plan.proven_optimal
    assert plan.gap is None
    assert evaluate(problem, plan) == plan.objective


def test_greedy_splits_where_the_solver_does_not(one_far_or_two_near: dict[str, Any]) -> None:
    """Greedy fills A from N1 and B from N2 (nearest per line): two boxes, 3 deg."""
    plan = greedy(order(**one_far_or_two_near))
    assert plan.objective == Score(0, 0, 2, metres(1) + metres(2))


def test_cost_objective_prefers_two_cheap_near_boxes(one_far_or_two_near: dict[str, Any]) -> None:
    """Shipments cost 5 each plus 0.01 per km: F costs 5 + 11.12 = 16.12, N1 + N2 cost
    10 + 0.01 * 333.6 = 13.34, so the cost objective ships two boxes."""
    problem = order(
        **one_far_or_two_near,
        objective="cost",
        cost_per_km=0.01,
        shipment_costs={"N1": 5.0, "N2": 5.0, "F": 5.0, "N3": 5.0},
    )
    plan = solve(problem)
    assert set(plan.location_ids) == {"N1", "N2"}
    km = (metres(1) + metres(2)) / 1000
    assert plan.objective == Score(0, round((10 + 0.01 * km) * 1000), 2, metres(1) + metres(2))
    assert evaluate(problem, plan) == plan.objective


def test_cost_per_km_moves_the_cost_optimum(one_far_or_two_near: dict[str, Any]) -> None:
    """With shipments at 10 and no per-km cost, F (10) beats N1 + N2 (20); at 0.1 per km,
    F costs 10 + 111.2 = 121.2 while N1 + N2 cost 20 + 33.4 = 53.4."""
    costs = {"N1": 10.0, "N2": 10.0, "F": 10.0, "N3": 10.0}
    free_km = solve(order(**one_far_or_two_near, objective="cost", shipment_costs=costs))
    dear_km = solve(
        order(**one_far_or_two_near, objective="cost", cost_per_km=0.1, shipment_costs=costs)
    )
    assert free_km.location_ids == ("F",)
    assert set(dear_km.location_ids) == {"N1", "N2"}


def test_alternatives_are_the_next_best_distinct_sets(one_far_or_two_near: dict[str, Any]) -> None:
    """Ranked: {F} (1 box), {N1, N2} (3 deg), {N2, N3} (6 deg); supersets of a listed set
    (e.g. {N1, F}) are never listed, and no fourth set exists."""
    plan = solve(order(**one_far_or_two_near, alternatives=5))
    listed = [plan, *plan.alternatives]
    assert [set(p.location_ids) for p in listed] == [{"F"}, {"N1", "N2"}, {"N2", "N3"}]
    assert [p.objective.distance_m for p in listed] == [
        metres(10),
        metres(1) + metres(2),
        metres(2) + metres(4),
    ]


def test_split_lines_take_the_nearest_pair(split_or_whole: dict[str, Any]) -> None:
    """No location holds A:2 and B:1; the nearest covering pair is L1 + L2 (3 deg)."""
    problem = order(**split_or_whole)
    plan = solve(problem, PATHS)
    assert plan.objective == Score(0, 0, 2, metres(1) + metres(2))
    assert plan.method == "two-location"
    assert {s.location_id: dict(s.units) for s in plan.shipments} == {
        "L1": {"A": 1, "B": 1},
        "L2": {"A": 1},
    }


def test_keep_lines_whole_ships_each_line_from_one_location(
    split_or_whole: dict[str, Any],
) -> None:
    """Whole lines: A:2 only at L3, B only at L1, so {L1, L3} at 6 deg."""
    problem = order(**split_or_whole, keep_lines_whole=True)
    plan = solve(problem)
    assert plan.objective == Score(0, 0, 2, metres(1) + metres(5))
    assert {s.location_id: dict(s.units) for s in plan.shipments} == {
        "L1": {"B": 1},
        "L3": {"A": 2},
    }
    assert evaluate(problem, plan) == plan.objective


def test_excluded_location_is_never_used(split_or_whole: dict[str, Any]) -> None:
    """Without L2 the nearest covering pair is L1 + L3 (6 deg)."""
    plan = solve(order(**split_or_whole, excluded_locations={"L2"}))
    assert set(plan.location_ids) == {"L1", "L3"}


def test_cannot_route_more_than_the_candidates_hold() -> None:
    """A:3 against one unit at each of L1 and L2: one unit short."""
    problem = order({"A": 3}, {"L1": (1.0, {"A": 1}), "L2": (2.0, {"A": 1})})
    with pytest.raises(NoFeasiblePlan) as raised:
        solve(problem)
    assert raised.value.reason == "INSUFFICIENT_STOCK"
    assert dict(raised.value.shortfall) == {"A": 1}


def test_allow_partial_routes_what_it_can() -> None:
    """Same order with allow_partial: both locations ship, one unit unrouted."""
    problem = order({"A": 3}, {"L1": (1.0, {"A": 1}), "L2": (2.0, {"A": 1})}, allow_partial=True)
    plan = solve(problem)
    assert plan.objective == Score(1, 0, 2, metres(1) + metres(2))
    assert dict(plan.unrouted) == {"A": 1}
    assert evaluate(problem, plan) == plan.objective


def _three_skus(**options: Any) -> Any:
    """A, B, C one each. L1 (1 deg) A+B, L2 (2 deg) C, L3 (3 deg) A+C, L4 (4 deg) B.
    Fewest boxes: 2, nearest {L1, L2} at 3 deg ({L3, L4} is 7 deg)."""
    return order(
        {"A": 1, "B": 1, "C": 1},
        {
            "L1": (1.0, {"A": 1, "B": 1}),
            "L2": (2.0, {"C": 1}),
            "L3": (3.0, {"A": 1, "C": 1}),
            "L4": (4.0, {"B": 1}),
        },
        **options,
    )


def test_max_shipments_that_cannot_be_met_fails() -> None:
    assert solve(_three_skus()).objective == Score(0, 0, 2, metres(1) + metres(2))
    with pytest.raises(NoFeasiblePlan) as raised:
        solve(_three_skus(max_shipments=1))
    assert raised.value.reason == "MAX_SHIPMENTS_EXCEEDED"


def test_max_shipments_with_partial_routes_the_most_units_it_allows() -> None:
    """One box: L1 or L3 ship two of the three units; L1 is nearer. One unit unrouted."""
    problem = _three_skus(max_shipments=1, allow_partial=True)
    plan = solve(problem)
    assert plan.objective == Score(1, 0, 1, metres(1))
    assert plan.location_ids == ("L1",)
    assert evaluate(problem, plan) == plan.objective


def test_ties_go_to_lower_priority_then_lower_id() -> None:
    """Three co-located locations that each ship everything: priority 0 beats 1; between
    the two priority-0 ones, "a" beats "b"."""
    stock = {"b": (1.0, {"A": 1}), "c": (1.0, {"A": 1}), "a": (1.0, {"A": 1})}
    plan = solve(order({"A": 1}, stock, priorities={"b": 0, "c": 1, "a": 1}))
    assert plan.location_ids == ("b",)
    plan = solve(order({"A": 1}, stock, priorities={"b": 0, "c": 1, "a": 0}))
    assert plan.location_ids == ("a",)


def test_three_locations_found_by_the_exact_search() -> None:
    """A, B, C at three different places only (1, 2, 3 deg), plus a far copy of A (9 deg):
    three boxes, 6 deg."""
    problem = order(
        {"A": 1, "B": 1, "C": 1},
        {"X": (1.0, {"A": 1}), "Y": (2.0, {"B": 1}), "Z": (3.0, {"C": 1}), "W": (9.0, {"A": 1})},
    )
    plan = solve(problem, PATHS)
    assert plan.objective == Score(0, 0, 3, metres(1) + metres(2) + metres(3))
    assert plan.method == "three-location"


def test_seven_locations_go_to_the_mip() -> None:
    """Seven SKUs, each at one place (1..7 deg) and again farther out (11..17 deg): seven
    boxes at 1 + ... + 7 = 28 deg; the exact search stops at six locations."""
    stock = {f"near{k}": (float(k), {sku: 1}) for k, sku in enumerate("ABCDEFG", start=1)}
    stock |= {f"far{k}": (10.0 + k, {sku: 1}) for k, sku in enumerate("ABCDEFG", start=1)}
    plan = solve(order(dict.fromkeys("ABCDEFG", 1), stock), PATHS)
    assert plan.objective == Score(0, 0, 7, sum(metres(k) for k in range(1, 8)))
    assert plan.method.startswith("mip-")
    assert plan.proven_optimal


def test_few_candidates_are_settled_by_scoring_every_subset() -> None:
    """Five SKUs on ten candidates (1,024 subsets), the same layout: five boxes, 15 deg."""
    stock = {f"near{k}": (float(k), {sku: 1}) for k, sku in enumerate("ABCDE", start=1)}
    stock |= {f"far{k}": (10.0 + k, {sku: 1}) for k, sku in enumerate("ABCDE", start=1)}
    plan = solve(order(dict.fromkeys("ABCDE", 1), stock))
    assert plan.objective == Score(0, 0, 5, sum(metres(k) for k in range(1, 6)))
    assert plan.method == "exhaustive"


def test_four_to_six_locations_are_found_by_the_budgeted_search() -> None:
    """Five SKUs, each at one place (1..5 deg) and farther out: five boxes at 15 deg."""
    stock = {f"near{k}": (float(k), {sku: 1}) for k, sku in enumerate("ABCDE", start=1)}
    stock |= {f"far{k}": (10.0 + k, {sku: 1}) for k, sku in enumerate("ABCDE", start=1)}
    plan = solve(order(dict.fromkeys("ABCDE", 1), stock), PATHS)
    assert plan.objective == Score(0, 0, 5, sum(metres(k) for k in range(1, 6)))
    assert plan.method == "five-location"


def test_a_spent_search_budget_hands_the_same_optimum_to_the_mip() -> None:
    """The order above with no search work allowed above three locations: the MIP stages
    answer it, with the same five boxes at 15 deg."""
    stock = {f"near{k}": (float(k), {sku: 1}) for k, sku in enumerate("ABCDE", start=1)}
    stock |= {f"far{k}": (10.0 + k, {sku: 1}) for k, sku in enumerate("ABCDE", start=1)}
    plan = solve(order(dict.fromkeys("ABCDE", 1), stock), replace(PATHS, search_work=0))
    assert plan.objective == Score(0, 0, 5, sum(metres(k) for k in range(1, 6)))
    assert plan.method.startswith("mip-")
    assert plan.proven_optimal


def test_nothing_in_stock_with_partial_is_an_empty_plan() -> None:
    problem = order({"A": 2}, {"L1": (1.0, {})}, allow_partial=True, alternatives=3)
    plan = solve(problem)
    assert plan.shipments == ()
    assert plan.objective == Score(2, 0, 0, 0)
    assert plan.alternatives == ()
