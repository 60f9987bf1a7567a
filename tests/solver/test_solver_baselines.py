"""The peers' algorithms do what they claim (they are the benchmark's baselines)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings

from solver import NoFeasiblePlan, Problem, Score, evaluate
from solver.baselines import enumerate_routes, enumeration, greedy
from tests.solver.conftest import metres, order
from tests.solver.strategies import problems


def test_greedy_fills_each_line_from_the_nearest_location_outwards() -> None:
    """A:3 is taken 1 from L1, 2 from L2 (L3 not needed); B:1 from L3, the nearest holding B."""
    problem = order(
        {"A": 3, "B": 1},
        {"L2": (2.0, {"A": 5}), "L1": (1.0, {"A": 1}), "L3": (3.0, {"B": 1, "A": 9})},
    )
    plan = greedy(problem)
    assert {s.location_id: dict(s.units) for s in plan.shipments} == {
        "L1": {"A": 1},
        "L2": {"A": 2},
        "L3": {"B": 1},
    }
    assert plan.objective == Score(0, 0, 3, metres(1) + metres(2) + metres(3))
    assert evaluate(problem, plan) == plan.objective
    assert plan.method == "greedy"
    assert not plan.proven_optimal


def test_greedy_with_whole_lines_takes_the_first_location_holding_the_line() -> None:
    problem = order({"A": 3}, {"L1": (1.0, {"A": 2}), "L2": (2.0, {"A": 3})}, keep_lines_whole=True)
    assert greedy(problem).location_ids == ("L2",)


def test_greedy_fails_or_reports_unrouted_when_stock_is_short() -> None:
    stock = {"L1": (1.0, {"A": 1})}
    with pytest.raises(NoFeasiblePlan):
        greedy(order({"A": 2}, stock))
    assert dict(greedy(order({"A": 2}, stock, allow_partial=True)).unrouted) == {"A": 1}


def test_enumeration_returns_smallest_feasible_sets_by_average_distance() -> None:
    """No single location ships A and B; the four feasible pairs average R+S 2, P+S 3.5,
    R+Q 4 and P+Q 5.5 deg. No triple is examined because pairs exist."""
    problem = order(
        {"A": 1, "B": 1},
        {
            "P": (4.0, {"A": 1}),
            "Q": (7.0, {"B": 1}),
            "R": (1.0, {"A": 1}),
            "S": (3.0, {"B": 1}),
            "T": (9.0, {}),
        },
        alternatives=2,
    )
    result = enumerate_routes(problem)
    assert result.size == 2
    assert [set(r) for r in result.routes] == [{"R", "S"}, {"P", "S"}, {"R", "Q"}, {"P", "Q"}]
    assert result.examined == 5 + 10
    assert not result.capped
    plan = enumeration(problem)
    assert set(plan.location_ids) == {"R", "S"}
    assert set(plan.alternatives[0].location_ids) == {"P", "S"}
    assert evaluate(problem, plan) == plan.objective


def test_enumeration_examines_subsets_in_index_order_and_stops_at_its_cap() -> None:
    """Singles first (5), then pairs in index order: with a cap of 7, only (P, Q) and (P, R)."""
    problem = order(
        {"A": 1, "B": 1},
        {
            "P": (4.0, {"A": 1}),
            "Q": (6.0, {"A": 1}),
            "R": (1.0, {"B": 1}),
            "S": (3.0, {"B": 1}),
            "T": (9.0, {}),
        },
    )
    result = enumerate_routes(problem, max_subsets=7)
    assert result.capped
    assert result.examined == 7
    assert result.routes == (("P", "R"),)
    with pytest.raises(NoFeasiblePlan) as raised:
        enumeration(problem, max_subsets=6)
    assert raised.value.reason == "ENUMERATION_CAP_REACHED"


def test_enumeration_stops_at_its_result_cap() -> None:
    problem = order({"A": 1}, {f"L{k}": (float(k), {"A": 1}) for k in range(1, 8)})
    result = enumerate_routes(problem, max_results=3)
    assert result.capped
    assert len(result.routes) == 3
    assert [r[0] for r in result.routes] == ["L1", "L2", "L3"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(problems(max_locations=5, options=False))
def test_enumeration_finds_every_smallest_feasible_set(problem: Problem) -> None:
    ids = [x.id for x in problem.locations]
    demand = [line.quantity for line in problem.lines]

    def feasible(members: tuple[int, ...]) -> bool:
        return all(sum(problem.atf[i, j] for j in members) >= q for i, q in enumerate(demand))

    expected: set[frozenset[str]] = set()
    for size in range(1, len(ids) + 1):
        expected = {
            frozenset(ids[j] for j in c)
            for c in itertools.combinations(range(len(ids)), size)
            if feasible(c)
        }
        if expected:
            break
    result = enumerate_routes(problem)
    assert {frozenset(r) for r in result.routes} == expected
    averages = [sum(problem.distance_km[ids.index(x)] for x in r) / len(r) for r in result.routes]
    assert averages == sorted(averages)
