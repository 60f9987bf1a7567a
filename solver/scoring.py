"""What a plan scores: each location's distance and shipment cost, and the `Score` of a set.

Computed in this one place, so the solver's keys, `evaluate` and the baselines agree to the metre
and the milli-unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from solver.problem import IntArray, Objective, Problem


class Score(NamedTuple):
    """A plan's objective, compared as a tuple: smaller is better.

    `cost` is the total cost in milli-currency units under the cost objective and 0 under the
    lexicographic one, so the same tuple order is (unrouted, shipments, distance) there and
    (unrouted, cost, shipments, distance) under the cost objective. Distances are whole metres.
    """

    unrouted_units: int
    cost: int
    shipments: int
    distance_m: int


def location_distance_m(problem: Problem) -> IntArray:
    """Distance from each location to the destination in whole metres (what the solver sums)."""
    return np.rint(problem.distance_km * 1000.0).astype(np.int64)


def location_cost_milli(problem: Problem) -> IntArray:
    """Cost of a shipment from each location, milli-currency units; 0s if the objective is not
    cost: round(1000 * (shipment_cost + cost_per_km * km))."""
    if problem.options.objective is not Objective.COST:
        return np.zeros(len(problem.locations), dtype=np.int64)
    fixed = np.array([x.shipment_cost for x in problem.locations], dtype=np.float64)
    per_km = float(problem.options.cost_per_km)
    return np.rint((fixed + per_km * problem.distance_km) * 1000.0).astype(np.int64)


def score(problem: Problem, shipping: Sequence[int], unrouted_units: int) -> Score:
    """The score of a plan in which the locations at positions `shipping` (in
    problem.locations) each ship once and `unrouted_units` units stay unrouted."""
    used = np.asarray(shipping, dtype=np.int64)
    return Score(
        unrouted_units=unrouted_units,
        cost=int(location_cost_milli(problem)[used].sum()),
        shipments=len(used),
        distance_m=int(location_distance_m(problem)[used].sum()),
    )
