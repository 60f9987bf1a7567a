"""The wave solve against the brute-force oracle on small random waves, and its baselines
against the rules: stock and capacity are never exceeded and `evaluate` agrees."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import solver.wave
from solver import Line, Location, Objective
from solver.wave import solve
from solver.wave_baselines import greedy_one_by_one, one_by_one
from solver.wave_plan import evaluate
from solver.wave_problem import Capacity, WaveOrder, WaveProblem
from tests.solver import wave_oracle

_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.too_slow],
}
_SKUS = ("A", "B", "C")


@st.composite
def waves(
    draw: st.DrawFn,
    *,
    options: bool = True,
    capacity: bool = True,
    max_orders: int = 3,
    max_lines: int = 2,
    max_quantity: int = 2,
) -> WaveProblem:
    """1-3 orders of 1-2 lines over 1-3 locations with 0-2 units per SKU: small enough for
    the oracle, scarce enough that orders compete. Positions sit on a coarse grid so that
    distances tie."""
    n_orders = draw(st.integers(1, max_orders))
    n_locations = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grid = rng.integers(0, 4, size=(n_locations + n_orders, 2))
    places = [(30.0 + a, -100.0 + b) for a, b in grid.tolist()]
    locations = [
        Location(f"L{j}", *places[j], shipment_cost=float(rng.choice([0.0, 2.0, 5.0])))
        for j in range(n_locations)
    ]
    orders = []
    for k in range(n_orders):
        skus = rng.choice(_SKUS, size=int(rng.integers(1, max_lines + 1)), replace=False)
        lines = tuple(Line(str(s), int(rng.integers(1, max_quantity + 1))) for s in skus)
        orders.append(
            WaveOrder(
                id=f"o{k}",
                lines=lines,
                destination=places[n_locations + k],
                max_shipments=draw(st.sampled_from([None, None, 1, 2])) if options else None,
                allow_partial=draw(st.booleans()) if options else False,
                keep_lines_whole=draw(st.booleans()) if options else False,
                excluded_locations=frozenset(
                    draw(st.sets(st.sampled_from([x.id for x in locations]), max_size=1))
                )
                if options
                else frozenset(),
            )
        )
    stock = {
        (s, x.id): int(rng.integers(0, 3)) for s in _SKUS for x in locations if rng.random() < 0.8
    }
    capacities = {}
    if capacity and draw(st.booleans()):
        for x in locations:
            if rng.random() < 0.6:
                capacities[x.id] = Capacity(
                    orders=int(rng.integers(0, 3)) if rng.random() < 0.7 else None,
                    units=int(rng.integers(0, 4)) if rng.random() < 0.5 else None,
                )
    objective = draw(st.sampled_from([Objective.LEXICOGRAPHIC, Objective.COST]))
    return WaveProblem.build(
        orders=orders,
        locations=locations,
        stock=stock,
        capacity=capacities,
        objective=objective,
        cost_per_km=draw(st.sampled_from([0.0, 0.01])),
    )


@settings(max_examples=250, **_SETTINGS)
@given(waves())
def test_wave_solve_equals_brute_force_on_random_waves(problem: WaveProblem) -> None:
    plan = solve(problem)
    assert plan.proven_optimal
    assert plan.gap is None
    assert plan.objective == wave_oracle.best(problem)
    assert plan.bound == plan.objective
    assert evaluate(problem, plan) == plan.objective


@settings(max_examples=100, **_SETTINGS)
@given(waves(max_orders=6, max_lines=1, max_quantity=1))
def test_wave_solve_equals_brute_force_when_only_some_orders_collide(
    problem: WaveProblem,
) -> None:
    """Six one-unit orders: the colliding orders are often a minority, solved apart."""
    plan = solve(problem)
    assert plan.proven_optimal
    assert plan.objective == wave_oracle.best(problem)
    assert evaluate(problem, plan) == plan.objective


@settings(max_examples=150, **_SETTINGS)
@given(waves())
def test_wave_is_never_worse_than_order_by_order_and_baselines_respect_stock_and_capacity(
    problem: WaveProblem,
) -> None:
    joint = solve(problem)
    exact_in_turn = one_by_one(problem)
    greedy_in_turn = greedy_one_by_one(problem)
    assert evaluate(problem, exact_in_turn) == exact_in_turn.objective
    assert evaluate(problem, greedy_in_turn) == greedy_in_turn.objective
    assert joint.objective <= exact_in_turn.objective
    assert joint.objective <= greedy_in_turn.objective
    assert joint.bound <= joint.objective


@settings(max_examples=100, **_SETTINGS)
@given(waves(options=False, capacity=False))
def test_order_by_order_of_one_order_equals_the_wave_of_one_order(problem: WaveProblem) -> None:
    first = WaveProblem(
        problem.orders[:1],
        problem.locations,
        problem.skus,
        problem.stock,
        objective=problem.objective,
    )
    assert one_by_one(first).objective == solve(first).objective


@settings(max_examples=60, **_SETTINGS)
@given(waves(max_orders=6, max_lines=1, max_quantity=1))
def test_group_search_for_large_waves_gives_feasible_plans_within_the_bound(
    problem: WaveProblem,
) -> None:
    """With the joint MIP ruled out (as on waves too large for it), the group search's plan
    keeps every rule, and the bound (the own optima) stays below the optimum."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(solver.wave, "_EXACT_COLUMNS", -1)
        plan = solve(problem)
    assert evaluate(problem, plan) == plan.objective
    assert plan.bound <= wave_oracle.best(problem) <= plan.objective
