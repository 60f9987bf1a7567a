"""The wave MIP: orders routed jointly over shared stock and location capacity, solved exactly.

Data (for the orders O of one solve; l over each order's usable locations)
    q_oi      demand of line i of order o; s(o, i) its SKU;  Q_o = sum_i q_oi
    a_sl      units of SKU s at location l (shared by every order)
    C_l, V_l  orders / units location l can still take (absent: unlimited)
    c_oil     min(q_oi, a_s(o,i)l, V_l): what l can ship of line i of order o
    d_ol      distance from l to o's destination, whole metres
    f_ol      shipment cost, milli-units: shipment_cost_l + cost_per_km * km (cost objective)
    K_o       order o's max shipments (absent: none)
    P         orders with allow_partial;  H  orders with keep_lines_whole
Variables (x only where l holds some SKU of o, is allowed for o and has capacity left)
    x_ol in {0, 1}              l ships to o
    y_oil in 0..c_oil integer   units of line i of o shipped from l
    u_oi in 0..q_oi integer     units of line i unrouted (o in P)
    r_o in {0, 1}               order o refused (o not in P: whole order or nothing)
    z_oil in {0, 1}             line i of o ships from l (o in H)
Constraints
    (1) sum_l y_oil + u_oi = q_oi  (o in P);   sum_l y_oil + q_oi r_o = q_oi  (o not in P)
    (2) y_oil <= c_oil x_ol                               only a shipping location ships
    (3) sum_{o, i: s(o,i) = s} y_oil <= a_sl              shared stock (rows that can bind)
    (4) sum_l x_ol <= K_o                                 max shipments
    (5) o in H: y_oil <= c_oil z_oil, z_oil <= x_ol, sum_l z_oil <= 1     lines kept whole
    (6) sum_o x_ol <= C_l                                 order capacity (rows that can bind)
    (7) sum_{o, i} y_oil <= V_l                           unit capacity (rows that can bind)
    (8) stage bounds: each earlier stage's objective <= its optimum
    (9) sum_l x_ol + k_o sum_i u_oi >= k_o  (o in P);  sum_l x_ol + k_o r_o >= k_o  (o not in P)
        where k_o is the fewest shipments that route o in full with the stock to itself:
        a routed order ships at least that often. Valid (one unrouted unit satisfies it) and
        what makes the LP bound as strong as the sum of the orders' own optima.
Objective, lexicographic, one stage per level (8), each solved to gap 0 by HiGHS:
    U = sum u_oi + sum_{o not in P} Q_o r_o      unrouted units
    N = sum x_ol                                  shipments
    F = sum f_ol x_ol                             cost (cost objective only)
    D = sum d_ol x_ol                             distance
    lexicographic: min W U + N (W = number of x + 1, so U comes first exactly), then min D;
    cost: min U, then F, then N, then D.

With x and z fixed, (1)-(3) and (7) are a transportation problem with a laminar family on the
location side, so y would be integral anyway; it is declared integer so no rounding is needed.
HiGHS comes through scipy (`scipy.optimize.milp`), which takes the sparse matrix as built here
in numpy: OR-Tools' MathOpt builds a model one Python call per term, far too slow at a million
nonzeros (docs/solver-notes.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from solver import geo
from solver.problem import FloatArray, IntArray, Objective
from solver.wave_problem import WaveProblem

BoolArray = npt.NDArray[np.bool_]
Allocation = dict[int, dict[str, int]]
"""Location position -> {sku: units} for one order."""


@dataclass(frozen=True)
class Columns:
    """The variables of one solve, as parallel arrays (x pairs, y entries, u lines, r orders)."""

    orders: IntArray  # the wave's order positions solved here
    pair_order: IntArray  # x_ol: position in `orders`
    pair_location: IntArray
    pair_distance: IntArray  # d_ol, metres
    pair_cost: IntArray  # f_ol, milli-units
    entry_pair: IntArray  # y_oil: its x
    entry_line: IntArray  # global line number (over the orders solved here)
    entry_sku: IntArray
    entry_cap: IntArray  # c_oil
    entry_whole: BoolArray  # the entry's order keeps lines whole (it has a z)
    line_order: IntArray
    line_quantity: IntArray
    line_partial: BoolArray  # the line's order allows partial (it has a u)
    order_partial: BoolArray

    @property
    def sizes(self) -> tuple[int, int, int, int, int]:
        """(x, y, z, u, r) counts."""
        return (
            len(self.pair_order),
            len(self.entry_pair),
            int(self.entry_whole.sum()),
            int(self.line_partial.sum()),
            int((~self.order_partial).sum()),
        )


@dataclass(frozen=True)
class WaveAnswer:
    """One solve's answer: each order's allocation (None: refused), the objective reached per
    stage, a lexicographic lower bound, and whether every stage was proven."""

    allocations: list[Allocation | None]
    bound: tuple[int, int, int, int]  # (unrouted, cost, shipments, distance)
    proven: bool
    stages: list[str]


def columns(problem: WaveProblem, orders: Sequence[int]) -> Columns:
    """The variables for `orders` over the problem's stock and capacity."""
    stock = problem.stock
    orders_left = problem.order_capacity()
    units_left = problem.unit_capacity()
    lat, lon = problem.locations.latitude, problem.locations.longitude
    fixed = np.array([x.shipment_cost for x in problem.locations], dtype=np.float64)
    cost_objective = problem.objective is Objective.COST
    pairs: list[tuple[IntArray, ...]] = []
    entries: list[tuple[IntArray, ...]] = []
    lines: list[tuple[IntArray, ...]] = []
    first_pair = first_line = 0
    for position, k in enumerate(orders):
        order = problem.orders[k]
        allowed = problem.allowed(k)
        allowed = allowed[(orders_left[allowed] > 0) & (units_left[allowed] > 0)]
        quantity = np.array([x.quantity for x in order.lines], dtype=np.int64)
        rows = problem.rows(k)
        cap = np.minimum(
            np.minimum(stock[np.ix_(rows, allowed)], units_left[allowed]), quantity[:, None]
        )
        used = cap.any(axis=0)
        location = allowed[used]
        cap = cap[:, used]
        km: FloatArray = geo.distances_km(lat[location], lon[location], *order.destination)
        cost = (
            np.rint((fixed[location] + problem.cost_per_km * km) * 1000.0).astype(np.int64)
            if cost_objective
            else np.zeros(len(location), dtype=np.int64)
        )
        pairs.append(
            (
                np.full(len(location), position, dtype=np.int64),
                location.astype(np.int64),
                np.rint(km * 1000.0).astype(np.int64),
                cost,
            )
        )
        line, column = np.nonzero(cap)
        entries.append(
            (
                first_pair + column,
                first_line + line,
                rows[line].astype(np.int64),
                cap[line, column],
                np.full(len(line), order.keep_lines_whole),
            )
        )
        lines.append(
            (
                np.full(len(quantity), position, dtype=np.int64),
                quantity,
                np.full(len(quantity), order.allow_partial),
            )
        )
        first_pair += len(location)
        first_line += len(quantity)

    def joined(parts: list[tuple[IntArray, ...]], field: int, dtype: type) -> np.ndarray:
        if not parts:
            return np.zeros(0, dtype=dtype)
        return np.concatenate([p[field] for p in parts]).astype(dtype)

    return Columns(
        orders=np.asarray(orders, dtype=np.int64),
        pair_order=joined(pairs, 0, np.int64),
        pair_location=joined(pairs, 1, np.int64),
        pair_distance=joined(pairs, 2, np.int64),
        pair_cost=joined(pairs, 3, np.int64),
        entry_pair=joined(entries, 0, np.int64),
        entry_line=joined(entries, 1, np.int64),
        entry_sku=joined(entries, 2, np.int64),
        entry_cap=joined(entries, 3, np.int64),
        entry_whole=joined(entries, 4, bool),
        line_order=joined(lines, 0, np.int64),
        line_quantity=joined(lines, 1, np.int64),
        line_partial=joined(lines, 2, bool),
        order_partial=np.array([problem.orders[k].allow_partial for k in orders], dtype=bool),
    )


