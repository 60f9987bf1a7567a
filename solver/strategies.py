"""The strategies that choose one plan's set of locations: the staged exact method, cheapest
proof first. `best_answer` picks the strategy; each returns an `Answer`, or None when no allowed
set exists.

  0. Few candidates (<= 12): every subset's full key at once (`every_subset`), after a
     one-location check. Exact for every option.
  1. Unrouted units U: the fewest any set reaches is what all candidates together reach
     (`Core.best_unrouted`); the sets reaching it are the covers of `Core.target()`. Only
     when max_shipments or the cuts rule all of those out does the MIP solve stage U itself
     (with u variables, `least_unrouted_by_mip`).
  2. Lexicographic (`fewest_then_nearest`): for s = 1, 2, 3, ... the exact search
     (`solver.search`) returns the best covering set of exactly s locations, or proves there is
     none; the first s with a set is the fewest shipments and its set is the nearest (ties: rank
     sum). One to three locations are searched to the end; four to six under a work budget
     (`SolveParams.search_work`). No solver call.
  3. If the budget runs out, stage N (fewest shipments, MIP, `fewest_by_mip`) runs unless the
     greedy cover already meets the proven lower bound; then stage D (least distance at that
     count, MIP, `nearest_by_mip`) over the candidates the incumbent's distance leaves
     possible, hinted with the incumbent after local search (`solver.heuristics`).
  Cost objective (`cheapest`): the best single and pair (exact search) answer when no set of
  three can cost less (the three cheapest shipments cost at least as much); else MIP stages F
  (cost), N, D (`cheapest_by_mip`).
An answer not proven optimal is replaced by the greedy baseline's set when that is better
(`no_worse_than_greedy`).
"""

from __future__ import annotations

import numpy as np

from solver import baselines
from solver.heuristics import improve_by_pair_swaps, improve_by_swaps
from solver.model import MipData, Stage
from solver.plan import NoFeasiblePlan
from solver.problem import IntArray
from solver.search import Found, Keys, SearchBudget, SearchTimeout, best_set
from solver.state import Answer, OutOfTime, SolveState

_UNBUDGETED_SIZE = 3
"""Sets of up to three locations are always searched to the end; larger sizes get a work budget
(SolveParams.search_work), after which the MIP takes over."""
_SEARCH_NAMES = {
    1: "single-location",
    2: "two-location",
    3: "three-location",
    4: "four-location",
    5: "five-location",
    6: "six-location",
}

Cuts = list[frozenset[int]]
"""The earlier plans' sets: no answer may contain one (no-good cuts, solver.model (4))."""


def best_answer(state: SolveState, cuts: Cuts) -> Answer | None:
    """The best set that contains none of `cuts`, by the strategy that fits the problem."""
    core = state.core
    if not core.partial and state.best_unrouted > 0:
        return None
    if not len(state.target.demand):  # nothing can be routed: the empty plan
        return None if cuts else Answer((), True, None, "no-stock", 0)
    if core.size <= state.params.exhaustive_up_to:
        if not core.cost_objective:  # one location that ships it all: nearest wins
            single = state.search(1, cuts, state.distance_keys)
            if single is not None:
                return Answer(single.members, True, None, _SEARCH_NAMES[1], core.size)
        return every_subset(state, cuts)
    best = cheapest if core.cost_objective else fewest_then_nearest
    answer = best(state, cuts)
    if answer is None and core.partial:
        answer = least_unrouted_by_mip(state, cuts)
    if answer is not None and not answer.proven:
        answer = no_worse_than_greedy(state, answer, cuts)
    return answer


def every_subset(state: SolveState, cuts: Cuts) -> Answer | None:
    """Few candidates: the full key of every subset, built one location at a time
    (subset mask | 2^j extends mask by location j), and the smallest allowed one.
    Exact for every option; the best allowed set is irredundant because dropping a
    member that is not needed gives a better allowed set."""
    core = state.core
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
    return Answer(members, True, None, "exhaustive", m)


def fewest_then_nearest(state: SolveState, cuts: Cuts) -> Answer | None:
    """Sizes 1, 2, 3, ...: the exact search for the best set of each size, until one exists
    (the fewest shipments) or, above three, its work budget runs out; then the MIP."""
    core, target = state.core, state.target
    limit = core.max_shipments
    greedy = state.greedy_incumbent(cuts)
    top = state.params.search_up_to if limit is None else min(state.params.search_up_to, limit)
    lower = 1
    for size in range(1, top + 1):
        incumbent = None
        if greedy is not None and len(greedy) == size:
            incumbent = state.by_distance(greedy)
        budget = None if size <= _UNBUDGETED_SIZE else state.search_work()
        try:
            found = best_set(
                target,
                state.distance_keys,
                size,
                cuts=cuts,
                incumbent=incumbent,
                deadline=state.deadline,
                max_work=budget,
            )
        except SearchBudget as stop:
            if stop.best is not None:  # sets of this size exist and none smaller do
                return nearest_by_mip(state, cuts, stop.best, True, None)
            lower = size
            break
        except SearchTimeout as stop:
            raise OutOfTime from stop
        if found is not None:
            return Answer(found.members, True, None, _SEARCH_NAMES[size], len(target.useful))
        lower = size + 1
    if limit is not None and lower > limit:
        return None
    return fewest_by_mip(state, cuts, lower, greedy)


