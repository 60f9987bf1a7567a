"""`solve(problem, params) -> Plan`: the staged exact method, cheapest proof first.

For each plan (the best, then each alternative, with the earlier sets as no-good cuts):
  0. Few candidates (<= 12): every subset's full key at once (`best_exhaustive`), after a
     one-location check. Exact for every option.
  1. Unrouted units U: the fewest any set reaches is what all candidates together reach
     (`Core.best_unrouted`); the sets reaching it are the covers of `Core.target()`. Only
     when max_shipments or the cuts rule all of those out does the MIP solve stage U itself
     (with u variables, `best_general`).
  2. Lexicographic: for s = 1, 2, 3, ... the exact search (`solver.search`) returns the best
     covering set of exactly s locations, or proves there is none; the first s with a set is
     the fewest shipments and its set is the nearest (ties: rank sum). One to three locations
     are searched to the end; four to six under a work budget (`SolveParams.search_work`).
     No solver call.
  3. If the budget runs out, stage N (fewest shipments, MIP) runs unless the greedy cover
     already meets the proven lower bound; then stage D (least distance at that count, MIP)
     over the candidates the incumbent's distance leaves possible, hinted with the incumbent
     after local search (`solver.heuristics`).
  Cost objective: the best single and pair (exact search) answer when no set of three can
  cost less (the three cheapest shipments cost at least as much); else MIP stages F (cost),
  N, D.
Every stage is solved to gap 0. When the time limit runs out, the best plan found so far is
returned with proven_optimal False and its gap; it is never worse than the greedy baseline's.

Measured (benchmarks/results/solver.md, 2 shared cores): see the README's solver section.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from solver import baselines
from solver._core import Core, Target
from solver.heuristics import greedy_cover, improve_by_pair_swaps, improve_by_swaps
from solver.model import BACKENDS, DEFAULT_BACKEND, MipData, MipResult, Stage, solve_stage
from solver.plan import NoFeasiblePlan, Plan, Shipment
from solver.problem import IntArray, Problem
from solver.scoring import Score
from solver.search import Found, Keys, SearchBudget, SearchTimeout, best_set

_BUILD_SECONDS_PER_NONZERO = {"highs": 1e-5, "scip": 1e-5, "cpsat": 4e-6}
"""Model building measured at 50 lines x 10,000 candidates (125k nonzeros): MathOpt 1.2 s,
CP-SAT 0.5 s, before any solving."""
_UNBUDGETED_SIZE = 3
"""Sets of up to three locations are always searched to the end; larger sizes get a node
budget (SolveParams.search_work), after which the MIP takes over: proving that no set of
four exists took the search 0.3-0.6 s at 50 lines x 1,000 candidates, five 0.3-7.5 s."""
_SEARCH_WORK_PER_SECOND = 600_000
_MIN_SEARCH_WORK = 1_500_000
_SEARCH_NAMES = {
    1: "single-location",
    2: "two-location",
    3: "three-location",
    4: "four-location",
    5: "five-location",
    6: "six-location",
}


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
    (deterministic, unlike time; 1,500,000 is about 0.3-1 s on the benchmark machine). None:
    600,000 per second of the problem's time limit, at least 1,500,000. On 50-line scarce
    orders the search settles sizes the MIP needs seconds for: with the benchmark's 10 s limit,
    6,000,000 instead of 1,500,000 took their p50 from 4.3 to 1.5 s at 100 candidates, and at
    1,000 and 10,000 found a plan with one fewer shipment in time for 1 order of 20 each."""
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
class _Answer:
    members: tuple[int, ...]
    proven: bool
    gap: float | None
    method: str
    candidates: int


class _Deadline(Exception):
    pass


