"""The solver's working arrays for one problem, and the set functions every path shares.

Everything the search and the MIP see is a *set* of candidate locations: by DESIGN.md section 5,
without keep_lines_whole a set S can ship min(q_i, sum_{l in S} c_il) units of line i, where
c_il = min(a_il, q_i), so the allocation y can be filled in after S is chosen. With
keep_lines_whole a line ships from one location, so S can ship max_{l in S} c_il of it. Both
reduce to one shape, a "cover target" (demand q', coverage c'), in which S is feasible exactly
when sum_{l in S} c'_il >= q'_i for every line; `Core.target` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solver.problem import IntArray, Objective, Problem
from solver.scoring import location_cost_milli, location_distance_m


@dataclass(frozen=True)
class Target:
    """A cover target: find sets S with coverage[:, S].sum(1) >= demand.

    Columns are the core's candidates (same order); rows are the lines still to cover.
    """

    demand: IntArray
    coverage: IntArray

    @property
    def useful(self) -> IntArray:
        """Candidates that cover some unit of the target."""
        return np.flatnonzero(self.coverage.any(axis=0))

    def covers(self, members: tuple[int, ...] | list[int]) -> bool:
        """Whether the set covers the target."""
        return bool(np.all(self.coverage[:, list(members)].sum(axis=1) >= self.demand))


class Core:
    """Candidates in solver order (cheapest key first), with capped coverage and keys.

    Order: by cost (cost objective only), then distance in metres, then rank, where rank orders
    all of the problem's locations by (priority, location id): the deterministic tie-break.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        options = problem.options
        self.demand: IntArray = problem.quantities
        excluded = options.excluded_locations
        locations = problem.locations
        ids = np.array([x.id for x in locations], dtype=str)
        priority = np.array([x.priority for x in locations], dtype=np.int64)
        by_priority = np.lexsort((ids, priority))
        rank = np.empty(len(ids), dtype=np.int64)
        rank[by_priority] = np.arange(len(ids), dtype=np.int64)
        capped = np.minimum(problem.atf, self.demand[:, None])
        allowed = np.ones(len(ids), dtype=bool)
        if excluded:
            allowed &= ~np.isin(ids, list(excluded))
        allowed &= capped.any(axis=0)
        distance = location_distance_m(problem)
        cost = location_cost_milli(problem)
        keep = np.flatnonzero(allowed)
        order = np.lexsort((rank[keep], distance[keep], cost[keep]))
        self.index: IntArray = keep[order]
        """Core position -> position in problem.locations."""
        self.coverage: IntArray = np.ascontiguousarray(capped[:, self.index])
        self.distance: IntArray = distance[self.index]
        self.cost: IntArray = cost[self.index]
        self.rank: IntArray = rank[self.index]
        self.rank_span = max(len(ids), 1)
        """Ranks are < rank_span; a set of s locations has rank sum < s * rank_span."""
        self.whole = options.keep_lines_whole
        self.partial = options.allow_partial
        self.max_shipments = options.max_shipments
        self.cost_objective = options.objective is Objective.COST
        self.size = len(self.index)
        self._best_unrouted: int | None = None

    # -- set functions -------------------------------------------------------------------------

    def routable(self, members: tuple[int, ...] | list[int] | IntArray) -> IntArray:
        """Units of each line the set can ship."""
        columns = self.coverage[:, list(members)] if len(members) else None
        if columns is None:
            return np.zeros_like(self.demand)
        if self.whole:
            return np.asarray(columns.max(axis=1), dtype=np.int64)
        return np.asarray(np.minimum(columns.sum(axis=1), self.demand), dtype=np.int64)

    def unrouted(self, members: tuple[int, ...] | list[int] | IntArray) -> int:
        """Units the set must leave unrouted (0 means it ships the whole order)."""
        return int((self.demand - self.routable(members)).sum())

    def best_unrouted(self) -> int:
        """The fewest unrouted units any set can reach (all candidates together)."""
        if self._best_unrouted is None:
            self._best_unrouted = self.unrouted(np.arange(self.size))
        return self._best_unrouted

    def shortfall(self) -> dict[str, int]:
        """SKU -> units no set can route (what INSUFFICIENT_STOCK reports)."""
        missing = self.demand - self.routable(np.arange(self.size))
        lines = self.problem.lines
        return {lines[i].sku: int(missing[i]) for i in np.flatnonzero(missing)}

    def target(self) -> Target:
        """The cover target of the sets that reach `best_unrouted` (DESIGN.md 5, (1)/(4))."""
        everything = np.arange(self.size)
        if self.whole:
            reach = self.coverage.max(axis=1) if self.size else np.zeros_like(self.demand)
            coverage = np.where(self.coverage >= reach[:, None], reach[:, None], 0)
        else:
            reach = self.routable(everything)
            coverage = np.minimum(self.coverage, reach[:, None])
        rows = np.flatnonzero(reach > 0)
        return Target(
            demand=np.ascontiguousarray(reach[rows]),
            coverage=np.ascontiguousarray(coverage[rows]),
        )

    def prune(self, members: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        """Drop members the set does not need, farthest key first (keeps the unrouted units)."""
        kept = sorted(members)
        base = self.unrouted(kept)
        for member in sorted(kept, reverse=True):
            trial = [x for x in kept if x != member]
            if self.unrouted(trial) <= base:
                kept = trial
        return tuple(kept)

    def key(self, members: tuple[int, ...] | list[int]) -> tuple[int, int, int, int, int]:
        """(unrouted, cost, shipments, distance, rank sum): the full order on sets."""
        chosen = list(members)
        return (
            self.unrouted(chosen),
            int(self.cost[chosen].sum()) if self.cost_objective else 0,
            len(chosen),
            int(self.distance[chosen].sum()),
            int(self.rank[chosen].sum()),
        )
