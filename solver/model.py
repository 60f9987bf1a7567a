"""The routing MIP: DESIGN.md section 5's model with the allocation projected out.

Data (over the candidates left after reduction)
    q_i       demand of line i (for stages after the first, the part every best set routes)
    c_il      min(a_il, q_i): what location l can ship of line i
    d_l       distance from l to the destination, whole metres
    f_l       shipment cost of l in milli-units (cost objective): shipment_cost + cost_per_km * km
    r_l       rank of l by (priority, location id): the final tie-break
    K         options.max_shipments;  S_1..S_t  location sets already returned (alternatives)

DESIGN.md's model has x_l in {0,1} (l ships) and y_il in Z (units of line i from l), with
(1) sum_l y_il = q_i (+ u_i unrouted), (2) y_il <= c_il x_l, (3) sum_l x_l <= K and
(4) keep_lines_whole: y_il in {0, q_i}. Lines are independent given x, so y can be projected
out: x is feasible exactly when every line can be covered by the chosen locations, and the
allocation is filled in afterwards (`solver.solve._allocate`). The model solved here is

Variables
    x_l in {0, 1}                 location l ships
    u_i in [0, q_i] integer       units of line i left unrouted (only with allow_partial)
    w_iv in {0, 1}                some chosen location ships >= v units of line i
                                  (only keep_lines_whole with allow_partial; v over the
                                  distinct values of c_il)
Constraints
    (1) sum_l c_il x_l + u_i >= q_i                 every line covered; the projection of
                                                    DESIGN (1)+(2). keep_lines_whole without
                                                    allow_partial is (1) with c_il replaced by
                                                    q_i [c_il >= q_i]: some one location ships
                                                    the whole line (DESIGN (4)).
    (2) w_iv <= sum_{l: c_il >= v} x_l,             keep_lines_whole with allow_partial: the
        u_i + sum_v (v - v_prev) w_iv >= q_i        line ships from its best chosen location
    (3) lo <= sum_l x_l <= hi                       max_shipments (DESIGN (3)); later stages fix
                                                    the count found by the earlier stage
    (4) sum_{l in S_j} x_l <= |S_j| - 1             no-good cut per returned set: excludes it
                                                    and all its supersets (alternatives)
    (5) sum_i u_i <= U*,  sum_l f_l x_l <= F*       the optimum of earlier lexicographic stages
Objectives, one per stage, each solved to gap 0 (DESIGN: a weighted single objective with a
non-zero gap returned longer routes):
    U: min sum_i u_i     N: min sum_l x_l     F: min sum_l f_l x_l
    D: min sum_l (d_l * W + r_l) x_l  with W = s * rank_span, so ties on metres go to the smaller
       rank sum (exact in CP-SAT's integers; SCIP and HiGHS work in doubles, where the
       objective stays below 2^53 and a gap under one unit counts as zero)

Backend. All three are built from the same `_add_*` functions; HiGHS (through MathOpt) is the
default: on the benchmark instances it proved the stages as fast as any, and CP-SAT (one
worker, deterministic) was slowest (`benchmarks/solver_bench.py --backends`).
`benchmarks/solver_ladder.py` measures each step from the straightforward model (y variables,
one weighted objective) to this one and the exact search in front of it.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from solver.problem import IntArray

BACKENDS = ("cpsat", "scip", "highs")
DEFAULT_BACKEND = "highs"
_PRESOLVE_SECONDS_PER_NONZERO = 3e-5
"""HiGHS's MIP presolve runs to its end whatever the time limit: a stage given less time than
this per nonzero (the slowest presolve seen) solves without it, and so ends near its limit."""


@dataclass(frozen=True)
class MipData:
    """One stage's data: candidate columns `cand` (core positions) and their coverage."""

    cand: IntArray
    demand: IntArray
    coverage: IntArray
    partial: bool = False
    whole_levels: bool = False


@dataclass(frozen=True)
class Stage:
    """What to minimise and which earlier optima to hold (family (5))."""

    objective: str  # "unrouted" | "count" | "cost" | "distance"
    weights: IntArray | None = None  # per-candidate objective weights for cost / distance
    count_lo: int = 0
    count_hi: int | None = None
    max_unrouted: int | None = None
    cost_weights: IntArray | None = None
    max_cost: int | None = None
    cuts: Sequence[frozenset[int]] = ()
    hint: Sequence[int] = ()