class _Solver:
    def __init__(self, problem: Problem, params: SolveParams, started: float) -> None:
        self.problem = problem
        self.params = params
        self.core = Core(problem)
        self.deadline = started + float(problem.options.time_limit)
        self.target: Target = self.core.target()
        self.best_unrouted = self.core.best_unrouted()
        core = self.core
        self.distance_keys = Keys(primary=core.distance, secondary=core.rank)
        self.greedy: tuple[int, ...] | None = None

    # -- helpers ------------------------------------------------------------------------------

    def search_work(self) -> int:
        if self.params.search_work is not None:
            return self.params.search_work
        limit = float(self.problem.options.time_limit)
        return max(_MIN_SEARCH_WORK, int(_SEARCH_WORK_PER_SECOND * limit))

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def mip(self, data: MipData, stage: Stage) -> MipResult:
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
            # The hint satisfies the stage, so "infeasible" is a floating-point verdict (seen
            # from HiGHS with an objective bound at 5e9): CP-SAT's integers settle it.
            result = solve_stage(
                data,
                stage,
                backend="cpsat",
                time_limit=max(self.remaining(), 0.001),
                threads=self.params.threads,
            )
        return result

    def target_data(self, cand: IntArray) -> MipData:
        t = self.target
        return MipData(cand=cand, demand=t.demand, coverage=t.coverage[:, cand])

    def distance_weights(self, cand: IntArray, size: int) -> IntArray:
        core = self.core
        scale = size * core.rank_span
        return core.distance[cand] * scale + core.rank[cand]

    def allowed(self, members: tuple[int, ...] | list[int], cuts: list[frozenset[int]]) -> bool:
        chosen = set(members)
        return not any(cut <= chosen for cut in cuts)

    # -- one plan -----------------------------------------------------------------------------

    def best(self, cuts: list[frozenset[int]]) -> _Answer | None:
        core = self.core
        if not core.partial and self.best_unrouted > 0:
            return None
        if not len(self.target.demand):  # nothing can be routed: the empty plan
            return None if cuts else _Answer((), True, None, "no-stock", 0)
        if core.size <= self.params.exhaustive_up_to:
            if not core.cost_objective:  # one location that ships it all: nearest wins
                single = self.search(1, cuts, self.distance_keys)
                if single is not None:
                    return _Answer(single.members, True, None, _SEARCH_NAMES[1], core.size)
            return self.best_exhaustive(cuts)
        best = self.best_cost if core.cost_objective else self.best_lexicographic
        answer = best(cuts)
        if answer is None and core.partial:
            answer = self.best_general(cuts)
        if answer is not None and not answer.proven:
            answer = self.no_worse_than_greedy(answer, cuts)
        return answer

    def best_exhaustive(self, cuts: list[frozenset[int]]) -> _Answer | None:
        """Few candidates: the full key of every subset, built one location at a time
        (subset mask | 2^j extends mask by location j), and the smallest allowed one.
        Exact for every option; the best allowed set is irredundant because dropping a
        member that is not needed gives a better allowed set."""
        core = self.core
        m = core.size
        masks = np.arange(1 << m, dtype=np.int64)
        cover = np.zeros((1 << m, len(core.demand)), dtype=np.int64)
        count = np.zeros(1 << m, dtype=np.int64)
        distance = np.zeros(1 << m, dtype=np.int64)
        cost = np.zeros(1 << m, dtype=np.int64)
        rank = np.zeros(1 << m, dtype=np.int64)
        for j in range(m):
            low, high = 1 << j, 1 << (j + 1)
            column = core.coverage[:, j]
            if core.whole:
                cover[low:high] = np.maximum(cover[:low], column)
            else:
                cover[low:high] = cover[:low] + column
            count[low:high] = count[:low] + 1
            distance[low:high] = distance[:low] + core.distance[j]
            cost[low:high] = cost[:low] + core.cost[j]
            rank[low:high] = rank[:low] + core.rank[j]
        unrouted = np.maximum(core.demand - cover, 0).sum(axis=1)
        allowed = masks > 0
        if not core.partial:
            allowed &= unrouted == 0
        if core.max_shipments is not None:
            allowed &= count <= core.max_shipments
        for cut in cuts:
            cut_mask = sum(1 << j for j in cut)
            allowed &= (masks & cut_mask) != cut_mask
        if not allowed.any():
            return None
        if not core.cost_objective:
            cost = np.zeros_like(cost)
        ok = np.flatnonzero(allowed)
        best = ok[np.lexsort((ok, rank[ok], distance[ok], count[ok], cost[ok], unrouted[ok]))[0]]
        members = tuple(j for j in range(m) if best >> j & 1)
        return _Answer(members, True, None, "exhaustive", m)

    def no_worse_than_greedy(self, answer: _Answer, cuts: list[frozenset[int]]) -> _Answer:
        """An unproven answer is replaced by the greedy baseline's set when that is better."""
        try:
            plan = baselines.greedy(self.problem)
        except NoFeasiblePlan:
            return answer
        position = {int(j): k for k, j in enumerate(self.core.index)}
        index = {x.id: j for j, x in enumerate(self.problem.locations)}
        members = self.core.prune([position[index[i]] for i in plan.location_ids])
        limit = self.core.max_shipments
        if (
            self.allowed(members, cuts)
            and (limit is None or len(members) <= limit)
            and (not answer.members or self.core.key(members) < self.core.key(answer.members))
        ):
            return _Answer(members, False, answer.gap, "greedy", answer.candidates)
        return answer

    def search(self, size: int, cuts: list[frozenset[int]], keys: Keys) -> Found | None:
        try:
            return best_set(self.target, keys, size, cuts=cuts, deadline=self.deadline)
        except SearchTimeout as stop:
            raise _Deadline from stop

    def greedy_incumbent(self, cuts: list[frozenset[int]]) -> list[int] | None:
        """The greedy cover, if the cuts and max_shipments allow it."""
        greedy = greedy_cover(self.target)
        limit = self.core.max_shipments
        if greedy is None or not self.allowed(greedy, cuts):
            return None
        if limit is not None and len(greedy) > limit:
            return None
        return greedy

    def best_lexicographic(self, cuts: list[frozenset[int]]) -> _Answer | None:
        """Sizes 1, 2, 3, ...: the exact search for the best set of each size, until one
        exists (the fewest shipments) or, above three, its node budget runs out."""
        core, target = self.core, self.target
        limit = core.max_shipments
        useful = target.useful
        greedy = self.greedy_incumbent(cuts)
        top = self.params.search_up_to if limit is None else min(self.params.search_up_to, limit)
        lower = 1
        for size in range(1, top + 1):
            incumbent = None
            if greedy is not None and len(greedy) == size:
                incumbent = Found(
                    int(core.distance[greedy].sum()), int(core.rank[greedy].sum()), tuple(greedy)
                )
            budget = None if size <= _UNBUDGETED_SIZE else self.search_work()
            try:
                found = best_set(
                    target,
                    self.distance_keys,
                    size,
                    cuts=cuts,
                    incumbent=incumbent,
                    deadline=self.deadline,
                    max_work=budget,
                )
            except SearchBudget as stop:
                if stop.best is not None:  # sets of this size exist and none smaller do
                    return self.distance_mip(cuts, stop.best, True, None)
                lower = size
                break
            except SearchTimeout as stop:
                raise _Deadline from stop
            if found is not None:
                return _Answer(found.members, True, None, _SEARCH_NAMES[size], len(useful))
            lower = size + 1
        if limit is not None and lower > limit:
            return None
        return self.staged_lexicographic(cuts, lower, greedy)

    def staged_lexicographic(
        self, cuts: list[frozenset[int]], lower: int, greedy: list[int] | None
    ) -> _Answer | None:
        """Stage N (fewest shipments) by MIP unless the greedy cover already meets `lower`,
        then stage D (least distance at that count) by MIP."""
        core, target = self.core, self.target
        method = f"mip-{self.params.backend}"
        incumbent = greedy
        count_proven, count_gap = True, None
        if incumbent is None or len(incumbent) > lower:
            result = self.mip(
                self.target_data(target.useful),
                Stage(
                    "count",
                    count_lo=lower,
                    count_hi=core.max_shipments,
                    cuts=cuts,
                    hint=incumbent or (),
                ),
            )
            if result.members is not None and (
                incumbent is None or len(result.members) <= len(incumbent)
            ):
                incumbent = list(result.members)
            if incumbent is None:
                return None if result.infeasible else self.fallback(cuts, method)
            count_proven = result.optimal
            if not count_proven:
                count_gap = (len(incumbent) - max(result.bound, lower)) / len(incumbent)
        current = Found(
            int(core.distance[incumbent].sum()),
            int(core.rank[incumbent].sum()),
            tuple(sorted(incumbent)),
        )
        return self.distance_mip(cuts, current, count_proven, count_gap)

    def distance_mip(
        self,
        cuts: list[frozenset[int]],
        current: Found,
        count_proven: bool,
        count_gap: float | None,
    ) -> _Answer:
        """Stage D by MIP over the candidates the incumbent leaves possible: a location in a
        set no longer than the incumbent is no farther than the incumbent's distance less the
        count - 1 nearest others."""
        core, target = self.core, self.target
        useful = target.useful
        count = len(current.members)
        # A tight incumbent is what lets the reduction below prune by distance.
        improved = improve_by_swaps(target, list(current.members), core.distance)
        improved = improve_by_pair_swaps(
            target, improved, core.distance, core.rank, deadline=self.deadline
        )
        if self.allowed(improved, cuts):
            found = Found(
                int(core.distance[improved].sum()),
                int(core.rank[improved].sum()),
                tuple(sorted(improved)),
            )
            current = min(current, found)
        cand = useful
        if self.params.reduce:
            nearest = int(np.sort(core.distance[useful])[: count - 1].sum())
            cand = useful[core.distance[useful] + nearest <= current.primary]
        weights = self.distance_weights(cand, count)
        members = np.asarray(current.members)
        inc_value = int(self.distance_weights(members, count).sum())
        result = self.mip(
            self.target_data(cand),
            Stage(
                "distance",
                weights=weights,
                count_lo=count,
                count_hi=count,
                cuts=cuts,
                hint=current.members,
            ),
        )
        chosen, value = current.members, inc_value
        if (
            result.members is not None
            and result.objective is not None
            and result.objective <= inc_value
            and self.allowed(result.members, cuts)
        ):
            chosen, value = result.members, result.objective
        proven = count_proven and result.optimal
        gap = count_gap
        if not result.optimal and gap is None:
            # No set of `count` is nearer than the `count` nearest candidates together.
            floor = int(np.sort(self.distance_weights(useful, count))[:count].sum())
            bound = max(result.bound, floor)
            gap = max(0.0, (value - bound) / value) if value else 0.0
        return _Answer(
            tuple(sorted(chosen)),
            proven,
            None if proven else gap,
            f"mip-{self.params.backend}",
            len(cand),
        )

    def best_cost(self, cuts: list[frozenset[int]]) -> _Answer | None:
        core, target = self.core, self.target
        limit = core.max_shipments
        useful = target.useful
        span = core.rank_span
        keys = Keys(primary=core.cost, secondary=core.distance * (2 * span) + core.rank)
        small: list[Found] = []
        top = min(2, self.params.search_up_to, limit or 2)
        for size in range(1, top + 1):
            found = self.search(size, cuts, keys)
            if found is not None:
                small.append(found)
        best_small = min(small, key=lambda f: core.key(f.members)) if small else None
        cheapest = np.sort(core.cost[useful])
        bigger_possible = len(useful) > top and (limit is None or limit > top)
        if best_small is not None and (
            not bigger_possible or best_small.primary <= int(cheapest[: top + 1].sum())
        ):
            size = len(best_small.members)
            return _Answer(best_small.members, True, None, _SEARCH_NAMES[size], len(useful))
        if self.params.search_up_to and not bigger_possible:
            return None
        return self.mip_cost(cuts, best_small)

    def mip_cost(self, cuts: list[frozenset[int]], hint: Found | None) -> _Answer | None:
        core, target = self.core, self.target
        useful = target.useful
        method = f"mip-{self.params.backend}"
        incumbent: list[int] | None = list(hint.members) if hint is not None else None
        if incumbent is None:
            greedy = greedy_cover(target)
            if (
                greedy is not None
                and self.allowed(greedy, cuts)
                and (core.max_shipments is None or len(greedy) <= core.max_shipments)
            ):
                incumbent = greedy
        data = self.target_data(useful)
        cost = core.cost[useful]
        first = self.mip(
            data,
            Stage(
                "cost", weights=cost, count_hi=core.max_shipments, cuts=cuts, hint=incumbent or ()
            ),
        )
        if first.members is None:
            if first.infeasible:
                return None
            return self.fallback(cuts, method)
        best_cost = first.objective or 0
        second = self.mip(
            data,
            Stage(
                "count",
                count_hi=core.max_shipments,
                cuts=cuts,
                cost_weights=cost,
                max_cost=best_cost,
                hint=first.members,
            ),
        )
        members = second.members or first.members
        count = len(members)
        third = self.mip(
            self.target_data(useful),
            Stage(
                "distance",
                weights=self.distance_weights(useful, count),
                count_lo=count,
                count_hi=count,
                cuts=cuts,
                cost_weights=cost,
                max_cost=best_cost,
                hint=members,
            ),
        )
        members = third.members or members
        proven = first.optimal and second.optimal and third.optimal
        gap = None
        if not first.optimal:
            gap = max(0.0, (best_cost - first.bound) / best_cost) if best_cost else 0.0
        elif not proven:
            gap = 0.0
        return _Answer(tuple(sorted(members)), proven, gap, method, len(useful))

    def best_general(self, cuts: list[frozenset[int]]) -> _Answer | None:
        """allow_partial when no set within max_shipments and the cuts reaches the best
        unrouted count: stage U (min unrouted) with u variables, then F/N/D as usual."""
        core = self.core
        everything = np.arange(core.size)
        data = MipData(
            cand=everything,
            demand=core.demand,
            coverage=core.coverage,
            partial=True,
            whole_levels=core.whole,
        )
        limit = core.max_shipments
        method = f"mip-{self.params.backend}"
        first = self.mip(data, Stage("unrouted", count_hi=limit, cuts=cuts))
        if first.members is None:
            return None if first.infeasible else self.fallback(cuts, method)
        unrouted = core.unrouted(first.members)
        if not first.members:
            return None if cuts else _Answer((), first.optimal, None, method, core.size)
        stages_ok = first.optimal
        max_cost = None
        if core.cost_objective:
            f_stage = self.mip(
                data,
                Stage(
                    "cost",
                    weights=core.cost,
                    count_hi=limit,
                    cuts=cuts,
                    max_unrouted=unrouted,
                    hint=first.members,
                ),
            )
            stages_ok &= f_stage.optimal
            max_cost = f_stage.objective
        second = self.mip(
            data,
            Stage(
                "count",
                count_hi=limit,
                cuts=cuts,
                max_unrouted=unrouted,
                cost_weights=core.cost,
                max_cost=max_cost,
                hint=first.members,
            ),
        )
        members = second.members or first.members
        count = len(members)
        third = self.mip(
            data,
            Stage(
                "distance",
                weights=self.distance_weights(everything, count),
                count_lo=count,
                count_hi=count,
                cuts=cuts,
                max_unrouted=unrouted,
                cost_weights=core.cost,
                max_cost=max_cost,
                hint=members,
            ),
        )
        members = third.members or members
        proven = stages_ok and second.optimal and third.optimal
        members = core.prune(members)
        return _Answer(tuple(sorted(members)), proven, None if proven else 0.0, method, core.size)

    def fallback(self, cuts: list[frozenset[int]], method: str) -> _Answer | None:
        """Out of time before any stage found a set: the greedy cover, if it is allowed."""
        greedy = greedy_cover(self.target)
        if greedy is None or not self.allowed(greedy, cuts):
            return None
        limit = self.core.max_shipments
        if limit is not None and len(greedy) > limit:
            return None
        answer = _Answer(tuple(greedy), False, 1.0, "heuristic", len(self.target.useful))
        return self.no_worse_than_greedy(answer, cuts)