def fewest_by_mip(
    state: SolveState, cuts: Cuts, lower: int, greedy: list[int] | None
) -> Answer | None:
    """Stage N (fewest shipments, at least `lower`) by MIP unless the greedy cover already meets
    `lower`, then stage D (least distance at that count)."""
    core, target = state.core, state.target
    incumbent = greedy
    count_proven, count_gap = True, None
    if incumbent is None or len(incumbent) > lower:
        result = state.mip_stage(
            state.target_data(target.useful),
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
            return None if result.infeasible else greedy_fallback(state, cuts)
        count_proven = result.optimal
        if not count_proven:
            count_gap = (len(incumbent) - max(result.bound, lower)) / len(incumbent)
    return nearest_by_mip(state, cuts, state.by_distance(incumbent), count_proven, count_gap)


def nearest_by_mip(
    state: SolveState,
    cuts: Cuts,
    current: Found,
    count_proven: bool,
    count_gap: float | None,
) -> Answer:
    """Stage D by MIP over the candidates the incumbent leaves possible: a location in a set no
    longer than the incumbent is no farther than the incumbent's distance less the count - 1
    nearest others."""
    core, target = state.core, state.target
    useful = target.useful
    count = len(current.members)
    # A tight incumbent is what lets the reduction below prune by distance.
    improved = _improved(state, current)
    if state.allowed(improved, cuts):
        current = min(current, state.by_distance(improved))
    cand = useful
    if state.params.reduce:
        nearest = int(np.sort(core.distance[useful])[: count - 1].sum())
        cand = useful[core.distance[useful] + nearest <= current.primary]
    members = np.asarray(current.members)
    incumbent_value = int(state.distance_weights(members, count).sum())
    result = state.mip_stage(
        state.target_data(cand),
        Stage(
            "distance",
            weights=state.distance_weights(cand, count),
            count_lo=count,
            count_hi=count,
            cuts=cuts,
            hint=current.members,
        ),
    )
    chosen, value = current.members, incumbent_value
    if (
        result.members is not None
        and result.objective is not None
        and result.objective <= incumbent_value
        and state.allowed(result.members, cuts)
    ):
        chosen, value = result.members, result.objective
    proven = count_proven and result.optimal
    gap = count_gap
    if not result.optimal and gap is None:
        # No set of `count` is nearer than the `count` nearest candidates together.
        floor = int(np.sort(state.distance_weights(useful, count))[:count].sum())
        bound = max(result.bound, floor)
        gap = max(0.0, (value - bound) / value) if value else 0.0
    return Answer(
        tuple(sorted(chosen)), proven, None if proven else gap, state.mip_method, len(cand)
    )


def _improved(state: SolveState, current: Found) -> list[int]:
    """Local search on a covering set: single swaps, then pair swaps, each while it gets nearer."""
    core, target = state.core, state.target
    improved = improve_by_swaps(target, list(current.members), core.distance)
    return improve_by_pair_swaps(
        target, improved, core.distance, core.rank, deadline=state.deadline
    )


def cheapest(state: SolveState, cuts: Cuts) -> Answer | None:
    """Cost objective: the cheapest single or pair by exact search when no larger set can cost
    less, else the MIP stages."""
    core = state.core
    limit = core.max_shipments
    useful = state.target.useful
    span = core.rank_span
    keys = Keys(primary=core.cost, secondary=core.distance * (2 * span) + core.rank)
    small: list[Found] = []
    top = min(2, state.params.search_up_to, limit or 2)
    for size in range(1, top + 1):
        found = state.search(size, cuts, keys)
        if found is not None:
            small.append(found)
    best_small = min(small, key=lambda f: core.key(f.members)) if small else None
    cheapest_costs = np.sort(core.cost[useful])
    bigger_possible = len(useful) > top and (limit is None or limit > top)
    if best_small is not None and (
        not bigger_possible or best_small.primary <= int(cheapest_costs[: top + 1].sum())
    ):
        size = len(best_small.members)
        return Answer(best_small.members, True, None, _SEARCH_NAMES[size], len(useful))
    if state.params.search_up_to and not bigger_possible:
        return None
    return cheapest_by_mip(state, cuts, best_small)


def cheapest_by_mip(state: SolveState, cuts: Cuts, hint: Found | None) -> Answer | None:
    """Stage F (least cost) by MIP, then N and D holding that cost."""
    core = state.core
    useful = state.target.useful
    incumbent = list(hint.members) if hint is not None else state.greedy_incumbent(cuts)
    data = state.target_data(useful)
    cost = core.cost[useful]
    first = state.mip_stage(
        data,
        Stage("cost", weights=cost, count_hi=core.max_shipments, cuts=cuts, hint=incumbent or ()),
    )
    if first.members is None:
        return None if first.infeasible else greedy_fallback(state, cuts)
    best_cost = first.objective or 0
    members, rest_proven = _fewest_then_nearest_by_mip(
        state, data, cuts, first.members, cost_weights=cost, max_cost=best_cost
    )
    proven = first.optimal and rest_proven
    gap = None
    if not first.optimal:
        gap = max(0.0, (best_cost - first.bound) / best_cost) if best_cost else 0.0
    elif not proven:
        gap = 0.0
    return Answer(tuple(sorted(members)), proven, gap, state.mip_method, len(useful))


def least_unrouted_by_mip(state: SolveState, cuts: Cuts) -> Answer | None:
    """allow_partial when no set within max_shipments and the cuts reaches the best unrouted
    count: stage U (least unrouted) with u variables, then F/N/D as usual."""
    core = state.core
    everything = np.arange(core.size)
    data = MipData(
        cand=everything,
        demand=core.demand,
        coverage=core.coverage,
        partial=True,
        whole_levels=core.whole,
    )
    limit = core.max_shipments
    first = state.mip_stage(data, Stage("unrouted", count_hi=limit, cuts=cuts))
    if first.members is None:
        return None if first.infeasible else greedy_fallback(state, cuts)
    unrouted = core.unrouted(first.members)
    if not first.members:
        return None if cuts else Answer((), first.optimal, None, state.mip_method, core.size)
    stages_ok = first.optimal
    max_cost = None
    if core.cost_objective:
        cost_stage = state.mip_stage(
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
        stages_ok &= cost_stage.optimal
        max_cost = cost_stage.objective
    members, rest_proven = _fewest_then_nearest_by_mip(
        state,
        data,
        cuts,
        first.members,
        cost_weights=core.cost,
        max_cost=max_cost,
        max_unrouted=unrouted,
    )
    proven = stages_ok and rest_proven
    members = core.prune(members)
    return Answer(
        tuple(sorted(members)), proven, None if proven else 0.0, state.mip_method, core.size
    )


def _fewest_then_nearest_by_mip(
    state: SolveState,
    data: MipData,
    cuts: Cuts,
    hint: tuple[int, ...],
    *,
    cost_weights: IntArray,
    max_cost: int | None,
    max_unrouted: int | None = None,
) -> tuple[tuple[int, ...], bool]:
    """Stages N then D by MIP over `data`, holding the earlier stages' optima (solver.model
    (5)); the set found, and whether both stages proved optimal."""
    count_stage = state.mip_stage(
        data,
        Stage(
            "count",
            count_hi=state.core.max_shipments,
            cuts=cuts,
            max_unrouted=max_unrouted,
            cost_weights=cost_weights,
            max_cost=max_cost,
            hint=hint,
        ),
    )
    members = count_stage.members or hint
    count = len(members)
    distance_stage = state.mip_stage(
        data,
        Stage(
            "distance",
            weights=state.distance_weights(data.cand, count),
            count_lo=count,
            count_hi=count,
            cuts=cuts,
            max_unrouted=max_unrouted,
            cost_weights=cost_weights,
            max_cost=max_cost,
            hint=members,
        ),
    )
    members = distance_stage.members or members
    return members, count_stage.optimal and distance_stage.optimal


def greedy_fallback(state: SolveState, cuts: Cuts) -> Answer | None:
    """Out of time before any stage found a set: the greedy cover, if it is allowed."""
    greedy = state.greedy_incumbent(cuts)
    if greedy is None:
        return None
    answer = Answer(tuple(greedy), False, 1.0, "heuristic", len(state.target.useful))
    return no_worse_than_greedy(state, answer, cuts)


def no_worse_than_greedy(state: SolveState, answer: Answer, cuts: Cuts) -> Answer:
    """An unproven answer is replaced by the greedy baseline's set when that is better."""
    core, problem = state.core, state.problem
    try:
        plan = baselines.greedy(problem)
    except NoFeasiblePlan:
        return answer
    position = {int(j): k for k, j in enumerate(core.index)}
    index = {x.id: j for j, x in enumerate(problem.locations)}
    members = core.prune([position[index[i]] for i in plan.location_ids])
    if state.eligible(members, cuts) and (
        not answer.members or core.key(members) < core.key(answer.members)
    ):
        return Answer(members, False, answer.gap, "greedy", answer.candidates)
    return answer
