"""solve against the brute-force oracle on thousands of small random problems."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from solver import NoFeasiblePlan, Objective, Plan, Problem, SolveParams, evaluate, solve
from tests.solver import solver_oracle
from tests.solver.strategies import problems

_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.too_slow],
}


def _check_against_oracle(problem: Problem, params: SolveParams | None = None) -> Plan | None:
    ranked = solver_oracle.ranking(problem)
    best = solver_oracle.best_score(problem, ranked)
    if best is None:
        with pytest.raises(NoFeasiblePlan):
            solve(problem, params)
        return None
    plan = solve(problem, params)
    assert plan.proven_optimal
    assert plan.objective == best
    listed = [plan, *plan.alternatives]
    for each in listed:
        assert evaluate(problem, each) == each.objective
    if plan.shipments:
        expected = ranked[: problem.options.alternatives]
        assert [p.objective for p in listed] == [r.score for r in expected]
        irredundant = {r.location_ids for r in ranked}
        sets = [frozenset(p.location_ids) for p in listed]
        assert all(s in irredundant for s in sets)
        assert len(set(sets)) == len(sets)
    else:
        assert not plan.alternatives
    return plan


# The oracle's instances are small enough for the exhaustive path, so the tests of the search
# and the MIP switch it off (exhaustive_up_to=0) to exercise the paths large orders take.
_NO_EXHAUSTIVE = SolveParams(exhaustive_up_to=0)


@settings(max_examples=1500, **_SETTINGS)
@given(problems())
def test_search_and_mip_equal_brute_force_on_random_problems(problem: Problem) -> None:
    _check_against_oracle(problem, _NO_EXHAUSTIVE)


@settings(max_examples=300, **_SETTINGS)
@given(problems(max_lines=5, max_locations=8, scattered=True))
def test_search_and_mip_equal_brute_force_when_many_locations_are_needed(
    problem: Problem,
) -> None:
    _check_against_oracle(problem, _NO_EXHAUSTIVE)


@settings(max_examples=300, **_SETTINGS)
@given(problems())
def test_mip_alone_equals_brute_force(problem: Problem) -> None:
    _check_against_oracle(problem, SolveParams(search_up_to=0, exhaustive_up_to=0))


@pytest.mark.parametrize("backend", ["cpsat", "scip"])
@settings(max_examples=60, **_SETTINGS)
@given(problem=problems(objectives=(Objective.LEXICOGRAPHIC,)))
def test_other_mip_backends_equal_brute_force(backend: str, problem: Problem) -> None:
    _check_against_oracle(problem, SolveParams(backend=backend, search_up_to=0, exhaustive_up_to=0))


@settings(max_examples=400, **_SETTINGS)
@given(problems(max_lines=4, max_locations=8))
def test_default_solve_equals_brute_force(problem: Problem) -> None:
    _check_against_oracle(problem)
