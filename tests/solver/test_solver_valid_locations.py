"""ValidLocations: candidates checked once, then handed to many problems as subsets. Each such
problem must be the one the same plain locations make, and bad candidates fail as in Problem."""

from __future__ import annotations

import numpy as np
import pytest

import solver
from solver.problem import ValidLocations
from tests.solver.conftest import at

CANDIDATES = [at(f"loc-{j}", 0.1 * j, shipment_cost=j, priority=j % 3) for j in range(8)]


def test_a_problem_over_a_subset_equals_the_problem_over_the_same_plain_locations() -> None:
    columns = np.array([1, 4, 6], dtype=np.intp)
    atf = np.array([[2, 1, 3]], dtype=np.int64)
    lines, destination = (solver.Line("sku", 3),), (0.0, 0.35)
    trusted = solver.Problem(lines, ValidLocations(CANDIDATES).take(columns), atf, destination)
    plain = solver.Problem(lines, tuple(CANDIDATES[j] for j in columns), atf, destination)
    assert trusted.locations == plain.locations
    assert np.array_equal(trusted.distance_km, plain.distance_km)
    assert solver.solve(trusted).objective == solver.solve(plain).objective


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (at("loc-0", 0.0), "DUPLICATE_LOCATION_ID"),
        (at("far", 0.0, shipment_cost=1e10), "INVALID_SHIPMENT_COST"),
        (solver.Location("nowhere", 91.0, 0.0), "INVALID_COORDINATES"),
    ],
)
def test_bad_candidates_are_refused_with_the_reason_a_problem_gives(
    bad: solver.Location, reason: str
) -> None:
    with pytest.raises(solver.InvalidProblem) as refused:
        ValidLocations([*CANDIDATES, bad])
    with pytest.raises(solver.InvalidProblem) as in_problem:
        solver.Problem((solver.Line("sku", 1),), (*CANDIDATES, bad), np.zeros((1, 9)), (0.0, 0.0))
    assert refused.value.reason == in_problem.value.reason == reason


def test_a_subset_must_keep_the_candidates_order() -> None:
    with pytest.raises(ValueError, match="increase"):
        ValidLocations(CANDIDATES).take(np.array([3, 3], dtype=np.intp))