class _Rows:
    """Constraint rows gathered as COO triplets: lo <= A v <= hi."""

    def __init__(self) -> None:
        self.row: list[IntArray] = []
        self.col: list[IntArray] = []
        self.val: list[IntArray] = []
        self.lo: list[FloatArray] = []
        self.hi: list[FloatArray] = []
        self.count = 0

    def add(
        self, row: IntArray, col: IntArray, val: IntArray, lo: FloatArray, hi: FloatArray
    ) -> None:
        """Rows numbered 0..len(lo)-1 in `row`, shifted after the rows already added."""
        self.row.append(row + self.count)
        self.col.append(col)
        self.val.append(val)
        self.lo.append(np.asarray(lo, dtype=np.float64))
        self.hi.append(np.asarray(hi, dtype=np.float64))
        self.count += len(lo)

    def constraint(self, width: int) -> LinearConstraint:
        matrix = scipy.sparse.csr_array(
            (
                np.concatenate(self.val).astype(np.float64),
                (np.concatenate(self.row), np.concatenate(self.col)),
            ),
            shape=(self.count, width),
        )
        return LinearConstraint(matrix, np.concatenate(self.lo), np.concatenate(self.hi))


class _Layout:
    """Where each family of variables sits in the vector [x | y | z | u | r]."""

    def __init__(self, cols: Columns) -> None:
        nx, ny, nz, nu, nr = cols.sizes
        self.x, self.y, self.z, self.u, self.r = (
            0,
            nx,
            nx + ny,
            nx + ny + nz,
            nx + ny + nz + nu,
        )
        self.width = nx + ny + nz + nu + nr
        self.z_of_entry = np.full(ny, -1, dtype=np.int64)
        self.z_of_entry[cols.entry_whole] = self.z + np.arange(nz)
        self.u_of_line = np.full(len(cols.line_order), -1, dtype=np.int64)
        self.u_of_line[cols.line_partial] = self.u + np.arange(nu)
        self.r_of_order = np.full(len(cols.orders), -1, dtype=np.int64)
        self.r_of_order[~cols.order_partial] = self.r + np.arange(nr)


