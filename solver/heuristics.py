"""Quick feasible sets for a cover target: upper bounds for the exact stages and warm starts.

None of these is claimed optimal; the exact stages use them to prune and to hint the MIP.
"""

from __future__ import annotations

import numpy as np

from solver._core import Target
from solver.problem import IntArray
from solver.search import Found, Keys, SearchTimeout, best_set


def greedy_cover(target: Target, candidates: IntArray | None = None) -> list[int] | None:
    """Chvatal's greedy for covering: repeatedly add the candidate that covers the most
    still-missing units (ties to the smaller key), then drop members that became redundant.
    None when the candidates cannot cover the target."""
    pool = target.useful if candidates is None else np.asarray(candidates, dtype=np.int64)
    missing = target.demand.copy()
    coverage = target.coverage[:, pool].copy()
    chosen: list[int] = []
    while missing.any():
        gain = np.minimum(coverage, missing[:, None]).sum(axis=0)
        best = int(np.argmax(gain))  # first maximum: the smallest key among the best
        if gain[best] <= 0:
            return None
        chosen.append(int(pool[best]))
        missing = np.maximum(missing - coverage[:, best], 0)
        coverage[:, best] = 0  # a location ships once
    return prune_cover(target, chosen)


def prune_cover(target: Target, members: list[int]) -> list[int]:
    """Drop redundant members of a covering set, largest key first."""
    kept = sorted(members)
    for member in sorted(kept, reverse=True):
        trial = [x for x in kept if x != member]
        if trial and target.covers(trial):
            kept = trial
    return kept


def improve_by_swaps(target: Target, members: list[int], key: IntArray) -> list[int]:
    """Local search: replace one member by the smallest-key candidate that keeps the set
    covering, while that lowers the key sum (first improvement, members in key order)."""
    current = sorted(members)
    pool = target.useful
    improved = True
    while improved:
        improved = False
        for member in sorted(current, key=lambda x: -int(key[x])):
            rest = [x for x in current if x != member]
            need = np.maximum(target.demand - target.coverage[:, rest].sum(axis=1), 0)
            fits = np.all(target.coverage[:, pool] >= need[:, None], axis=0)
            fits &= ~np.isin(pool, current)
            options = pool[fits]
            if len(options):
                swap = int(options[np.argmin(key[options])])
                if key[swap] < key[member]:
                    current = sorted([*rest, swap])
                    improved = True
                    break
    return current


def improve_by_pair_swaps(
    target: Target,
    members: list[int],
    primary: IntArray,
    secondary: IntArray,
    deadline: float = float("inf"),
) -> list[int]:
    """Local search: replace two members by the best pair that covers what the rest of the set
    leaves (the exact pair search), while that lowers the key sums."""
    keys = Keys(primary, secondary)
    current = sorted(members)
    improved = True
    while improved and len(current) >= 2:
        improved = False
        for a, b in sorted(
            ((x, y) for i, x in enumerate(current) for y in current[i + 1 :]),
            key=lambda p: -int(primary[p[0]] + primary[p[1]]),
        ):
            rest = [x for x in current if x not in (a, b)]
            need = np.maximum(target.demand - target.coverage[:, rest].sum(axis=1), 0)
            rows = np.flatnonzero(need)
            sub = Target(need[rows], np.minimum(target.coverage[rows], need[rows, None]))
            pool = sub.useful
            pool = pool[~np.isin(pool, rest)]
            incumbent = Found(
                int(primary[a] + primary[b]), int(secondary[a] + secondary[b]), (a, b)
            )
            try:
                found = best_set(
                    sub, keys, 2, candidates=pool, incumbent=incumbent, deadline=deadline
                )
            except SearchTimeout:
                return current
            if found is not None and found < incumbent:
                current = sorted([*rest, *found.members])
                improved = True
                break
    return current
