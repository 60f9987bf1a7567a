"""Exact search over small location sets: the solver's fast paths, with no MIP solver call.

`best_set(target, keys, s)` returns the best set of exactly s candidates that covers a `Target`
(feasibility: sum_{l in S} c_il >= q_i for every line i), by (sum of primary, sum of secondary)
key. It is exhaustive, so its answer is proven optimal; what makes it fast is pruning that never
drops a feasible set:

- weights: with w_l = sum_i c_il / q_i (c capped at q), a covering set has sum_{l in S} w_l >= n
  (n lines), so a pair needs w_a + w_b >= n, and some member of an s-set has w >= n / s. These
  are the LP-dual bounds of the covering constraints with the dual y_i = 1 / q_i.
- keys: candidates are in key order, so in a set whose smallest key is a, every other member has
  a larger key; with an incumbent, sets whose primary sum must exceed it are never built.
- pairs are checked all at once: line i fails for (a, b) when c_ib < q_i - c_ia; counting the
  failing lines of every pair is one AND of bitsets over the distinct deficits per line, and a pair
  covers exactly when nothing is left.
- larger sets branch on one member (the nearest, or the heaviest by weight, whichever leaves
  fewer branches) and search the residual demand with one member fewer, down to pairs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solver._core import Target
from solver.problem import IntArray

_EPS = 1e-9
_WARM_PREFIX = 64
_NEVER = np.iinfo(np.int64).max
_NODE_WORK = 64
"""Work charged per search node on top of its candidates (the fixed numpy call overhead)."""
_MATRIX_CELLS = 4_000_000
"""Pair matrices are built in row blocks of at most this many cells (bounds memory)."""


class SearchTimeout(Exception):
    """The deadline passed; `best` is the best set found before it (or None)."""

    def __init__(self, best: Found | None) -> None:
        super().__init__("deadline reached")
        self.best = best


class SearchBudget(SearchTimeout):
    """The node budget ran out (deterministic, unlike the deadline); `best` as above."""


@dataclass(frozen=True, order=True)
class Found:
    """A set of candidates and its key sums; orders by (primary, secondary, members)."""

    primary: int
    secondary: int
    members: tuple[int, ...]


@dataclass(frozen=True)
class Keys:
    """Per-candidate keys, non-decreasing in `primary` along candidate order."""

    primary: IntArray
    secondary: IntArray


def _pack(bits: np.ndarray) -> np.ndarray:
    """Pack a (levels x columns) 0/1 matrix into (columns x words) uint64 bitsets."""
    levels, columns = bits.shape
    words = max(1, -(-levels // 64))
    packed = np.packbits(bits, axis=0, bitorder="little")
    padded = np.zeros((words * 8, columns), dtype=np.uint8)
    padded[: packed.shape[0]] = packed
    return np.ascontiguousarray(padded.T).view(np.uint64)


def _pair_covers(demand: IntArray, left: IntArray, right: IntArray) -> np.ndarray:
    """covers[a, b]: left column a and right column b together cover every line.

    Line i fails for (a, b) when right[i, b] < deficit_ia = demand_i - left[i, a]. With one bit
    per (line, distinct deficit v): a sets bit (i, v) when its deficit is v, b sets it when it
    holds fewer than v units; the pair covers when the two bitsets share no bit.
    """
    deficit = np.maximum(demand[:, None] - left, 0)
    span = int(deficit.max(initial=0)) + 1
    if span == 1:
        return np.ones((left.shape[1], right.shape[1]), dtype=bool)
    lines = np.arange(len(demand), dtype=np.int64)[:, None]
    levels = np.unique((lines * span + deficit)[deficit > 0])
    line_of, level = levels // span, levels % span
    needs = _pack(deficit[line_of] == level[:, None])
    short = _pack(right[line_of] < level[:, None])
    clash = needs[:, 0][:, None] & short[:, 0][None, :]
    for word in range(1, needs.shape[1]):
        clash |= needs[:, word][:, None] & short[:, word][None, :]
    return np.asarray(clash == 0)


def _cut_filters(
    cuts: list[frozenset[int]], chosen: frozenset[int]
) -> tuple[bool, set[int], set[tuple[int, int]]]:
    """What the no-good cuts forbid below a node that has chosen `chosen`: whether the node is
    dead (it contains a cut), the candidates that would complete a cut, and the pairs that
    would."""
    banned: set[int] = set()
    pairs: set[tuple[int, int]] = set()
    for cut in cuts:
        rest = cut - chosen
        if not rest:
            return True, banned, pairs
        if len(rest) == 1:
            banned |= rest
        elif len(rest) == 2:
            a, b = sorted(rest)
            pairs.add((a, b))
    return False, banned, pairs


@dataclass
class _Budget:
    """Work allowed and spent, shared by a search and its warm starts."""

    limit: int | None
    spent: int = 0


class _Search:
    """Depth-first search; every node works on local arrays (coverage of its candidates,
    capped at its residual demand, and their core positions `idx`, in key order)."""

    def __init__(self, keys: Keys, deadline: float, first: bool, budget: _Budget) -> None:
        self.keys = keys
        self.deadline = deadline
        self.first = first
        self.best: Found | None = None
        self.budget = budget

    def offer(self, found: Found) -> None:
        if self.best is None or found < self.best:
            self.best = found

    def tick(self, work: int) -> None:
        budget = self.budget
        budget.spent += work + _NODE_WORK
        if budget.limit is not None and budget.spent > budget.limit:
            raise SearchBudget(self.best)
        if time.perf_counter() > self.deadline:
            raise SearchTimeout(self.best)

    def extend(self, base: Found, members: tuple[int, ...]) -> Found:
        keys = self.keys
        index = list(members)
        return Found(
            base.primary + int(keys.primary[index].sum()),
            base.secondary + int(keys.secondary[index].sum()),
            tuple(sorted(base.members + members)),
        )

    def node(
        self,
        demand: IntArray,
        cov: IntArray,
        idx: IntArray,
        size: int,
        base: Found,
        cuts: list[frozenset[int]],
    ) -> None:
        self.tick(len(idx))
        dead, banned, banned_pairs = _cut_filters(cuts, frozenset(base.members))
        if dead:
            return
        if banned:
            keep = ~np.isin(idx, list(banned))
            cov, idx = cov[:, keep], idx[keep]
        if len(idx) < size:
            return
        primary = self.keys.primary[idx]
        if self.best is not None:
            # Every other member has a key at least the smallest candidate's.
            room = self.best.primary - base.primary
            keep = primary <= room - (size - 1) * primary[0]
            cov, idx, primary = cov[:, keep], idx[keep], primary[keep]
            if len(idx) < size:
                return
        if size == 1:
            ok = np.flatnonzero(np.all(cov >= demand[:, None], axis=0))
            if len(ok):  # key order: the first is the best
                self.offer(self.extend(base, (int(idx[ok[0]]),)))
            return
        n = len(demand)
        weight = (cov / demand[:, None]).sum(axis=0)
        # A covering set's weights sum to >= n; the other members add at most the largest.
        top = np.sort(weight)[::-1][: size - 1].sum()
        keep = weight >= n - top - _EPS * n
        if not keep.all():
            cov, idx, primary, weight = cov[:, keep], idx[keep], primary[keep], weight[keep]
            if len(idx) < size:
                return
        if size == 2:
            self.pairs(demand, cov, idx, primary, base, banned_pairs)
            return
        heavy = weight >= n / size - _EPS * n
        if self.best is None:
            nearest_count, heavy_count = len(idx), int(heavy.sum())
        else:
            room = self.best.primary - base.primary
            nearest_count = int((size * primary <= room).sum())
            heavy_count = int((heavy & (primary + (size - 1) * primary[0] <= room)).sum())
        positions = np.arange(len(idx))
        by_key = nearest_count <= heavy_count
        for p in positions if by_key else np.flatnonzero(heavy):
            if by_key:  # p is the member with the smallest key: the others come after it
                others = positions > p
            else:  # p is the heaviest member (ties: the first): the others are lighter
                others = (weight < weight[p]) | ((weight == weight[p]) & (positions > p))
            if self.best is not None:
                room = self.best.primary - base.primary
                if by_key and size * primary[p] > room:
                    return  # every later member's key is larger still
                if primary[p] + (size - 1) * primary[0] > room:
                    continue
            allowed = others
            if self.best is not None:
                # The child's members fit in what is left after this one.
                left = self.best.primary - base.primary - primary[p]
                allowed = others & (primary <= left - (size - 2) * primary[0])
            self.child(demand, cov, idx, int(p), allowed, size, base, cuts)
            if self.first and self.best is not None:
                return

    def child(
        self,
        demand: IntArray,
        cov: IntArray,
        idx: IntArray,
        p: int,
        others: np.ndarray,
        size: int,
        base: Found,
        cuts: list[frozenset[int]],
    ) -> None:
        residual = np.maximum(demand - cov[:, p], 0)
        rows = np.flatnonzero(residual)
        if not len(rows):
            return  # the member alone covers: no irredundant set of this size contains it
        sub = np.minimum(cov[np.ix_(rows, np.flatnonzero(others))], residual[rows, None])
        useful = sub.any(axis=0)
        self.node(
            residual[rows],
            sub[:, useful],
            idx[others][useful],
            size - 1,
            self.extend(base, (int(idx[p]),)),
            cuts,
        )

    def pairs(
        self,
        demand: IntArray,
        cov: IntArray,
        idx: IntArray,
        primary: IntArray,
        base: Found,
        banned_pairs: set[tuple[int, int]],
    ) -> None:
        secondary = self.keys.secondary[idx]
        # Rows (the member with the smaller key) in key order, a small block first: the
        # first pairs found bound the rest, so later rows and columns shrink.
        start, block = 0, 32
        while start < len(idx) - 1:
            rows = np.arange(start, min(start + block, len(idx)))
            cols = np.arange(start + 1, len(idx))
            if self.best is not None:
                room = self.best.primary - base.primary
                rows = rows[2 * primary[rows] <= room]
                if not len(rows):
                    return
                cols = cols[primary[cols] + primary[rows[0]] <= room]
                if not len(cols):
                    return
            # A pair block costs about one unit per 32 cells of its bit matrix.
            self.tick(len(rows) + len(cols) + len(rows) * len(cols) // 32)
            start += block
            block = max(32, min(4 * block, _MATRIX_CELLS // max(len(cols), 1)))
            ok = _pair_covers(demand, cov[:, rows], cov[:, cols])
            ok &= cols[None, :] > rows[:, None]
            for x, y in banned_pairs:
                ok[(idx[rows] == x)[:, None] & (idx[cols] == y)[None, :]] = False
            if not ok.any():
                continue
            if self.first:
                r, c = np.argwhere(ok)[0]
                self.offer(self.extend(base, (int(idx[rows[r]]), int(idx[cols[c]]))))
                return
            total = np.where(ok, primary[rows][:, None] + primary[cols][None, :], _NEVER)
            r, c = np.nonzero(total == total.min())
            a, b = rows[r], cols[c]
            best = np.lexsort((b, a, secondary[a] + secondary[b]))[0]
            self.offer(self.extend(base, (int(idx[a[best]]), int(idx[b[best]]))))


def best_set(
    target: Target,
    keys: Keys,
    size: int,
    *,
    candidates: IntArray | None = None,
    cuts: list[frozenset[int]] | None = None,
    incumbent: Found | None = None,
    first: bool = False,
    deadline: float = float("inf"),
    warm: bool = True,
    max_work: int | None = None,
    _budget: _Budget | None = None,
) -> Found | None:
    """The best set of exactly `size` candidates covering `target`, or None if there is none.

    Ties on the key sums go to the lexicographically smallest member tuple. `cuts` forbid
    every set containing one of them; `incumbent` (a known feasible set) bounds the search and
    is returned if nothing better exists; `first` stops at the first set found. Raises
    `SearchTimeout` (with the best set so far) when `deadline` (perf_counter) passes, and
    `SearchBudget` once its work (candidate columns handled, plus a fixed cost per node; warm
    starts included) passes `max_work`. `warm` first
    solves growing prefixes of the candidates (nearest first) for an incumbent.
    """
    if candidates is None:
        candidates = target.useful
    candidates = np.asarray(candidates, dtype=np.int64)
    budget = _Budget(max_work) if _budget is None else _budget
    prefix = _WARM_PREFIX
    while warm and size >= 3 and not first and incumbent is None and len(candidates) > 2 * prefix:
        # Warm start: the best set among the nearest candidates is usually close to the best
        # overall, and a tight incumbent is what lets the full search prune by distance.
        incumbent = best_set(
            target,
            keys,
            size,
            candidates=candidates[:prefix],
            cuts=cuts,
            deadline=deadline,
            warm=False,
            _budget=budget,
        )
        prefix *= 4
    search = _Search(keys, deadline, first, budget)
    if incumbent is not None:
        search.best = incumbent
    if len(candidates) < size:
        return search.best
    demand = target.demand
    cov = np.minimum(target.coverage[:, candidates], demand[:, None])
    # Narrow integers halve or better the memory every node copies (values are <= demand).
    for small in (np.int8, np.int16, np.int32):
        if demand.max(initial=0) <= np.iinfo(small).max:
            cov, demand = cov.astype(small), demand.astype(small)
            break
    search.node(demand, cov, candidates, size, Found(0, 0, ()), list(cuts or []))
    return search.best