def _add_demand(rows: _Rows, cols: Columns, at: _Layout) -> None:
    """(1) sum_l y_oil + u_oi = q_oi, or + q_oi r_o when the order is whole-or-nothing."""
    n_lines = len(cols.line_order)
    ny = len(cols.entry_pair)
    slack = np.where(cols.line_partial, at.u_of_line, at.r_of_order[cols.line_order])  # u_oi or r_o
    slack_coef = np.where(cols.line_partial, 1, cols.line_quantity)
    q = cols.line_quantity.astype(np.float64)
    rows.add(
        np.concatenate([cols.entry_line, np.arange(n_lines)]),
        np.concatenate([at.y + np.arange(ny), slack]),
        np.concatenate([np.ones(ny, dtype=np.int64), slack_coef]),
        q,
        q,
    )


def _add_linking(rows: _Rows, cols: Columns, at: _Layout) -> None:
    """(2) y_oil <= c_oil x_ol; (5) for whole lines through z: y <= c z, z <= x, sum_l z <= 1."""
    split = np.flatnonzero(~cols.entry_whole)
    whole = np.flatnonzero(cols.entry_whole)
    for chosen, gate in ((split, at.x + cols.entry_pair[split]), (whole, at.z_of_entry[whole])):
        n = len(chosen)
        rows.add(
            np.tile(np.arange(n), 2),
            np.concatenate([at.y + chosen, gate]),
            np.concatenate([np.ones(n, dtype=np.int64), -cols.entry_cap[chosen]]),
            np.full(n, -np.inf),
            np.zeros(n),
        )
    n = len(whole)
    if n:
        rows.add(
            np.tile(np.arange(n), 2),
            np.concatenate([at.z_of_entry[whole], at.x + cols.entry_pair[whole]]),
            np.concatenate([np.ones(n, dtype=np.int64), -np.ones(n, dtype=np.int64)]),
            np.full(n, -np.inf),
            np.zeros(n),
        )
        line_ids, line_row = np.unique(cols.entry_line[whole], return_inverse=True)
        rows.add(
            line_row,
            at.z_of_entry[whole],
            np.ones(n, dtype=np.int64),
            np.full(len(line_ids), -np.inf),
            np.ones(len(line_ids)),
        )


