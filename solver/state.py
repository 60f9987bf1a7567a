"""What one solve works with: its settings, its candidates and cover target, its clock, and the
checks and MIP call that every strategy (`solver.strategies`) shares.

A strategy reads a `SolveState` and returns an `Answer`: a set of candidates (core positions)
and how far it is proven.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from solver._core import Core, Target
from solver.heuristics import greedy_cover
from solver.model import BACKENDS, DEFAULT_BACKEND, MipData, MipResult, Stage, solve_stage
from solver.problem import IntArray, Problem
from solver.search import Found, Keys, SearchTimeout, best_set

_BUILD_SECONDS_PER_NONZERO = {"highs": 1e-5, "scip": 1e-5, "cpsat": 4e-6}
"""Time a backend takes to build a stage's model, per coverage nonzero (before any solving)."""
_SEARCH_WORK_PER_SECOND = 600_000
_MIN_SEARCH_WORK = 1_500_000


@dataclass(frozen=True)
class SolveParams:
    """How to solve (what to solve is the `Problem`). The defaults are the measured best."""

    backend: str = DEFAULT_BACKEND
    """MIP solver for the stages the exact search does not settle: cpsat | scip | highs."""
    threads: int = 1
    """Solver threads per solve (the server runs solves in parallel on its own pool)."""
    search_up_to: int = 6
    """Largest location set the exact search tries before the MIP (0: MIP only)."""
    search_work: int | None = None
    """Work budget of the search for each size above three, in candidate columns handled
    (deterministic, unlike time). None: 600,000 per second of the problem's time limit, at
    least 1,500,000. A larger budget lets the search settle sizes the MIP is slow to prove."""
    reduce: bool = True
    """Drop candidates the incumbent rules out before the MIP."""
    exhaustive_up_to: int = 12
    """With at most this many candidates, score all 2^m subsets at once (0: never)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {self.backend!r}")
        if self.threads < 1 or not 0 <= self.search_up_to <= 6:
            raise ValueError("threads must be >= 1 and search_up_to in 0..6")
        if self.search_work is not None and self.search_work < 0:
            raise ValueError("search_work must be >= 0 (or None: from the time limit)")
        if not 0 <= self.exhaustive_up_to <= 16:
            raise ValueError("exhaustive_up_to must be in 0..16 (2^m subsets are scored)")


@dataclass
class Answer:
    """A chosen set of candidates (core positions) for one plan, and how it was found."""

    members: tuple[int, ...]
    proven: bool
    gap: float | None
    method: str
    candidates: int


class OutOfTime(Exception):
    """The time limit ran out in the exact search; the solve falls back to what it has."""


class SolveState:
    """One solve: the problem's candidates in solver order (`core`), the cover target every best
    set meets, the deadline, and the settings."""

    def __init__(self, problem: Problem, params: SolveParams, started: float) -> None:
        self.problem = problem
        self.params = params
        self.core = Core(problem)
        self.deadline = started + float(problem.options.time_limit)
        self.target: Target = self.core.target()
        self.best_unrouted = self.core.best_unrouted()
        self.distance_keys = Keys(primary=self.core.distance, secondary=self.core.rank)

    @property
    def mip_method(self) -> str:
        """The `Plan.method` of an answer the MIP settled."""
        return f"mip-{self.params.backend}"

    def remaining(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - time.perf_counter()

    def search_work(self) -> int:
        """The exact search's work budget for each size above three."""
        if self.params.search_work is not None:
            return self.params.search_work
        limit = float(self.problem.options.time_limit)
        return max(_MIN_SEARCH_WORK, int(_SEARCH_WORK_PER_SECOND * limit))

    # -- sets ---------------------------------------------------------------------------------

    def allowed(self, members: tuple[int, ...] | list[int], cuts: list[frozenset[int]]) -> bool:
        """The set contains none of the earlier plans' sets (the no-good cuts)."""
        chosen = set(members)
        return not any(cut <= chosen for cut in cuts)

    def eligible(self, members: tuple[int, ...] | list[int], cuts: list[frozenset[int]]) -> bool:
        """`allowed`, and no larger than max_shipments."""
        limit = self.core.max_shipments
        return self.allowed(members, cuts) and (limit is None or len(members) <= limit)

    def by_distance(self, members: tuple[int, ...] | list[int]) -> Found:
        """The set with its distance keys (metres, then rank sum), as the search reports it."""
        core = self.core
        return Found(
            int(core.distance[list(members)].sum()),
            int(core.rank[list(members)].sum()),
            tuple(sorted(members)),
        )

    def distance_weights(self, cand: IntArray, size: int) -> IntArray:
        """Stage D's objective weights d_l * W + r_l, W = size * rank_span (solver.model)."""
        core = self.core
        scale = size * core.rank_span
        return core.distance[cand] * scale + core.rank[cand]

    def greedy_incumbent(self, cuts: list[frozenset[int]]) -> list[int] | None:
        """The greedy cover, if the cuts and max_shipments allow it."""
        greedy = greedy_cover(self.target)
        return greedy if greedy is not None and self.eligible(greedy, cuts) else None

    # -- the exact search and the MIP ----------------------------------------------------------

    def search(self, size: int, cuts: list[frozenset[int]], keys: Keys) -> Found | None:
        """The best allowed covering set of exactly `size` candidates by `keys`, or None."""
        try:
            return best_set(self.target, keys, size, cuts=cuts, deadline=self.deadline)
        except SearchTimeout as stop:
            raise OutOfTime from stop

    def target_data(self, cand: IntArray) -> MipData:
        """The cover target over the candidates `cand`, as a stage's data."""
        target = self.target
        return MipData(cand=cand, demand=target.demand, coverage=target.coverage[:, cand])

    def mip_stage(self, data: MipData, stage: Stage) -> MipResult:
        """Solve one stage within the time left, or leave the incumbent standing."""
        # A stage is started only with time to build its model and as long again to solve it
        # (a MIP solver's start-up runs to its end whatever the limit); otherwise the incumbent
        # stands. A started stage stops building at the deadline.
        build = _BUILD_SECONDS_PER_NONZERO[self.params.backend] * int(
            np.count_nonzero(data.coverage)
        )
        if 2 * build > self.remaining():
            return MipResult(None, None, -math.inf, False, False, self.params.backend)
        result = solve_stage(
            data,
            stage,
            backend=self.params.backend,
            time_limit=self.remaining(),
            threads=self.params.threads,
        )
        if result.infeasible and stage.hint and self.params.backend != "cpsat":
            # The hint satisfies the stage, so "infeasible" is a floating-point verdict:
            # CP-SAT's integers settle it.
            result = solve_stage(
                data,
                stage,
                backend="cpsat",
                time_limit=max(self.remaining(), 0.001),
                threads=self.params.threads,
            )
        return result
