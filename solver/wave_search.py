"""Large waves: improve a feasible wave plan by re-solving small groups of orders exactly.

A wave too large to solve in one MIP within its time limit is improved by fix-and-optimise
(a large-neighbourhood search): pick an order that does worse than its own optimum, free it
and the orders holding the stock or capacity its own plan needed, and solve that group
exactly by the wave model over what the other orders leave; keep the result when it is
better. Every step keeps the plan feasible and never makes it worse; the lower bound stays the
sum of the orders' own optima, so the gap says how much is left at most.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from solver.scoring import Score
from solver.wave_model import Allocation, columns, solve_columns
from solver.wave_plan import order_plan, refused_score, total
from solver.wave_problem import WaveProblem
from solver.wave_turns import left_after

_GROUP = 20
"""Most orders re-solved together: few enough for the exact model to settle them quickly."""
_STEP_SECONDS = 5.0
"""Time limit of one group's solve."""


def improve(
    problem: WaveProblem,
    allocations: list[Allocation | None],
    own: Sequence[tuple[Allocation | None, Score, bool]],
    least: Sequence[int],
    deadline: float,
) -> list[Allocation | None]:
    """A plan no worse than `allocations`, improved until `deadline` or until no order does
    worse than its own optimum (`own`: per order, its allocation and score alone)."""
    current = list(allocations)
    scores = [_score(problem, k, a) for k, a in enumerate(current)]
    tried: set[int] = set()
    while time.perf_counter() < deadline:
        behind = {k for k in range(len(current)) if scores[k] > own[k][1]} - tried
        if not behind:
            break
        seed = max(behind, key=lambda k: (_excess(scores[k], own[k][1]), -k))
        tried.add(seed)
        group = _group(problem, current, own, seed)
        fixed = [None if k in group else a for k, a in enumerate(current)]
        left = problem.remaining(*left_after(problem, fixed))
        orders = sorted(group)
        answer = solve_columns(
            left,
            columns(left, orders),
            min(deadline, time.perf_counter() + _STEP_SECONDS),
            np.array([least[k] for k in orders], dtype=np.int64),
        )
        if answer is None:
            continue
        found = [_score(problem, k, a) for k, a in zip(orders, answer.allocations, strict=True)]
        if total(found) < total(scores[k] for k in orders):
            for k, a, s in zip(orders, answer.allocations, found, strict=True):
                current[k], scores[k] = a, s
            tried -= group
    return current


def _score(problem: WaveProblem, k: int, allocation: Allocation | None) -> Score:
    if allocation is None:
        return refused_score(problem, k)
    return order_plan(problem, k, allocation, proven=False, method="").objective


def _excess(score: Score, best: Score) -> tuple[int, ...]:
    return tuple(a - b for a, b in zip(score, best, strict=True))


def _group(
    problem: WaveProblem,
    current: Sequence[Allocation | None],
    own: Sequence[tuple[Allocation | None, Score, bool]],
    seed: int,
) -> set[int]:
    """The seed, the orders now shipping its SKUs from the locations of its own optimum (they
    hold what it wants), then orders shipping anything from those locations (they hold their
    capacity), up to `_GROUP` orders."""
    wanted = set(own[seed][0] or {})
    skus = {line.sku for line in problem.orders[seed].lines}
    blocking: list[int] = []
    sharing: list[int] = []
    for k, allocation in enumerate(current):
        places = set(allocation or {}) & wanted
        if k == seed or not places or allocation is None:
            continue
        if any(skus & set(allocation[j]) for j in places):
            blocking.append(k)
        else:
            sharing.append(k)
    return {seed, *(blocking + sharing)[: _GROUP - 1]}