@dataclass
class MipResult:
    """A stage's answer; `members` are core positions of the best set found."""

    members: tuple[int, ...] | None
    objective: int | None
    bound: float
    optimal: bool
    infeasible: bool
    backend: str
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class _Builder(Protocol):
    def bools(self, count: int) -> list[Any]: ...
    def ints(self, upper: Sequence[int]) -> list[Any]: ...
    def add(self, terms: Sequence[Any], coefs: Sequence[int], lo: float, hi: float) -> None: ...
    def minimize(self, terms: Sequence[Any], coefs: Sequence[int]) -> None: ...
    def hint(self, terms: Sequence[Any], values: Sequence[int]) -> None: ...
    def solve(
        self, time_limit: float, threads: int, presolve: bool
    ) -> tuple[str, float | None, float]: ...
    def value(self, term: Any) -> float: ...


def _lean_cp_model(cp_model: Any) -> Any:
    """A CpModel without the camelCase aliases CpModel.__init__ adds to every instance: that
    loop over dir() costs more than solving most of our stages."""

    global _LEAN_CP_MODEL  # noqa: PLW0603 - the subclass is built once, on first use
    if _LEAN_CP_MODEL is None:

        class LeanCpModel(cp_model.CpModel):  # type: ignore[misc]
            def _add_pre_pep8_methods(self) -> None:
                pass

        _LEAN_CP_MODEL = LeanCpModel
    return _LEAN_CP_MODEL()


_LEAN_CP_MODEL: Any = None


class _CpSat:
    def __init__(self) -> None:
        from ortools.sat.python import cp_model  # noqa: PLC0415 - heavy import, on first use

        self.cp = cp_model
        self.model = _lean_cp_model(cp_model)
        self.solver = cp_model.CpSolver()

    def bools(self, count: int) -> list[Any]:
        return [self.model.new_bool_var("") for _ in range(count)]

    def ints(self, upper: Sequence[int]) -> list[Any]:
        return [self.model.new_int_var(0, int(u), "") for u in upper]

    def add(self, terms: Sequence[Any], coefs: Sequence[int], lo: float, hi: float) -> None:
        expr = self.cp.LinearExpr.weighted_sum(list(terms), [int(c) for c in coefs])
        lo_i = -(2**62) if math.isinf(lo) else int(lo)
        hi_i = 2**62 if math.isinf(hi) else int(hi)
        self.model.add_linear_constraint(expr, lo_i, hi_i)

    def minimize(self, terms: Sequence[Any], coefs: Sequence[int]) -> None:
        self.model.minimize(self.cp.LinearExpr.weighted_sum(list(terms), [int(c) for c in coefs]))

    def hint(self, terms: Sequence[Any], values: Sequence[int]) -> None:
        for term, value in zip(terms, values, strict=True):
            self.model.add_hint(term, int(value))

    def solve(
        self, time_limit: float, threads: int, presolve: bool
    ) -> tuple[str, float | None, float]:
        params = self.solver.parameters
        params.max_time_in_seconds = max(time_limit, 0.001)
        params.num_workers = threads
        params.relative_gap_limit = 0.0
        params.absolute_gap_limit = 0.0
        status = self.solver.solve(self.model)
        name = {
            self.cp.OPTIMAL: "optimal",
            self.cp.FEASIBLE: "feasible",
            self.cp.INFEASIBLE: "infeasible",
        }.get(status, "unknown")
        objective = self.solver.objective_value if name in {"optimal", "feasible"} else None
        return name, objective, float(self.solver.best_objective_bound)

    def value(self, term: Any) -> float:
        return float(self.solver.value(term))


