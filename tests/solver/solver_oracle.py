"""Brute-force oracle: every subset of the candidate locations, scored from first principles.

Independent of the solver's reasoning: for each subset S it computes how many units S can ship
(split lines: min(q_i, sum of ATF); whole lines: the single best location's min(q_i, ATF)), so
its score follows from the problem statement alone. A plan's shipping set is the set of
locations shipping at least one unit; the best plan over all subsets is the oracle's optimum,
and the ranked *irredundant* subsets (every location needed: dropping any one leaves more
units unrouted) are the alternatives a solver should list.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from solver import Objective, Problem, Score, geo


@dataclass(frozen=True)
class Ranked:
    score: Score
    location_ids: frozenset[str]


def _routable(problem: Problem, members: tuple[int, ...]) -> list[int]:
    routable = []
    for i, line in enumerate(problem.lines):
        if problem.options.keep_lines_whole:
            best = max((min(int(problem.atf[i, j]), line.quantity) for j in members), default=0)
            routable.append(best)
        else:
            total = sum(int(problem.atf[i, j]) for j in members)
            routable.append(min(total, line.quantity))
    return routable


def _score(problem: Problem, members: tuple[int, ...], km: list[float]) -> Score:
    unrouted = sum(line.quantity for line in problem.lines) - sum(_routable(problem, members))
    distance_m = sum(round(km[j] * 1000) for j in members)
    cost = 0
    if problem.options.objective is Objective.COST:
        per_km = problem.options.cost_per_km
        cost = sum(
            round((problem.locations[j].shipment_cost + per_km * km[j]) * 1000) for j in members
        )
    return Score(unrouted, cost, len(members), distance_m)


def _kilometres(problem: Problem) -> list[float]:
    return [
        geo.distance_km(x.latitude, x.longitude, *problem.destination) for x in problem.locations
    ]


def ranking(problem: Problem) -> list[Ranked]:
    """Every feasible irredundant non-empty location set, best first (ties in any order)."""
    options = problem.options
    candidates = [
        j for j, x in enumerate(problem.locations) if x.id not in options.excluded_locations
    ]
    limit = options.max_shipments or len(candidates)
    km = _kilometres(problem)
    scores: dict[tuple[int, ...], Score] = {}
    for size in range(len(candidates) + 1):
        for members in itertools.combinations(candidates, size):
            scores[members] = _score(problem, members, km)
    ranked = []
    for members, score in scores.items():
        if not members or len(members) > limit:
            continue
        if score.unrouted_units and not options.allow_partial:
            continue
        needed = all(
            scores[tuple(x for x in members if x != j)].unrouted_units > score.unrouted_units
            for j in members
        )
        if needed:
            ids = frozenset(problem.locations[j].id for j in members)
            ranked.append(Ranked(score, ids))
    ranked.sort(key=lambda r: r.score)
    return ranked


def best_score(problem: Problem, ranked: list[Ranked] | None = None) -> Score | None:
    """The optimum, or None when no plan exists (only without allow_partial)."""
    ranked = ranking(problem) if ranked is None else ranked
    if ranked:
        return ranked[0].score
    if problem.options.allow_partial:
        return _score(problem, (), [])  # nothing can be routed: the empty plan
    return None
