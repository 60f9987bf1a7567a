"""Measure each step from the straightforward model to the shipped pipeline.

Steps, on the same seeded instances (benchmarks/solver_instances.py), one process:
  y-MIP weighted   DESIGN.md's model with the allocation variables y_il, lexicographic objective
                   as one weighted sum (M * shipments + metres), gap 0: the baseline
  set MIP          y projected out, stages N then D, no search, no reduction
  set MIP + reduce the same with the incumbent's distance bound on candidates
  pipeline         exact search for 1-4 locations, then the MIP stages (the default)
for each MIP backend. Latency is wall-clock (one run); the process CPU time is reported too.

    .venv/bin/python benchmarks/solver_ladder.py --instances 10
    .venv/bin/python benchmarks/solver_ladder.py --quick   # smoke run
Writes benchmarks/results/solver_ladder.json and .md.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import numpy as np
from solver_instances import make_instance
from support import BenchParser, listed, markdown_row, markdown_table

from solver import Problem, SolveParams, solve
from solver.scoring import location_distance_m

HEADERS = (
    "cell",
    "step",
    "p50 ms",
    "p90 ms",
    "max ms",
    "cpu p50 ms",
    "proven",
    "optimum found",
)


def weighted_y_mip(problem: Problem, backend: str, time_limit: float) -> tuple[int, int, bool]:
    """min M * sum x + sum d x  s.t.  sum_l y_il = q_i,  y_il <= min(q_i, a_il) x_l."""
    demand = problem.quantities
    capped = np.minimum(problem.atf, demand[:, None])
    useful = np.flatnonzero(capped.any(axis=0))
    distance = location_distance_m(problem)[useful]
    big = int(distance.sum()) + 1  # one shipment outweighs any distance
    if backend == "cpsat":
        from ortools.sat.python import cp_model  # noqa: PLC0415

        model = cp_model.CpModel()
        x = [model.new_bool_var("") for _ in useful]
        for i, q in enumerate(demand):
            terms = []
            for k, j in enumerate(useful):
                if capped[i, j]:
                    y = model.new_int_var(0, int(capped[i, j]), "")
                    model.add(y <= int(capped[i, j]) * x[k])
                    terms.append(y)
            model.add(sum(terms) == int(q))
        model.minimize(sum((big + int(d)) * v for d, v in zip(distance, x, strict=True)))
        cp = cp_model.CpSolver()
        cp.parameters.max_time_in_seconds = time_limit
        cp.parameters.num_workers = 1
        status = cp.solve(model)
        chosen = [k for k in range(len(x)) if cp.value(x[k])] if status in (2, 4) else []
        proven = status == cp_model.OPTIMAL
    else:
        from ortools.math_opt.python import mathopt  # noqa: PLC0415

        model = mathopt.Model()
        x = [model.add_binary_variable() for _ in useful]
        for i, q in enumerate(demand):
            terms = []
            for k, j in enumerate(useful):
                if capped[i, j]:
                    y = model.add_integer_variable(lb=0, ub=float(capped[i, j]))
                    model.add_linear_constraint(y - float(capped[i, j]) * x[k] <= 0)
                    terms.append(y)
            model.add_linear_constraint(mathopt.fast_sum(terms) == float(q))
        model.minimize(
            mathopt.fast_sum(float(big + int(d)) * v for d, v in zip(distance, x, strict=True))
        )
        kind = mathopt.SolverType.GSCIP if backend == "scip" else mathopt.SolverType.HIGHS
        params = mathopt.SolveParameters(
            time_limit=datetime.timedelta(seconds=time_limit),
            relative_gap_tolerance=0.0,
            absolute_gap_tolerance=0.5,
            threads=1 if backend == "scip" else None,
        )
        result = mathopt.solve(model, kind, params=params)
        reason = result.termination.reason
        ok = reason in (mathopt.TerminationReason.OPTIMAL, mathopt.TerminationReason.FEASIBLE)
        chosen = [k for k in range(len(x)) if ok and result.variable_values(x[k]) > 0.5]
        proven = reason == mathopt.TerminationReason.OPTIMAL
    return len(chosen), int(distance[chosen].sum()), proven


def _cell(text: str) -> tuple[int, int, str]:
    """lines:candidates:density, e.g. 10:1000:scarce."""
    lines, candidates, density = text.split(":")
    return int(lines), int(candidates), density


def main(argv: list[str] | None = None) -> int:
    parser = BenchParser(
        __doc__,
        "solver_ladder",
        quick={"instances": 2, "cells": "3:100:scarce"},
        quick_help="2 instances of a 3-line, 100-candidate cell",
    )
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--cells", type=listed(_cell), default="10:1000:scarce,20:5000:scarce")
    args = parser.parse(argv)
    steps: dict[str, Any] = {}
    for backend in ("cpsat", "scip", "highs"):
        steps[f"y-MIP weighted ({backend})"] = ("y", backend)
        steps[f"set MIP ({backend})"] = SolveParams(backend=backend, search_up_to=0, reduce=False)
        steps[f"set MIP + reduce ({backend})"] = SolveParams(backend=backend, search_up_to=0)
    steps["pipeline (default)"] = SolveParams()
    solve(make_instance(10, 100, "scarce", 999).problem, SolveParams(backend="scip"))
    out: dict[str, Any] = {}
    rows = []
    print(markdown_table(HEADERS, [], left=len(HEADERS)), flush=True)
    for n, m, density in args.cells:
        problems = [
            make_instance(n, m, density, seed, time_limit=args.time_limit).problem
            for seed in range(args.instances)
        ]
        optimum = [solve(p) for p in problems]
        for name, step in steps.items():
            ms, cpu, proven, right = [], [], 0, 0
            for p, best in zip(problems, optimum, strict=True):
                wall, clock = time.perf_counter(), time.process_time()
                if isinstance(step, tuple):
                    count, metres, ok = weighted_y_mip(p, step[1], args.time_limit)
                else:
                    plan = solve(p, step)
                    count, metres, ok = (
                        plan.shipment_count,
                        plan.objective.distance_m,
                        plan.proven_optimal,
                    )
                ms.append((time.perf_counter() - wall) * 1e3)
                cpu.append((time.process_time() - clock) * 1e3)
                proven += ok
                right += (count, metres) == (best.shipment_count, best.objective.distance_m)
            row = {
                "p50_ms": float(np.median(ms)),
                "p90_ms": float(np.quantile(ms, 0.9)),
                "max_ms": max(ms),
                "cpu_p50_ms": float(np.median(cpu)),
                "proven": proven,
                "optimum_found": right,
                "instances": len(problems),
            }
            out.setdefault(f"{n}x{m} {density}", {})[name] = row
            rows.append(
                [
                    f"{n} x {m} {density}",
                    name,
                    *(f"{row[key]:.1f}" for key in ("p50_ms", "p90_ms", "max_ms", "cpu_p50_ms")),
                    f"{proven}/{len(problems)}",
                    f"{right}/{len(problems)}",
                ]
            )
            print(markdown_row(rows[-1]), flush=True)
    args.files.save(
        out,
        markdown="# From the straightforward model to the pipeline\n\n"
        f"time limit {args.time_limit} s, {args.instances} instances per cell\n\n"
        + markdown_table(HEADERS, rows, left=len(HEADERS))
        + "\n",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