class _MathOpt:
    def __init__(self, backend: str) -> None:
        from ortools.math_opt.python import mathopt  # noqa: PLC0415 - heavy import

        self.mo = mathopt
        self.backend = backend
        self.model = mathopt.Model()
        self.hints: dict[Any, float] = {}
        self.result: Any = None

    def bools(self, count: int) -> list[Any]:
        return [self.model.add_binary_variable() for _ in range(count)]

    def ints(self, upper: Sequence[int]) -> list[Any]:
        return [self.model.add_integer_variable(lb=0, ub=float(u)) for u in upper]

    def add(self, terms: Sequence[Any], coefs: Sequence[int], lo: float, hi: float) -> None:
        expr = self.mo.fast_sum(float(c) * t for c, t in zip(coefs, terms, strict=True))
        self.model.add_linear_constraint(lb=lo, expr=expr, ub=hi)

    def minimize(self, terms: Sequence[Any], coefs: Sequence[int]) -> None:
        self.model.minimize(
            self.mo.fast_sum(float(c) * t for c, t in zip(coefs, terms, strict=True))
        )

    def hint(self, terms: Sequence[Any], values: Sequence[int]) -> None:
        self.hints.update({t: float(v) for t, v in zip(terms, values, strict=True)})

    def solve(
        self, time_limit: float, threads: int, presolve: bool
    ) -> tuple[str, float | None, float]:
        mo = self.mo
        solver_type = mo.SolverType.GSCIP if self.backend == "scip" else mo.SolverType.HIGHS
        params = mo.SolveParameters(
            time_limit=datetime.timedelta(seconds=max(time_limit, 0.001)),
            relative_gap_tolerance=0.0,
            # Every objective here is integral, so a gap below one unit is a gap of zero (and
            # asking doubles for exactly 0 at 1e13 can keep a solver proving forever).
            absolute_gap_tolerance=0.5,
            threads=threads if self.backend == "scip" else None,
            presolve=None if presolve else mo.Emphasis.OFF,
        )
        model_params = mo.ModelSolveParameters()
        if self.hints and self.backend == "scip":
            model_params = mo.ModelSolveParameters(
                solution_hints=[mo.SolutionHint(variable_values=self.hints)]
            )
        self.result = mo.solve(self.model, solver_type, params=params, model_params=model_params)
        reason = self.result.termination.reason
        names = {
            mo.TerminationReason.OPTIMAL: "optimal",
            mo.TerminationReason.INFEASIBLE: "infeasible",
            mo.TerminationReason.FEASIBLE: "feasible",
        }
        name = names.get(reason, "unknown")
        objective = self.result.objective_value() if name in {"optimal", "feasible"} else None
        bound = float(self.result.termination.objective_bounds.dual_bound)
        return name, objective, bound

    def value(self, term: Any) -> float:
        return float(self.result.variable_values(term))


def _builder(backend: str) -> _Builder:
    if backend == "cpsat":
        return _CpSat()
    if backend in {"scip", "highs"}:
        return _MathOpt(backend)
    raise ValueError(f"unknown MIP backend {backend!r}; expected one of {BACKENDS}")


# -- constraint families (numbers as in the module docstring) -----------------------------------


class _OutOfTime(Exception):
    """The stage's time limit ran out while its model was being built."""


def _check_clock(deadline: float) -> None:
    # Building is Python work proportional to the nonzeros: checked line by line, so a stage
    # whose build outlasts its limit stops within one line's work of it.
    if time.perf_counter() > deadline:
        raise _OutOfTime


def _add_cover_split(
    b: _Builder, data: MipData, x: list[Any], u: list[Any] | None, deadline: float
) -> None:
    """(1) sum_l c_il x_l + u_i >= q_i for every line i."""
    for i, demand in enumerate(data.demand):
        _check_clock(deadline)
        cols = np.flatnonzero(data.coverage[i])
        terms = [x[j] for j in cols]
        coefs = [int(data.coverage[i, j]) for j in cols]
        if u is not None:
            terms.append(u[i])
            coefs.append(1)
        b.add(terms, coefs, float(demand), math.inf)


def _add_cover_whole(
    b: _Builder, data: MipData, x: list[Any], u: list[Any], deadline: float
) -> None:
    """(2) w_iv <= sum_{l: c_il >= v} x_l and u_i + sum_v (v - v_prev) w_iv >= q_i."""
    for i, demand in enumerate(data.demand):
        _check_clock(deadline)
        levels = np.unique(data.coverage[i][data.coverage[i] > 0])
        w = b.bools(len(levels))
        previous = 0
        steps = []
        for level, w_iv in zip(levels, w, strict=True):
            cols = np.flatnonzero(data.coverage[i] >= level)
            b.add([w_iv] + [x[j] for j in cols], [1] + [-1] * len(cols), -math.inf, 0.0)
            steps.append(int(level) - previous)
            previous = int(level)
        b.add([*w, u[i]], [*steps, 1], float(demand), math.inf)


