"""Hand-solved waves: where routing order by order ships more boxes (or refuses an order) and
the joint plan does not, capacity, the decomposition, validation and `evaluate`'s checks.

Locations sit on the equator east of the customers at (0, 0), as in conftest: `metres(d)` is the
distance of a location d degrees away."""

from __future__ import annotations

from typing import Any

import pytest

from solver import InfeasiblePlan, InvalidProblem, Objective, Score
from solver.wave import solve
from solver.wave_baselines import greedy_one_by_one, one_by_one
from solver.wave_plan import WavePlan, evaluate, order_plan
from solver.wave_problem import Capacity, WaveProblem
from tests.solver.conftest import at, metres


def wave(
    orders: dict[str, dict[str, int]],
    stock: dict[str, tuple[float, dict[str, int]]],
    capacity: dict[str, tuple[int | None, int | None]] | None = None,
    **order_options: Any,
) -> WaveProblem:
    """A wave from {order id: {sku: qty}} and {location id: (degrees, {sku: units})}; every
    order ships to (0, 0); `order_options` maps an order id to its options."""
    return WaveProblem.build(
        orders=[
            {
                "id": name,
                "lines": list(lines.items()),
                "destination": (0.0, 0.0),
                **order_options.get(name, {}),
            }
            for name, lines in orders.items()
        ],
        locations=[at(name, degrees) for name, (degrees, _) in stock.items()],
        stock={(s, name): u for name, (_, held) in stock.items() for s, u in held.items()},
        capacity=capacity,
    )


def located(plan: WavePlan) -> list[tuple[str, ...] | None]:
    return [None if p is None else p.location_ids for p in plan.plans]


def test_order_by_order_spends_the_only_whole_source_and_ships_an_extra_box() -> None:
    """o1 (A) takes X, the nearest; then o2 (A, B) needs X for B and Y for A: 3 boxes.
    Joint: o1 from Y, o2 whole from X: 2 boxes."""
    problem = wave(
        {"o1": {"A": 1}, "o2": {"A": 1, "B": 1}},
        {"X": (1.0, {"A": 1, "B": 1}), "Y": (5.0, {"A": 1})},
    )
    joint, in_turn = solve(problem), one_by_one(problem)
    assert located(in_turn) == [("X",), ("X", "Y")]
    assert in_turn.objective == Score(0, 0, 3, 2 * metres(1) + metres(5))
    assert located(joint) == [("Y",), ("X",)]
    assert joint.objective == Score(0, 0, 2, metres(1) + metres(5))
    assert joint.proven_optimal
    assert evaluate(problem, joint) == joint.objective


def test_own_optima_are_the_bound_and_the_wave_pays_for_the_collision_in_distance() -> None:
    """Each order alone ships 1 box from X at 1 degree; together one goes to Y."""
    problem = wave(
        {"o1": {"A": 1}, "o2": {"A": 1, "B": 1}},
        {"X": (1.0, {"A": 1, "B": 1}), "Y": (5.0, {"A": 1})},
    )
    plan = solve(problem)
    assert plan.bound == plan.objective  # proven: the joint solve's own bound
    assert plan.method == "wave-mip-all"


def test_order_capacity_sends_the_order_that_has_an_alternative_elsewhere() -> None:
    """X can pick one order. In turn: o1 takes X, o2 (A, B) splits over Y and W: 3 boxes.
    Joint: o1 from Y, o2 whole from X: 2 boxes."""
    problem = wave(
        {"o1": {"A": 1}, "o2": {"A": 1, "B": 1}},
        {"X": (1.0, {"A": 5, "B": 5}), "Y": (5.0, {"A": 5}), "W": (9.0, {"B": 5})},
        capacity={"X": (1, None)},
    )
    in_turn, joint = one_by_one(problem), solve(problem)
    assert in_turn.objective.shipments == 3
    assert located(joint) == [("Y",), ("X",)]
    assert joint.objective == Score(0, 0, 2, metres(1) + metres(5))
    assert evaluate(problem, in_turn) == in_turn.objective


