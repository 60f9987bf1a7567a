"""What the peers do, as baselines that return the same `Plan` (so `evaluate` scores them).

- `greedy`: sort the locations nearest first and fill each line on its own from them in that
  order (Saleor, Medusa, Solidus, Magento's distance-priority source selection). With
  keep_lines_whole, each line goes to the first location holding all of it (OFBiz). It ignores
  max_shipments and the objective; nothing couples the lines, so it ships more boxes than needed.
- `enumeration`: Salesforce OM's "find routes with fewest splits" then "rank by average
  distance": location subsets of size 1, 2, 3, ... in candidate (index) order, every feasible
  subset of the smallest size that has one, stopping after `max_subsets` subsets examined or
  `max_results` found (OM: 1,000,000 and 10,000), ranked by the average distance of their
  locations. It ignores allow_partial and the objective.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from solver.plan import NoFeasiblePlan, Plan, Shipment
from solver.problem import Problem
from solver.scoring import score

OM_MAX_SUBSETS = 1_000_000
OM_MAX_RESULTS = 10_000


def _candidates(problem: Problem) -> list[int]:
    excluded = problem.options.excluded_locations
    return [j for j, x in enumerate(problem.locations) if x.id not in excluded]


def _plan_from(
    problem: Problem,
    allocation: dict[int, dict[str, int]],
    unrouted: dict[str, int],
    method: str,
    candidates: int,
    started: float,
) -> Plan:
    used = [j for j, units in allocation.items() if units]
    shipments = tuple(
        Shipment(
            location_id=problem.locations[j].id,
            units=MappingProxyType(allocation[j]),
            distance_km=float(problem.distance_km[j]),
        )
        for j in used
    )
    return Plan(
        shipments=shipments,
        unrouted=MappingProxyType(unrouted),
        objective=score(problem, used, sum(unrouted.values())),
        proven_optimal=False,
        gap=None,
        method=method,
        candidates=candidates,
        solve_seconds=time.perf_counter() - started,
    )


def _fill(problem: Problem, order: list[int]) -> tuple[dict[int, dict[str, int]], dict[str, int]]:
    """Each line from the locations in `order`, first come first served."""
    allocation: dict[int, dict[str, int]] = {j: {} for j in order}
    unrouted: dict[str, int] = {}
    whole = problem.options.keep_lines_whole
    for i, line in enumerate(problem.lines):
        remaining = line.quantity
        for j in order:
            available = int(problem.atf[i, j])
            if whole:
                if available >= remaining:
                    allocation[j][line.sku] = remaining
                    remaining = 0
                    break
                continue
            take = min(remaining, available)
            if take:
                allocation[j][line.sku] = take
                remaining -= take
                if not remaining:
                    break
        if remaining:
            unrouted[line.sku] = remaining
    return allocation, unrouted


def nearest_first(problem: Problem) -> np.ndarray:
    """Candidate positions sorted nearest first; ties by priority, then location id."""
    candidates = np.asarray(_candidates(problem), dtype=np.int64)
    locations = problem.locations
    ids = np.array([locations[j].id for j in candidates], dtype=str)
    priority = np.array([locations[j].priority for j in candidates], dtype=np.int64)
    order = np.lexsort((ids, priority, problem.distance_km[candidates]))
    return candidates[order]


def greedy(problem: Problem) -> Plan:
    """Per-line greedy fill from the nearest location outwards (ties: priority, then id).

    Raises `NoFeasiblePlan` (INSUFFICIENT_STOCK) when it leaves units unrouted without
    allow_partial.
    """
    started = time.perf_counter()
    order = nearest_first(problem)
    demand = problem.quantities[:, None]
    stock = problem.atf[:, order]
    if problem.options.keep_lines_whole:
        holds = stock >= demand
        first = np.argmax(holds, axis=1)
        take = np.zeros_like(stock)
        lines = np.flatnonzero(holds.any(axis=1))
        take[lines, first[lines]] = demand[lines, 0]
    else:
        before = np.cumsum(stock, axis=1) - stock
        take = np.clip(demand - before, 0, stock)
    skus = [line.sku for line in problem.lines]
    allocation: dict[int, dict[str, int]] = {}
    for k in np.flatnonzero(take.any(axis=0)):
        rows = np.flatnonzero(take[:, k])
        allocation[int(order[k])] = {skus[i]: int(take[i, k]) for i in rows}
    short = demand[:, 0] - take.sum(axis=1)
    unrouted = {skus[i]: int(short[i]) for i in np.flatnonzero(short)}
    if unrouted and not problem.options.allow_partial:
        raise NoFeasiblePlan(
            "INSUFFICIENT_STOCK", "greedy fill leaves units unrouted", shortfall=unrouted
        )
    return _plan_from(problem, allocation, unrouted, "greedy", len(order), started)


@dataclass(frozen=True)
class Enumeration:
    """What OM-style enumeration found: feasible sets of the smallest size, best first."""

    routes: tuple[tuple[str, ...], ...]
    """Location id sets in rank order (average distance, then the order they were found)."""
    size: int
    examined: int
    capped: bool
    """True when it stopped at max_subsets or max_results rather than finishing the size."""


def enumerate_routes(
    problem: Problem,
    *,
    max_subsets: int = OM_MAX_SUBSETS,
    max_results: int = OM_MAX_RESULTS,
) -> Enumeration:
    """Subsets by size in index order, one at a time, as OM describes its search."""
    candidates = _candidates(problem)
    demand = [line.quantity for line in problem.lines]
    whole = problem.options.keep_lines_whole
    stock = [[int(problem.atf[i, j]) for i in range(len(demand))] for j in candidates]
    if whole:  # with whole lines only a location holding all of a line counts for it
        stock = [[q if s >= q else 0 for s, q in zip(row, demand, strict=True)] for row in stock]
    lines = range(len(demand))
    limit = problem.options.max_shipments or len(candidates)
    examined = 0
    found: list[tuple[int, ...]] = []
    size = 0
    capped = False
    for size in range(1, min(limit, len(candidates)) + 1):
        for combination in itertools.combinations(range(len(candidates)), size):
            if examined >= max_subsets:
                capped = True
                break
            examined += 1
            rows = [stock[k] for k in combination]
            if all(sum(row[i] for row in rows) >= demand[i] for i in lines):
                found.append(combination)
                if len(found) >= max_results:
                    capped = True
                    break
        if found or capped:
            break
    distance = problem.distance_km
    ranked = sorted(
        found, key=lambda c: sum(float(distance[candidates[k]]) for k in c) / len(c)
    )  # stable: ties keep the order they were found in
    routes = tuple(tuple(problem.locations[candidates[k]].id for k in c) for c in ranked)
    return Enumeration(routes, size if found else 0, examined, capped)


def enumeration(
    problem: Problem,
    *,
    max_subsets: int = OM_MAX_SUBSETS,
    max_results: int = OM_MAX_RESULTS,
) -> Plan:
    """OM-style routing: the top-ranked route of `enumerate_routes`, filled nearest first;
    `alternatives` holds the next ranked routes (up to options.alternatives - 1).

    Raises `NoFeasiblePlan`: ENUMERATION_CAP_REACHED when it stopped at its cap with nothing
    found, else INSUFFICIENT_STOCK or MAX_SHIPMENTS_EXCEEDED.
    """
    started = time.perf_counter()
    result = enumerate_routes(problem, max_subsets=max_subsets, max_results=max_results)
    if not result.routes:
        if result.capped:
            raise NoFeasiblePlan(
                "ENUMERATION_CAP_REACHED", f"no route within {result.examined} subsets examined"
            )
        everything = _fill(problem, _candidates(problem))[1]
        if everything:
            raise NoFeasiblePlan(
                "INSUFFICIENT_STOCK", "the candidates cannot ship the order", shortfall=everything
            )
        raise NoFeasiblePlan("MAX_SHIPMENTS_EXCEEDED", "no route within max_shipments")
    index = {x.id: j for j, x in enumerate(problem.locations)}
    plans = []
    for route in result.routes[: problem.options.alternatives]:
        order = sorted((index[x] for x in route), key=lambda j: problem.distance_km[j])
        allocation, unrouted = _fill(problem, order)
        plans.append(
            _plan_from(
                problem, allocation, unrouted, "enumeration", len(_candidates(problem)), started
            )
        )
    first = plans[0]
    return Plan(
        shipments=first.shipments,
        unrouted=first.unrouted,
        objective=first.objective,
        proven_optimal=False,
        gap=None,
        method="enumeration",
        candidates=first.candidates,
        solve_seconds=time.perf_counter() - started,
        alternatives=tuple(plans[1:]),
    )