def _add_binding_sums(
    rows: _Rows, keys: IntArray, terms: IntArray, coefs: IntArray, limits: IntArray
) -> None:
    """sum over terms with the same key <= its limit, only for keys whose terms can exceed it
    (the others can never bind). `limits` is indexed by key."""
    if not len(keys):
        return
    ids, row = np.unique(keys, return_inverse=True)
    most = np.bincount(row, weights=coefs)
    binding = most > limits[ids]
    keep = binding[row]
    new_row = np.cumsum(binding) - 1
    rows.add(
        new_row[row[keep]],
        terms[keep],
        np.ones(int(keep.sum()), dtype=np.int64),
        np.full(int(binding.sum()), -np.inf),
        limits[ids[binding]].astype(np.float64),
    )


def _add_stock(rows: _Rows, cols: Columns, at: _Layout, problem: WaveProblem) -> None:
    """(3) sum_{o,i: s(o,i)=s} y_oil <= a_sl."""
    n_loc = len(problem.locations)
    location = cols.pair_location[cols.entry_pair]
    _add_binding_sums(
        rows,
        cols.entry_sku * n_loc + location,
        at.y + np.arange(len(cols.entry_pair)),
        cols.entry_cap,
        problem.stock.reshape(-1),
    )


def _add_max_shipments(rows: _Rows, cols: Columns, at: _Layout, problem: WaveProblem) -> None:
    """(4) sum_l x_ol <= K_o."""
    limit = np.array(
        [problem.orders[k].max_shipments or 2**40 for k in cols.orders], dtype=np.int64
    )
    _add_binding_sums(
        rows,
        cols.pair_order,
        at.x + np.arange(len(cols.pair_order)),
        np.ones(len(cols.pair_order), dtype=np.int64),
        limit,
    )


def _add_capacity(rows: _Rows, cols: Columns, at: _Layout, problem: WaveProblem) -> None:
    """(6) sum_o x_ol <= C_l;  (7) sum_{o,i} y_oil <= V_l."""
    _add_binding_sums(
        rows,
        cols.pair_location,
        at.x + np.arange(len(cols.pair_order)),
        np.ones(len(cols.pair_order), dtype=np.int64),
        problem.order_capacity(),
    )
    _add_binding_sums(
        rows,
        cols.pair_location[cols.entry_pair],
        at.y + np.arange(len(cols.entry_pair)),
        cols.entry_cap,
        problem.unit_capacity(),
    )


def _add_least_shipments(rows: _Rows, cols: Columns, at: _Layout, least: IntArray) -> None:
    """(9) sum_l x_ol + k_o (sum_i u_oi or r_o) >= k_o, for orders with k_o > 0."""
    least = np.asarray(least, dtype=np.int64)
    nx = len(cols.pair_order)
    partial_lines = np.flatnonzero(cols.line_partial)
    whole = np.flatnonzero(~cols.order_partial)
    terms = np.concatenate(
        [at.x + np.arange(nx), at.u_of_line[partial_lines], at.r_of_order[whole]]
    )
    owner = np.concatenate([cols.pair_order, cols.line_order[partial_lines], whole])
    coef = np.concatenate(
        [np.ones(nx, dtype=np.int64), least[cols.line_order[partial_lines]], least[whole]]
    )
    keep = least[owner] > 0
    orders = np.flatnonzero(least > 0)
    row = np.searchsorted(orders, owner[keep])
    rows.add(
        row, terms[keep], coef[keep], least[orders].astype(np.float64), np.full(len(orders), np.inf)
    )


@dataclass(frozen=True)
class _Stage:
    name: str
    weights: FloatArray


def _stages(cols: Columns, at: _Layout, cost_objective: bool) -> list[_Stage]:
    """The objective's levels as weight vectors over the variables (module docstring)."""

    def vector(part: str, values: IntArray | int) -> FloatArray:
        weights = np.zeros(at.width)
        if part == "x":
            weights[at.x : at.y] = values
        elif part == "unrouted":
            weights[at.u : at.r] = 1.0
            weights[at.r_of_order[~cols.order_partial]] = np.bincount(
                cols.line_order, weights=cols.line_quantity, minlength=len(cols.orders)
            )[~cols.order_partial]
        return weights

    unrouted = vector("unrouted", 0)
    shipments = vector("x", 1)
    distance = vector("x", cols.pair_distance)
    if cost_objective:
        return [
            _Stage("unrouted", unrouted),
            _Stage("cost", vector("x", cols.pair_cost)),
            _Stage("shipments", shipments),
            _Stage("distance", distance),
        ]
    weight = float(len(cols.pair_order) + 1)
    return [
        _Stage("unrouted+shipments", weight * unrouted + shipments),
        _Stage("distance", distance),
    ]