def _allocate(core: Core, members: tuple[int, ...]) -> tuple[list[Shipment], dict[str, int]]:
    """Fill in y for a chosen set: each line from its locations in key order (nearest first);
    with keep_lines_whole, from the first location that ships the most of it."""
    problem = core.problem
    atf = problem.atf
    order = sorted(members)
    units: dict[int, dict[str, int]] = {m: {} for m in order}
    unrouted: dict[str, int] = {}
    for i, line in enumerate(problem.lines):
        remaining = line.quantity
        if core.whole:
            if order:
                best = max(order, key=lambda m: (int(core.coverage[i, m]), -m))
                take = int(core.coverage[i, best])
                if take:
                    units[best][line.sku] = take
                    remaining -= take
        else:
            for m in order:
                take = min(remaining, int(atf[i, core.index[m]]))
                if take:
                    units[m][line.sku] = take
                    remaining -= take
                if not remaining:
                    break
        if remaining:
            unrouted[line.sku] = remaining
    shipments = []
    for m in order:
        location = problem.locations[int(core.index[m])]
        shipments.append(
            Shipment(
                location_id=location.id,
                units=MappingProxyType(units[m]),
                distance_km=float(problem.distance_km[int(core.index[m])]),
            )
        )
    return shipments, unrouted


def _plan(core: Core, answer: _Answer, seconds: float) -> Plan:
    # A proven optimum needs every member (module docstring of solver.model); anything else
    # may carry one it does not need.
    members = answer.members if answer.proven else core.prune(answer.members)
    shipments, unrouted = _allocate(core, members)
    unrouted_units, cost, count, distance, _ = core.key(members)
    return Plan(
        shipments=tuple(shipments),
        unrouted=MappingProxyType(unrouted),
        objective=Score(unrouted_units, cost, count, distance),
        proven_optimal=answer.proven,
        gap=answer.gap,
        method=answer.method,
        candidates=answer.candidates,
        solve_seconds=seconds,
    )


