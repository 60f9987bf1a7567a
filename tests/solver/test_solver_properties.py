"""Properties of the library as a whole: determinism, thread safety, purity, time limits,
and `evaluate` rejecting plans that break the problem's rules."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

import solver
from solver import (
    InfeasiblePlan,
    Line,
    Location,
    Options,
    Plan,
    Problem,
    Shipment,
    SolveParams,
    evaluate,
    solve,
)
from solver.baselines import greedy
from solver.model import MipData, MipResult, Stage
from tests.solver.conftest import metres, order


def _random_problem(seed: int, lines: int = 12, locations: int = 150, **options: object) -> Problem:
    """Sparse stock over a small region; every fifth location duplicates another's position,
    so equal distances (and the tie-break) occur."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(35, 42, locations)
    lon = rng.uniform(-90, -75, locations)
    lat[::5], lon[::5] = lat[1::5][: len(lat[::5])], lon[1::5][: len(lon[::5])]
    atf = np.where(rng.random((lines, locations)) < 0.3, rng.integers(0, 6, (lines, locations)), 0)
    demand = np.minimum(rng.integers(1, 5, lines), np.maximum(atf.sum(axis=1), 1))
    atf[:, 0] = np.maximum(atf[:, 0], demand)  # one far-off location holds everything
    lat[0], lon[0] = 25.0, -120.0
    return Problem(
        tuple(Line(f"sku-{i}", int(q)) for i, q in enumerate(demand)),
        tuple(
            Location(f"loc-{j:03d}", float(lat[j]), float(lon[j]), priority=int(rng.integers(0, 3)))
            for j in range(locations)
        ),
        atf,
        (38.5, -82.0),
        Options(**options),  # type: ignore[arg-type]
    )


def test_same_problem_gives_the_same_plan() -> None:
    for seed in range(6):
        problem = _random_problem(seed, alternatives=3)
        assert solve(problem) == solve(problem)


def test_concurrent_solves_match_sequential_ones() -> None:
    problems = [_random_problem(seed, alternatives=2) for seed in range(8)]
    sequential = [solve(p) for p in problems]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(solve, problems + problems))
    assert concurrent == sequential + sequential


def test_concurrent_mip_solves_match_sequential_ones() -> None:
    params = SolveParams(search_up_to=0)  # every answer from the MIP backend
    problems = [_random_problem(seed, lines=8, locations=40, alternatives=2) for seed in range(6)]
    sequential = [solve(p, params) for p in problems]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda p: solve(p, params), problems + problems))
    assert concurrent == sequential + sequential
    assert all(p.method.startswith("mip-") for p in sequential)


def test_plans_are_never_worse_than_greedy() -> None:
    for seed in range(6):
        problem = _random_problem(seed)
        assert solve(problem).objective <= greedy(problem).objective


def test_out_of_time_returns_a_feasible_plan_with_its_gap() -> None:
    problem = _random_problem(3, lines=20, time_limit=1e-6)
    plan = solve(problem)
    assert not plan.proven_optimal
    assert plan.gap is not None
    assert plan.gap > 0
    assert evaluate(problem, plan) == plan.objective
    assert plan.objective <= greedy(problem).objective


def test_generous_time_limit_proves_optimality() -> None:
    plan = solve(_random_problem(3, lines=20, time_limit=60))
    assert plan.proven_optimal
    assert plan.gap is None


_FORBIDDEN = ("grpc", "google.protobuf", "omniroute", "server")