def _add_shipment_count(b: _Builder, x: list[Any], lo: int, hi: int | None) -> None:
    """(3) lo <= sum_l x_l <= hi."""
    if lo > 0 or hi is not None:
        b.add(x, [1] * len(x), float(lo), math.inf if hi is None else float(hi))


def _add_no_good_cuts(
    b: _Builder, x: list[Any], position: dict[int, int], cuts: Sequence[frozenset[int]]
) -> None:
    """(4) sum_{l in S_j} x_l <= |S_j| - 1. A cut with a member that is not a column here is
    moot: no set built from these columns contains it."""
    for cut in cuts:
        if not all(member in position for member in cut):
            continue
        terms = [x[position[member]] for member in sorted(cut)]
        b.add(terms, [1] * len(terms), -math.inf, float(len(terms) - 1))


def _add_stage_bounds(
    b: _Builder, stage: Stage, x: list[Any], u: list[Any] | None, data: MipData
) -> None:
    """(5) hold earlier stages' optima: sum_i u_i <= U*, sum_l f_l x_l <= F*."""
    if stage.max_unrouted is not None and u is not None:
        b.add(u, [1] * len(u), -math.inf, float(stage.max_unrouted))
    if stage.max_cost is not None and stage.cost_weights is not None:
        b.add(x, [int(v) for v in stage.cost_weights], -math.inf, float(stage.max_cost))


def solve_stage(
    data: MipData, stage: Stage, *, backend: str, time_limit: float, threads: int = 1
) -> MipResult:
    """Build the stage's model with `backend` and solve it to gap 0, both within `time_limit`.
    Out of time before the solve: no members, not optimal, not infeasible (the caller's
    incumbent stands)."""
    started = time.perf_counter()
    deadline = started + time_limit
    try:
        b, x = _build(data, stage, backend, deadline)
    except _OutOfTime:
        return MipResult(None, None, -math.inf, False, False, backend)
    left = deadline - time.perf_counter()
    if left <= 0:
        return MipResult(None, None, -math.inf, False, False, backend)
    presolve = left >= _PRESOLVE_SECONDS_PER_NONZERO * int(np.count_nonzero(data.coverage))
    status, objective, bound = b.solve(left, threads, presolve)
    m = len(data.cand)
    members = None
    if objective is not None:
        members = tuple(int(data.cand[j]) for j in range(m) if b.value(x[j]) > 0.5)
    return MipResult(
        members=members,
        objective=None if objective is None else round(objective),
        bound=bound,
        optimal=status == "optimal",
        infeasible=status == "infeasible",
        backend=backend,
        seconds=time.perf_counter() - started,
    )


def _build(
    data: MipData, stage: Stage, backend: str, deadline: float
) -> tuple[_Builder, list[Any]]:
    """The stage's model and its x variables; raises `_OutOfTime` past `deadline`."""
    b = _builder(backend)
    m = len(data.cand)
    x = b.bools(m)
    u = b.ints([int(v) for v in data.demand]) if data.partial else None
    if data.whole_levels:
        assert u is not None
        _add_cover_whole(b, data, x, u, deadline)
    else:
        _add_cover_split(b, data, x, u, deadline)
    _add_shipment_count(b, x, stage.count_lo, stage.count_hi)
    position = {int(member): j for j, member in enumerate(data.cand)}
    _add_no_good_cuts(b, x, position, stage.cuts)
    _add_stage_bounds(b, stage, x, u, data)
    if stage.objective == "unrouted":
        assert u is not None
        terms, coefs = list(u), [1] * len(u)
    elif stage.objective == "count":
        terms, coefs = list(x), [1] * m
    else:
        assert stage.weights is not None
        terms, coefs = list(x), [int(v) for v in stage.weights]
    b.minimize(terms, coefs)
    if stage.hint:
        chosen = {position[h] for h in stage.hint if h in position}
        b.hint(x, [1 if j in chosen else 0 for j in range(m)])
    return b, x
