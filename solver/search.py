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
_MATRIX_CELLS = 4_000_000
"""Pair matrices are built in row blocks of at most this many cells (bounds memory)."""


class SearchTimeout(Exception):  # noqa: N818 - control flow, carries the incumbent
    """The deadline passed; `best` is the best set found before it (or None)."""

    def __init__(self, best: Found | None) -> None:
        super().__init__("deadline reached")
        self.best = best


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


def _weights(demand: IntArray, coverage: IntArray) -> np.ndarray:
    capped = np.minimum(coverage, demand[:, None])
    return np.asarray((capped / demand[:, None]).sum(axis=0), dtype=np.float64)


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
) -> tuple[bool, set[int], set[tuple[int, int]], list[frozenset[int]]]:
    """What the no-good cuts forbid below a node that has chosen `chosen`.

    Returns (node is dead, banned candidates, banned pairs, cuts still open further down).
    """
    banned: set[int] = set()
    pairs: set[tuple[int, int]] = set()
    open_: list[frozenset[int]] = []
    for cut in cuts:
        rest = cut - chosen
        if not rest:
            return True, banned, pairs, open_
        if len(rest) == 1:
            banned |= rest
        elif len(rest) == 2:
            a, b = sorted(rest)
            pairs.add((a, b))
            open_.append(rest)
        else:
            open_.append(rest)
    return False, banned, pairs, open_