def solve_columns(
    problem: WaveProblem, cols: Columns, deadline: float, least_shipments: IntArray | None = None
) -> WaveAnswer | None:
    """The lexicographic optimum over `cols`, stage by stage within `deadline` (perf_counter).
    `least_shipments`: k_o of (9) per order of `cols` (0: unknown). None when the first stage
    finds no solution in time."""
    at = _Layout(cols)
    rows = _Rows()
    if least_shipments is not None:
        _add_least_shipments(rows, cols, at, least_shipments)
    _add_demand(rows, cols, at)
    _add_linking(rows, cols, at)
    _add_stock(rows, cols, at, problem)
    _add_max_shipments(rows, cols, at, problem)
    _add_capacity(rows, cols, at, problem)
    upper = np.ones(at.width)
    upper[at.y : at.z] = cols.entry_cap
    upper[at.u : at.r] = cols.line_quantity[cols.line_partial]
    bounds = Bounds(np.zeros(at.width), upper)
    integrality = np.ones(at.width)
    stages = _stages(cols, at, problem.objective is Objective.COST)
    constraint = rows.constraint(at.width)
    solution: FloatArray | None = None
    levels: list[tuple[int, int, bool]] = []  # per stage run: (value, bound, proven)
    held: list[LinearConstraint] = []
    for stage in stages:
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        result = milp(
            stage.weights,
            constraints=[constraint, *held],
            bounds=bounds,
            integrality=integrality,
            options={"time_limit": left, "mip_rel_gap": 0.0, "presolve": True},
        )
        if result.x is None:
            if solution is None:
                return None
            break
        solution = np.rint(result.x)
        value = round(float(stage.weights @ solution))
        proven = result.status == 0
        dual = getattr(result, "mip_dual_bound", None)
        bound = value if proven or dual is None else min(math.ceil(dual - 1e-6), value)
        levels.append((value, bound, proven))
        if not proven:
            break
        # (8) hold this stage's optimum in the next ones
        held.append(LinearConstraint(stage.weights.reshape(1, -1), -np.inf, value + 0.5))
    if solution is None:
        return None
    return WaveAnswer(
        allocations=_allocations(problem, cols, at, solution),
        bound=_bound(stages, levels, len(cols.pair_order) + 1),
        proven=len(levels) == len(stages) and all(p for _, _, p in levels),
        stages=[s.name for s in stages[: len(levels)]],
    )


def _bound(
    stages: list[_Stage], levels: list[tuple[int, int, bool]], weight: int
) -> tuple[int, int, int, int]:
    """A lexicographic lower bound (unrouted, cost, shipments, distance): each proven stage's
    optimum, then the first unproven stage's dual bound, and 0 for the levels after it."""
    found: dict[str, int] = {}
    for stage, (value, bound, proven) in zip(stages, levels, strict=False):
        level = value if proven else bound
        if stage.name == "unrouted+shipments":
            found["unrouted"], found["shipments"] = divmod(level, weight)
        else:
            found[stage.name] = level
        if not proven:
            break
    return (
        found.get("unrouted", 0),
        found.get("cost", 0),
        found.get("shipments", 0),
        found.get("distance", 0),
    )


def _allocations(
    problem: WaveProblem, cols: Columns, at: _Layout, solution: FloatArray
) -> list[Allocation | None]:
    """Each order's units per location from y (None for a refused order)."""
    units = solution[at.y : at.z].astype(np.int64)
    found: list[Allocation] = [{} for _ in cols.orders]
    for e in np.flatnonzero(units > 0):
        pair = int(cols.entry_pair[e])
        order = int(cols.pair_order[pair])
        location = int(cols.pair_location[pair])
        sku = problem.skus[int(cols.entry_sku[e])]
        found[order].setdefault(location, {})[sku] = int(units[e])
    refused = np.zeros(len(cols.orders), dtype=bool)
    refused[~cols.order_partial] = solution[at.r_of_order[~cols.order_partial]] > 0.5
    return [None if refused[o] else found[o] for o in range(len(cols.orders))]