def test_solver_sources_import_no_transport_or_server_code() -> None:
    for path in Path(solver.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(_FORBIDDEN), f"{path.name} imports {name}"


def test_importing_and_solving_loads_no_grpc_protobuf_or_server_in_a_fresh_interpreter() -> None:
    code = f"""
import sys
import solver, solver.baselines, solver.geo, solver.model, solver.search, solver.heuristics
loaded = sorted(m for m in sys.modules if m.startswith({_FORBIDDEN!r}))
assert not loaded, loaded
problem = solver.Problem.build(
    lines=[(s, 1) for s in "ABCDEFG"],
    locations=[
        {{"id": s, "latitude": 0.0, "longitude": float(k)}} for k, s in enumerate("ABCDEFG")
    ],
    atf={{(s, s): 1 for s in "ABCDEFG"}},
    destination=(0.0, 0.0),
)
plan = solver.solve(problem, solver.SolveParams(exhaustive_up_to=0))
assert plan.method.startswith("mip-")  # loads OR-Tools (and its protobuf)
loaded = sorted(m for m in sys.modules if m.startswith(("grpc", "omniroute", "server")))
assert not loaded, loaded
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(solver.__file__).parents[1])


def _plan(*shipments: tuple[str, dict[str, int]], unrouted: dict[str, int] | None = None) -> Plan:
    template = solve(order({"A": 2, "B": 1}, {"L1": (1.0, {"A": 2, "B": 1})}))
    return dataclasses.replace(
        template,
        shipments=tuple(Shipment(x, MappingProxyType(u), 0.0) for x, u in shipments),
        unrouted=MappingProxyType(unrouted or {}),
    )


@pytest.mark.parametrize(
    ("plan", "reason", "options"),
    [
        (_plan(("L9", {"A": 2, "B": 1})), "UNKNOWN_LOCATION", {}),
        (_plan(("L1", {"A": 2, "B": 1})), "EXCLUDED_LOCATION", {"excluded_locations": {"L1"}}),
        (_plan(("L1", {"A": 1}), ("L1", {"A": 1, "B": 1})), "DUPLICATE_SHIPMENT", {}),
        (_plan(("L1", {}), ("L2", {"A": 2, "B": 1})), "EMPTY_SHIPMENT", {}),
        (_plan(("L1", {"A": 2, "Z": 1})), "UNKNOWN_SKU", {}),
        (_plan(("L1", {"A": 2, "B": 0})), "INVALID_UNITS", {}),
        (_plan(("L2", {"A": 2, "B": 1})), "OVER_ATF", {}),
        (_plan(("L1", {"A": 1, "B": 1})), "QUANTITY_MISMATCH", {}),
        (_plan(("L1", {"A": 1, "B": 1}), unrouted={"A": 1}), "PARTIAL_NOT_ALLOWED", {}),
        (
            _plan(("L1", {"A": 1, "B": 1}), ("L3", {"A": 1})),
            "LINE_SPLIT",
            {"keep_lines_whole": True},
        ),
        (
            _plan(("L1", {"A": 1, "B": 1}), ("L3", {"A": 1})),
            "TOO_MANY_SHIPMENTS",
            {"max_shipments": 1},
        ),
    ],
)
def test_evaluate_rejects_a_plan_that_breaks_a_rule(
    plan: Plan, reason: str, options: dict[str, object]
) -> None:
    problem = order(
        {"A": 2, "B": 1},
        {"L1": (1.0, {"A": 2, "B": 1}), "L2": (2.0, {"A": 1}), "L3": (3.0, {"A": 1})},
        **options,
    )
    with pytest.raises(InfeasiblePlan) as raised:
        evaluate(problem, plan)
    assert raised.value.reason == reason


def test_a_floating_point_infeasible_verdict_is_settled_by_cp_sat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HiGHS once called a stage infeasible that its own hint satisfied (objective bound at
    5e9); such a verdict is re-solved in CP-SAT's integer arithmetic instead of trusted."""
    import solver.state

    real = solver.state.solve_stage

    def doubting(data: MipData, stage: Stage, **kwargs: Any) -> MipResult:
        result = real(data, stage, **kwargs)
        if kwargs["backend"] != "cpsat" and stage.hint:
            return dataclasses.replace(
                result, members=None, objective=None, optimal=False, infeasible=True
            )
        return result

    monkeypatch.setattr(solver.state, "solve_stage", doubting)
    stock = {f"near{k}": (float(k), {sku: 1}) for k, sku in enumerate("ABCDEFG", start=1)}
    stock |= {f"far{k}": (10.0 + k, {sku: 1}) for k, sku in enumerate("ABCDEFG", start=1)}
    plan = solve(order(dict.fromkeys("ABCDEFG", 1), stock), SolveParams(exhaustive_up_to=0))
    assert plan.proven_optimal
    assert plan.objective.distance_m == sum(metres(k) for k in range(1, 8))