class _Search:
    def __init__(self, keys: Keys, deadline: float, first: bool) -> None:
        self.keys = keys
        self.deadline = deadline
        self.first = first
        self.best: Found | None = None
        self.nodes = 0

    def bound(self, limit: int | None) -> int | None:
        if self.best is None:
            return limit
        return self.best.primary if limit is None else min(limit, self.best.primary)

    def offer(self, found: Found) -> None:
        if self.best is None or found < self.best:
            self.best = found

    def tick(self) -> None:
        self.nodes += 1
        if time.perf_counter() > self.deadline:
            raise SearchTimeout(self.best)

    # s = 1
    def singles(
        self, demand: IntArray, coverage: IntArray, cand: IntArray, base: Found, cuts: list
    ) -> None:
        dead, banned, _, _ = _cut_filters(cuts, frozenset(base.members))
        if dead or not len(cand):
            return
        ok = np.all(coverage[:, cand] >= demand[:, None], axis=0)
        for l in cand[ok]:
            if int(l) in banned:
                continue
            self.offer(self.extend(base, (int(l),)))
            return  # candidates are in key order: the first one is the best

    def extend(self, base: Found, members: tuple[int, ...]) -> Found:
        keys = self.keys
        index = list(members)
        return Found(
            base.primary + int(keys.primary[index].sum()),
            base.secondary + int(keys.secondary[index].sum()),
            tuple(sorted(base.members + members)),
        )

    # s = 2
    def pairs(
        self,
        demand: IntArray,
        coverage: IntArray,
        cand: IntArray,
        base: Found,
        cuts: list,
        limit: int | None,
    ) -> None:
        dead, banned, banned_pairs, _ = _cut_filters(cuts, frozenset(base.members))
        if dead:
            return
        if banned:
            cand = cand[~np.isin(cand, list(banned))]
        if len(cand) < 2:
            return
        n = len(demand)
        weight = _weights(demand, coverage[:, cand])
        cand = cand[weight >= n - weight.max() - _EPS * n]
        if len(cand) < 2:
            return
        primary = self.keys.primary
        bound = self.bound(limit)
        if bound is not None:
            room = bound - base.primary
            low = int(primary[cand[0]])
            cols = cand[primary[cand] + low <= room]
            rows = cols[2 * primary[cols] <= room]
        else:
            rows = cols = cand
        if not len(rows) or len(cols) < 2:
            return
        block = max(1, _MATRIX_CELLS // len(cols))
        secondary = self.keys.secondary
        for start in range(0, len(rows), block):
            self.tick()
            part = rows[start : start + block]
            ok = _pair_covers(demand, coverage[:, part], coverage[:, cols])
            ok &= cols[None, :] > part[:, None]
            if not ok.any():
                continue
            r, c = np.nonzero(ok)
            a, b = part[r], cols[c]
            pair_primary = primary[a] + primary[b]
            if bound is not None:
                keep = pair_primary + base.primary <= self.bound(limit)
                a, b, pair_primary = a[keep], b[keep], pair_primary[keep]
            if banned_pairs:
                keep = np.array([(int(x), int(y)) not in banned_pairs for x, y in zip(a, b)])
                if len(keep):
                    a, b, pair_primary = a[keep], b[keep], pair_primary[keep]
            if not len(a):
                continue
            pair_secondary = secondary[a] + secondary[b]
            best = np.lexsort((b, a, pair_secondary, pair_primary))[0]
            self.offer(self.extend(base, (int(a[best]), int(b[best]))))
            if self.first:
                return

    # s >= 3
    def sets(
        self,
        demand: IntArray,
        coverage: IntArray,
        cand: IntArray,
        size: int,
        base: Found,
        cuts: list,
        limit: int | None,
    ) -> None:
        self.tick()
        if size == 1:
            bound = self.bound(limit)
            if bound is not None:
                cand = cand[self.keys.primary[cand] + base.primary <= bound]
            self.singles(demand, coverage, cand, base, cuts)
            return
        if size == 2:
            self.pairs(demand, coverage, cand, base, cuts, limit)
            return
        dead, _, _, _ = _cut_filters(cuts, frozenset(base.members))
        if dead or len(cand) < size:
            return
        n = len(demand)
        primary = self.keys.primary
        weight = _weights(demand, coverage[:, cand])
        # Sum of weights over the set >= n: the other size-1 members add at most their weights.
        top = np.sort(weight)[::-1][: size - 1].sum()
        cand_ok = weight >= n - top - _EPS * n
        cand, weight = cand[cand_ok], weight[cand_ok]
        if len(cand) < size:
            return
        low = int(primary[cand[0]])
        bound = self.bound(limit)
        room = None if bound is None else bound - base.primary
        heavy = weight >= n / size - _EPS * n
        if room is None:
            nearest_count = len(cand)
            heavy_count = int(heavy.sum())
        else:
            nearest_count = int((size * primary[cand] <= room).sum())
            heavy_count = int((heavy & (primary[cand] + (size - 1) * low <= room)).sum())
        if nearest_count <= heavy_count:
            self._branch_nearest(demand, coverage, cand, size, base, cuts, limit)
        else:
            self._branch_heavy(demand, coverage, cand, weight, size, base, cuts, limit)

    def _child(
        self,
        demand: IntArray,
        coverage: IntArray,
        member: int,
        cand: IntArray,
        size: int,
        base: Found,
        cuts: list,
        limit: int | None,
    ) -> None:
        residual = np.maximum(demand - coverage[:, member], 0)
        rows = np.flatnonzero(residual)
        if not len(rows):
            return  # the member alone covers: no irredundant set of this size contains it
        child = self.extend(base, (member,))
        sub_coverage = np.minimum(coverage[rows], residual[rows, None])
        useful = cand[sub_coverage[:, cand].any(axis=0)]
        self.sets(residual[rows], sub_coverage, useful, size - 1, child, cuts, limit)

    def _branch_nearest(
        self,
        demand: IntArray,
        coverage: IntArray,
        cand: IntArray,
        size: int,
        base: Found,
        cuts: list,
        limit: int | None,
    ) -> None:
        primary = self.keys.primary
        for position, member in enumerate(cand):
            bound = self.bound(limit)
            if bound is not None and size * primary[member] > bound - base.primary:
                return
            self._child(demand, coverage, int(member), cand[position + 1 :], size, base, cuts,
                        limit)
            if self.first and self.best is not None:
                return

    def _branch_heavy(
        self,
        demand: IntArray,
        coverage: IntArray,
        cand: IntArray,
        weight: np.ndarray,
        size: int,
        base: Found,
        cuts: list,
        limit: int | None,
    ) -> None:
        primary = self.keys.primary
        n = len(demand)
        low = int(primary[cand[0]])
        positions = np.arange(len(cand))
        for position in np.flatnonzero(weight >= n / size - _EPS * n):
            member = int(cand[position])
            bound = self.bound(limit)
            if bound is not None and primary[member] + (size - 1) * low > bound - base.primary:
                continue
            lighter = (weight < weight[position]) | (
                (weight == weight[position]) & (positions > position)
            )
            self._child(demand, coverage, member, cand[lighter], size, base, cuts, limit)
            if self.first and self.best is not None:
                return


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
) -> Found | None:
    """The best set of exactly `size` candidates covering `target`, or None if there is none.

    Ties on the key sums go to the lexicographically smallest member tuple. `cuts` forbid
    every set containing one of them; `incumbent` (a known feasible set) bounds the search and
    is returned if nothing better exists; `first` stops at the first set found. Raises
    `SearchTimeout` (with the best set so far) when `deadline` (perf_counter) passes.
    """
    if candidates is None:
        candidates = target.useful
    search = _Search(keys, deadline, first)
    if incumbent is not None:
        search.best = incumbent
    empty = Found(0, 0, ())
    search.sets(
        target.demand, target.coverage, np.asarray(candidates, dtype=np.int64), size, empty,
        list(cuts or []), None,
    )
    return search.best