def test_unit_capacity_counts_every_line_a_location_picks() -> None:
    """X can pick 2 units. o1 takes 2 A from X in turn; o2's B must then come from far W.
    Joint: o1 from Y (2 degrees), o2 from X: same boxes, shorter."""
    problem = wave(
        {"o1": {"A": 2}, "o2": {"B": 1}},
        {"X": (1.0, {"A": 2, "B": 1}), "Y": (2.0, {"A": 2}), "W": (6.0, {"B": 1})},
        capacity={"X": (None, 2)},
    )
    assert one_by_one(problem).objective == Score(0, 0, 2, metres(1) + metres(6))
    joint = solve(problem)
    assert joint.objective == Score(0, 0, 2, metres(2) + metres(1))
    assert located(joint) == [("Y",), ("X",)]


def test_unit_capacity_over_several_lines_is_respected_order_by_order() -> None:
    """X holds both lines but can pick only 2 of the 3 units: the single-order solver's plan
    would take all 3 there, so order by order re-solves that order within the limit."""
    problem = wave(
        {"o1": {"A": 2, "B": 1}},
        {"X": (1.0, {"A": 2, "B": 1}), "Y": (3.0, {"B": 1})},
        capacity={"X": (None, 2)},
    )
    in_turn = one_by_one(problem)
    assert in_turn.objective == Score(0, 0, 2, metres(1) + metres(3))
    assert evaluate(problem, in_turn) == in_turn.objective


def test_order_by_order_refuses_an_order_that_the_wave_routes() -> None:
    """o2 needs 2 A from one location (whole lines). In turn, o1 takes one of Y's two;
    jointly, o1 ships from X and o2 from Y."""
    problem = wave(
        {"o1": {"A": 1}, "o2": {"A": 2}},
        {"Y": (1.0, {"A": 2}), "X": (5.0, {"A": 1})},
        o2={"keep_lines_whole": True},
    )
    in_turn = one_by_one(problem)
    assert located(in_turn) == [("Y",), None]
    assert in_turn.objective.unrouted_units == 2
    assert greedy_one_by_one(problem).objective.unrouted_units == 2
    joint = solve(problem)
    assert located(joint) == [("X",), ("Y",)]
    assert joint.objective == Score(0, 0, 2, metres(1) + metres(5))


def test_max_shipments_holds_in_the_wave() -> None:
    """o2 may ship once: only X can ship it whole, so o1 goes to Y."""
    problem = wave(
        {"o1": {"A": 1}, "o2": {"A": 1, "B": 1}},
        {"X": (1.0, {"A": 1, "B": 1}), "Y": (5.0, {"A": 1}), "W": (2.0, {"B": 1})},
        o2={"max_shipments": 1},
    )
    assert located(one_by_one(problem)) == [("X",), None]
    assert located(solve(problem)) == [("Y",), ("X",)]


def test_partial_orders_route_what_the_stock_allows() -> None:
    """Three units of A for two partial orders of 2: one unit stays unrouted, whichever."""
    problem = wave(
        {"o1": {"A": 2}, "o2": {"A": 2}},
        {"X": (1.0, {"A": 3})},
        o1={"allow_partial": True},
        o2={"allow_partial": True},
    )
    plan = solve(problem)
    assert plan.objective == Score(1, 0, 2, 2 * metres(1))


def test_orders_whose_own_plans_fit_together_need_no_joint_solve() -> None:
    problem = wave(
        {"o1": {"A": 1}, "o2": {"B": 1}},
        {"X": (1.0, {"A": 1}), "Y": (2.0, {"B": 1})},
    )
    plan = solve(problem)
    assert plan.method == "own-optima"
    assert plan.proven_optimal
    assert plan.objective == plan.bound == Score(0, 0, 2, metres(1) + metres(2))