def solve(problem: Problem, params: SolveParams | None = None) -> Plan:
    """The best plan for `problem` (and its alternatives); see the module docstring.

    Raises `NoFeasiblePlan` when no plan satisfies the problem (never with allow_partial).
    """
    started = time.perf_counter()
    solver = _Solver(problem, params or SolveParams(), started)
    core = solver.core
    answers: list[_Answer] = []
    cuts: list[frozenset[int]] = []
    for _ in range(problem.options.alternatives):
        try:
            answer = solver.best(cuts)
        except _Deadline:
            answer = solver.fallback(cuts, "heuristic") if not answers else None
        if answer is None:
            break
        answers.append(answer)
        if not answer.members:
            break
        cuts.append(frozenset(answer.members))
        if time.perf_counter() > solver.deadline:
            break
    if not answers:
        if solver.best_unrouted > 0 and not core.partial:
            raise NoFeasiblePlan(
                "INSUFFICIENT_STOCK",
                "the candidate locations together cannot ship the order",
                shortfall=core.shortfall(),
            )
        raise NoFeasiblePlan(
            "MAX_SHIPMENTS_EXCEEDED",
            f"no set of at most {core.max_shipments} locations can ship the order",
        )
    seconds = time.perf_counter() - started
    first, *rest = [_plan(core, answer, seconds) for answer in answers]
    return replace(first, alternatives=tuple(rest))