def test_only_the_colliding_orders_are_solved_jointly() -> None:
    """o1 and o2 collide at X; o3..o5 each have their own SKU and location and keep their own
    plans, which the joint plan for o1 and o2 does not touch."""
    problem = wave(
        {
            "o1": {"A": 1},
            "o2": {"A": 1, "B": 1},
            "o3": {"C": 1},
            "o4": {"D": 1},
            "o5": {"E": 1},
        },
        {
            "X": (1.0, {"A": 1, "B": 1}),
            "Y": (5.0, {"A": 1}),
            "C1": (2.0, {"C": 1}),
            "D1": (3.0, {"D": 1}),
            "E1": (4.0, {"E": 1}),
        },
    )
    plan = solve(problem)
    assert plan.method == "wave-mip"
    assert plan.proven_optimal
    assert located(plan) == [("Y",), ("X",), ("C1",), ("D1",), ("E1",)]


def test_cost_objective_prefers_the_cheaper_shipments() -> None:
    problem = WaveProblem.build(
        orders=[{"id": "o1", "lines": [("A", 1)], "destination": (0.0, 0.0)}],
        locations=[at("near", 1.0, shipment_cost=9.0), at("far", 2.0, shipment_cost=1.0)],
        stock={("A", "near"): 1, ("A", "far"): 1},
        objective=Objective.COST,
    )
    assert located(solve(problem)) == [("far",)]


def test_evaluate_rejects_plans_that_together_take_more_than_the_stock() -> None:
    problem = wave({"o1": {"A": 1}, "o2": {"A": 1}}, {"X": (1.0, {"A": 1}), "Y": (2.0, {"A": 1})})
    both_at_x = [order_plan(problem, k, {0: {"A": 1}}, proven=False, method="") for k in (0, 1)]
    with pytest.raises(InfeasiblePlan) as error:
        evaluate(problem, both_at_x)
    assert error.value.reason == "OVER_STOCK"


def test_evaluate_rejects_plans_beyond_a_locations_order_capacity() -> None:
    problem = wave(
        {"o1": {"A": 1}, "o2": {"A": 1}}, {"X": (1.0, {"A": 2})}, capacity={"X": (1, None)}
    )
    both_at_x = [order_plan(problem, k, {0: {"A": 1}}, proven=False, method="") for k in (0, 1)]
    with pytest.raises(InfeasiblePlan) as error:
        evaluate(problem, both_at_x)
    assert error.value.reason == "OVER_CAPACITY_ORDERS"


def test_evaluate_rejects_a_partial_plan_for_an_order_that_must_ship_whole() -> None:
    problem = wave({"o1": {"A": 2}}, {"X": (1.0, {"A": 1})})
    half = order_plan(problem, 0, {0: {"A": 1}}, proven=False, method="")
    with pytest.raises(InfeasiblePlan) as error:
        evaluate(problem, [half])
    assert error.value.reason == "PARTIAL_NOT_ALLOWED"
    assert evaluate(problem, [None]) == Score(2, 0, 0, 0)  # refused: all units unrouted


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"orders": [{"id": "o", "lines": [("A", 1)], "destination": (0.0, 0.0)}] * 2},
            "DUPLICATE_ORDER_ID",
        ),
        ({"capacity": {"nowhere": Capacity(1)}}, "UNKNOWN_LOCATION"),
        ({"capacity": {"X": Capacity(-1)}}, "INVALID_CAPACITY"),
        ({"stock": {("A", "X"): -1}}, "NEGATIVE_ATF"),
        (
            {"orders": [{"id": "o", "lines": [("A", 0)], "destination": (0.0, 0.0)}]},
            "NON_POSITIVE_QUANTITY",
        ),
        (
            {
                "orders": [
                    {
                        "id": "o",
                        "lines": [("A", 1)],
                        "destination": (0.0, 0.0),
                        "excluded_locations": ["nowhere"],
                    }
                ]
            },
            "UNKNOWN_LOCATION",
        ),
    ],
)
def test_invalid_waves_name_their_reason(change: dict[str, Any], reason: str) -> None:
    values: dict[str, Any] = {
        "orders": [{"id": "o", "lines": [("A", 1)], "destination": (0.0, 0.0)}],
        "locations": [at("X", 1.0)],
        "stock": {("A", "X"): 1},
    }
    with pytest.raises(InvalidProblem) as error:
        WaveProblem.build(**{**values, **change})
    assert error.value.reason == reason
