"""Routing benchmark: the exact solver against greedy and OM-style enumeration, side by side.

Instances (benchmarks/solver_instances.py): locations and customers at real US ZIP centroids,
sparse seeded stock. Grid: order lines x candidate locations x density. For every instance the
solver, greedy and enumeration run in this one process on the same `Problem` (its construction,
incl. distances, is not timed). Latency is wall-clock, best of `--repeats` runs of the solver and
greedy (the machine is shared, so one run is noisy; enumeration runs once). CPU time of the same
runs is recorded too.

Enumeration examines subsets one at a time as OM describes it and stops at 1,000,000 subsets;
where that costs seconds per instance it runs on the first `--enum-instances` instances of the
cell only (the table says on how many). `--enum-vectorised` adds a numpy-batched variant of the
same search, for a harder baseline.

    .venv/bin/python benchmarks/solver_bench.py --quick          # smoke run: 4 x 3 x 2 cells
    .venv/bin/python benchmarks/solver_bench.py                  # the full grid
    .venv/bin/python benchmarks/solver_bench.py --backends       # CP-SAT vs SCIP vs HiGHS

Writes benchmarks/results/solver.{json,md}, solver_latency.png and solver_vs_enumeration.png
(solver_backends.{json,md} with --backends).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from solver_instances import make_instance
from support import BenchParser, markdown_table, plots

from solver import NoFeasiblePlan, Plan, Problem, SolveParams, solve
from solver.baselines import enumeration, greedy

LINES = (1, 3, 5, 10, 20, 50)
CANDIDATES = (10, 100, 1000, 10000)
DENSITIES = ("plentiful", "scarce")
EXTRA_CELLS = ((20, 5000, "plentiful"), (20, 5000, "scarce"))  # a named target's cells


@dataclass
class Run:
    """One method on one instance."""

    seconds: float
    cpu: float
    shipments: int | None = None
    distance_m: int | None = None
    unrouted: int | None = None
    proven: bool | None = None
    method: str = ""
    error: str = ""


@dataclass
class Record:
    lines: int
    candidates: int
    density: str
    seed: int
    runs: dict[str, Run] = field(default_factory=dict)


def _timed(fn: Callable[[], Plan], repeats: int) -> Run:
    best: Run | None = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            plan = fn()
        except NoFeasiblePlan as error:
            run = Run(time.perf_counter() - wall, time.process_time() - cpu, error=error.reason)
        else:
            run = Run(
                time.perf_counter() - wall,
                time.process_time() - cpu,
                plan.shipment_count,
                plan.objective.distance_m,
                plan.objective.unrouted_units,
                plan.proven_optimal,
                plan.method,
            )
        if best is None or run.seconds < best.seconds:
            best = run
        if run.seconds > 0.5:
            break  # slow runs are not worth repeating (and noise matters less there)
    assert best is not None
    return best


def _enumeration_vectorised(problem: Problem, max_subsets: int = 1_000_000) -> tuple[int, int]:
    """The same search as `enumeration`, checking subsets in numpy batches; returns the best
    route's (locations, metres). Split lines only (the benchmark's setting)."""
    import itertools  # noqa: PLC0415

    demand = problem.quantities
    stock = problem.atf
    m = stock.shape[1]
    examined, found = 0, None
    for size in range(1, m + 1):
        combos = itertools.combinations(range(m), size)
        while examined < max_subsets:
            chunk = min(max(1, 2_000_000 // (size * len(demand))), max_subsets - examined)
            flat = np.fromiter(
                itertools.chain.from_iterable(itertools.islice(combos, chunk)), dtype=np.int64
            )
            if not flat.size:
                break
            batch = flat.reshape(-1, size)
            examined += len(batch)
            ok = np.all(stock[:, batch].sum(axis=2) >= demand[:, None], axis=0)
            if ok.any():
                found = batch[ok] if found is None else np.vstack([found, batch[ok]])
        if found is not None or examined >= max_subsets:
            break
    if found is None:
        raise NoFeasiblePlan("ENUMERATION_CAP_REACHED", "nothing found")
    best = found[int(np.argmin(problem.distance_km[found].mean(axis=1)))]
    return len(best), int(np.rint(problem.distance_km[best] * 1000).sum())


def run_instance(
    lines: int,
    candidates: int,
    density: str,
    seed: int,
    *,
    repeats: int,
    with_enum: bool,
    enum_vectorised: bool,
    params: SolveParams,
    time_limit: float,
) -> Record:
    problem = make_instance(lines, candidates, density, seed, time_limit=time_limit).problem
    record = Record(lines, candidates, density, seed)
    record.runs["solver"] = _timed(lambda: solve(problem, params), repeats)
    record.runs["greedy"] = _timed(lambda: greedy(problem), repeats)
    if with_enum:
        record.runs["enumeration"] = _timed(lambda: enumeration(problem), 1)
    if enum_vectorised:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            count, distance = _enumeration_vectorised(problem)
            run = Run(time.perf_counter() - wall, time.process_time() - cpu, count, distance)
        except NoFeasiblePlan as error:
            run = Run(time.perf_counter() - wall, time.process_time() - cpu, error=error.reason)
        record.runs["enumeration-numpy"] = run
    return record


# -- summaries ---------------------------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q, method="higher")) if values else float("nan")


def summarise(records: list[Record]) -> dict[str, Any]:
    cell: dict[str, Any] = {"instances": len(records)}
    optimum = {id(r): r.runs["solver"] for r in records}
    needed = [optimum[id(r)].shipments or 0 for r in records]
    cell["locations_needed"] = {str(k): needed.count(k) for k in sorted(set(needed))}
    cell["proven"] = sum(bool(optimum[id(r)].proven) for r in records)
    for name in ("solver", "greedy", "enumeration", "enumeration-numpy"):
        runs = [(r, r.runs[name]) for r in records if name in r.runs]
        if not runs:
            continue
        ms = [run.seconds * 1e3 for _, run in runs]
        entry: dict[str, Any] = {
            "n": len(runs),
            "p50_ms": _quantile(ms, 0.5),
            "p99_ms": _quantile(ms, 0.99),
            "cpu_p50_ms": _quantile([run.cpu * 1e3 for _, run in runs], 0.5),
            "failed": {},
        }
        for _, run in runs:
            if run.error:
                entry["failed"][run.error] = entry["failed"].get(run.error, 0) + 1
        answered = [(r, run) for r, run in runs if not run.error and optimum[id(r)].shipments]
        if answered and name != "solver":
            opt = [optimum[id(r)] for r, _ in answered]
            extra_boxes = [
                run.shipments > o.shipments for (_, run), o in zip(answered, opt, strict=True)
            ]  # type: ignore[operator]
            longer = [
                run.distance_m > o.distance_m for (_, run), o in zip(answered, opt, strict=True)
            ]  # type: ignore[operator]
            worse = [
                (run.shipments, run.distance_m) > (o.shipments, o.distance_m)  # type: ignore[operator]
                for (_, run), o in zip(answered, opt, strict=True)
            ]
            entry["shipments_vs_opt"] = statistics.fmean(
                run.shipments / o.shipments
                for (_, run), o in zip(answered, opt, strict=True)  # type: ignore[operator]
            )
            entry["distance_vs_opt"] = statistics.fmean(
                run.distance_m / max(o.distance_m, 1)
                for (_, run), o in zip(answered, opt, strict=True)  # type: ignore[operator]
            )
            entry["pct_more_boxes"] = 100.0 * sum(extra_boxes) / len(answered)
            entry["pct_longer"] = 100.0 * sum(longer) / len(answered)
            entry["pct_worse"] = 100.0 * sum(worse) / len(answered)
        cell[name] = entry
    return cell


def targets(records: list[Record]) -> dict[str, Any]:
    """The named targets, computed from the records."""
    out: dict[str, Any] = {}
    singles = [r for r in records if r.runs["solver"].shipments == 1]
    if singles:
        solver_ms = [r.runs["solver"].seconds * 1e3 for r in singles]
        greedy_ms = [r.runs["greedy"].seconds * 1e3 for r in singles]
        ratios = [s / g for s, g in zip(solver_ms, greedy_ms, strict=True)]
        out["one_location_orders"] = {
            "instances": len(singles),
            "solver_p50_ms": _quantile(solver_ms, 0.5),
            "greedy_p50_ms": _quantile(greedy_ms, 0.5),
            "p50_ratio": _quantile(solver_ms, 0.5) / _quantile(greedy_ms, 0.5),
            "median_per_instance_ratio": _quantile(ratios, 0.5),
            "target": "p50 <= 3x greedy",
        }
    for lines, cands, density in (
        (10, 1000, "scarce"),
        (20, 5000, "scarce"),
        (20, 5000, "plentiful"),
    ):
        cell = [r for r in records if (r.lines, r.candidates, r.density) == (lines, cands, density)]
        if cell:
            ms = [r.runs["solver"].seconds * 1e3 for r in cell]
            out[f"{lines}x{cands}_{density}"] = {
                "instances": len(cell),
                "p50_ms": _quantile(ms, 0.5),
                "p99_ms": _quantile(ms, 0.99),
                "max_ms": max(ms),
                "all_proven": all(r.runs["solver"].proven for r in cell),
            }
    three = [
        r for r in records if (r.runs["solver"].shipments or 0) >= 3 and "enumeration" in r.runs
    ]
    if three:
        ratios = [r.runs["enumeration"].seconds / r.runs["solver"].seconds for r in three]
        out["vs_enumeration_3plus"] = {
            "instances": len(three),
            "median_ratio": _quantile(ratios, 0.5),
            "min_ratio": min(ratios),
            "pct_at_least_100x": 100.0 * sum(x >= 100 for x in ratios) / len(ratios),
            "enumeration_capped_without_answer": sum(
                r.runs["enumeration"].error == "ENUMERATION_CAP_REACHED" for r in three
            ),
        }
        vec = [r for r in three if "enumeration-numpy" in r.runs]
        if vec:
            vratios = [r.runs["enumeration-numpy"].seconds / r.runs["solver"].seconds for r in vec]
            out["vs_enumeration_numpy_3plus"] = {
                "instances": len(vec),
                "median_ratio": _quantile(vratios, 0.5),
                "min_ratio": min(vratios),
            }
    worse = [
        r
        for r in records
        if not r.runs["greedy"].error
        and (
            (r.runs["solver"].unrouted, r.runs["solver"].shipments, r.runs["solver"].distance_m)
            > (r.runs["greedy"].unrouted, r.runs["greedy"].shipments, r.runs["greedy"].distance_m)
        )
    ]
    out["worse_than_greedy"] = len(worse)
    out["not_proven"] = sum(not r.runs["solver"].proven for r in records)
    out["instances"] = len(records)
    return out


# -- output ------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(value: float) -> str:
    return f"{value:.0f}x" if value >= 10 else f"{value:.2g}x"


TABLE_HEADERS = (
    "lines",
    "cand.",
    "density",
    "n",
    "needs (locations: orders)",
    "solver p50 / p99 ms",
    "greedy p50 ms",
    "greedy boxes / km vs opt",
    "greedy more boxes / longer %",
    "enum. n",
    "enum. p50 ms",
    "enum. boxes / km vs opt",
    "enum / solver p50",
)


def table(cells: dict[str, dict[str, Any]]) -> str:
    rows = []
    for key, cell in cells.items():
        s, g = cell["solver"], cell["greedy"]
        e = cell.get("enumeration", {})
        enum_cols = ["-", "-", "-", "-"]
        if e:
            failed = sum(e["failed"].values())
            enum_cols = [
                f"{e['n']}" + (f" ({failed} capped)" if failed else ""),
                _fmt(e["p50_ms"]),
                f"{_fmt(e.get('shipments_vs_opt'), 2)} / {_fmt(e.get('distance_vs_opt'), 2)}",
                _ratio(e["p50_ms"] / s["p50_ms"]),
            ]
        rows.append(
            [
                *key.split("/"),
                cell["instances"],
                " ".join(f"{k}:{v}" for k, v in cell["locations_needed"].items()),
                f"{_fmt(s['p50_ms'], 2)} / {_fmt(s['p99_ms'], 2)}",
                _fmt(g["p50_ms"], 2),
                f"{_fmt(g.get('shipments_vs_opt'), 2)} / {_fmt(g.get('distance_vs_opt'), 2)}",
                f"{_fmt(g.get('pct_more_boxes'), 0)} / {_fmt(g.get('pct_longer'), 0)}",
                *enum_cols,
            ]
        )
    return markdown_table(TABLE_HEADERS, rows, left=len(TABLE_HEADERS))


def plot(cells: dict[str, dict[str, Any]]) -> Any:
    fig, axes = plots.subplots(1, 3, figsize=(17, 5.2))
    colours = {
        1: "#1b9e77",
        3: "#d95f02",
        5: "#7570b3",
        10: "#e7298a",
        20: "#66a61e",
        50: "#e6ab02",
    }
    for density, style in (("scarce", "-"), ("plentiful", ":")):
        for lines in LINES:
            keys = [k for k in cells if k.startswith(f"{lines}/") and k.endswith(density)]
            keys = [k for k in keys if int(k.split("/")[1]) in CANDIDATES]
            if not keys:
                continue
            xs = [int(k.split("/")[1]) for k in keys]
            for ax, name in ((axes[0], "solver"), (axes[1], "greedy")):
                ys = [cells[k][name]["p50_ms"] for k in keys]
                label = f"{lines} lines, {density}" if ax is axes[0] else None
                ax.plot(xs, ys, style, marker="o", color=colours[lines], label=label)
            ys = [cells[k]["greedy"].get("pct_worse", 0.0) for k in keys]
            axes[2].plot(xs, ys, style, marker="o", color=colours[lines])
    for ax, title in zip(
        axes[:2], ("solver (exact) p50 latency", "greedy p50 latency"), strict=True
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("candidate locations")
        ax.set_ylabel("ms")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(fontsize=8, ncol=6, loc="lower center", frameon=False)
    axes[0].set_ylim(0.05, 1e5)
    axes[0].axhline(10_000, color="grey", lw=0.8, ls="--")
    axes[0].annotate("time limit (not proven)", (12, 14_000), fontsize=7, color="grey")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("candidate locations")
    axes[2].set_ylabel("% of orders")
    axes[2].set_title("greedy plan worse than optimal\n(more boxes, or same boxes and longer)")
    axes[2].grid(True, which="both", alpha=0.3)
    fig.suptitle("omniroute solver vs greedy (solid: scarce, dotted: plentiful)")
    fig.get_layout_engine().set(rect=(0, 0.09, 1, 1))  # room for the legend below
    return fig


def plot_enumeration(records: list[Record]) -> Any:
    fig, ax = plots.subplots(figsize=(7.5, 5.2))
    groups: dict[tuple[int, bool], tuple[list[float], list[float]]] = {}
    for r in records:
        if "enumeration" not in r.runs:
            continue
        k = min(r.runs["solver"].shipments or 0, 4)
        capped = r.runs["enumeration"].error == "ENUMERATION_CAP_REACHED"
        xs, ys = groups.setdefault((k, capped), ([], []))
        xs.append(r.runs["solver"].seconds * 1e3)
        ys.append(r.runs["enumeration"].seconds * 1e3)
    colours = {1: "#1f77b4", 2: "#ff7f0e", 3: "#2ca02c", 4: "#d62728"}
    for (k, capped), (xs, ys) in sorted(groups.items()):
        label = f"needs {k}{'+' if k == 4 else ''} location{'s' if k > 1 else ''}"
        ax.scatter(
            xs,
            ys,
            s=22 if capped else 12,
            alpha=0.7,
            color=colours[k],
            marker="x" if capped else "o",
            label=label + (" (enumeration capped, no route)" if capped else ""),
        )
    lo, hi = 1e-2, 1e5
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="equal")
    ax.plot([lo, hi / 100], [lo * 100, hi], "k--", lw=0.8, label="100x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("exact solver latency, ms")
    ax.set_ylabel("OM-style enumeration latency, ms")
    ax.set_title("per instance: enumeration vs exact solver")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def backend_comparison(args: argparse.Namespace) -> dict[str, Any]:
    """CP-SAT vs SCIP vs HiGHS on the instances that reach the MIP, full pipeline and MIP-only."""
    cells = [(10, 1000, "scarce"), (20, 100, "scarce"), (50, 100, "scarce"), (50, 1000, "scarce")]
    variants = {
        f"{b} ({label})": SolveParams(backend=b, search_up_to=s, exhaustive_up_to=e)
        for b in ("cpsat", "scip", "highs")
        for label, s, e in (("pipeline", 6, 12), ("MIP only", 0, 0))
    }
    out: dict[str, Any] = {}
    for lines, cands, density in cells:
        problems = [
            make_instance(lines, cands, density, seed, time_limit=args.time_limit).problem
            for seed in range(args.backend_instances)
        ]
        cell: dict[str, Any] = {}
        for name, params in variants.items():
            runs = [_timed(lambda p=p, q=params: solve(p, q), 1) for p in problems]  # type: ignore[misc]
            ms = [r.seconds * 1e3 for r in runs]
            cpu = [r.cpu * 1e3 for r in runs]
            cell[name] = {
                "cpu_p50_ms": _quantile(cpu, 0.5),
                "p50_ms": _quantile(ms, 0.5),
                "p90_ms": _quantile(ms, 0.9),
                "max_ms": max(ms),
                "proven": sum(bool(r.proven) for r in runs),
                "mip_used": sum(r.method.startswith("mip") for r in runs),
            }
            print(
                f"  {lines}x{cands} {density:9s} {name:22s} cpu p50 {cell[name]['cpu_p50_ms']:8.1f}"
                f" wall p50 {cell[name]['p50_ms']:8.1f} ms"
                f"  p90 {cell[name]['p90_ms']:8.1f}  max {cell[name]['max_ms']:8.1f}"
                f"  proven {cell[name]['proven']}/{len(runs)}",
                flush=True,
            )
        out[f"{lines}/{cands}/{density}"] = cell
    return out


BACKEND_HEADERS = (
    "cell",
    "variant",
    "p50 ms",
    "p90 ms",
    "max ms",
    "CPU p50 ms",
    "proven",
    "MIP used",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = BenchParser(
        __doc__,
        "solver",
        quick={"instances": 10},
        quick_help="4 x 3 x 2 cells of the grid, 10 instances each",
    )
    parser.add_argument("--instances", type=int, default=20, help="instances per cell")
    parser.add_argument(
        "--enum-instances",
        type=int,
        default=5,
        help="instances per cell for enumeration where it is slow (>= 1000 "
        "candidates or >= 20 lines); all instances elsewhere",
    )
    parser.add_argument(
        "--enum-vectorised", action="store_true", help="also time a numpy-batched enumeration"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--time-limit", type=float, default=10.0, help="solver limit, seconds")
    parser.add_argument(
        "--backends", action="store_true", help="only compare MIP backends (CP-SAT, SCIP, HiGHS)"
    )
    parser.add_argument("--backend-instances", type=int, default=10)
    return parser.parse(argv)


def save_backends(args: argparse.Namespace, result: dict[str, Any]) -> None:
    n = args.backend_instances
    rows = [
        [
            key,
            name,
            f"{row['p50_ms']:.1f}",
            f"{row['p90_ms']:.1f}",
            f"{row['max_ms']:.1f}",
            f"{row['cpu_p50_ms']:.1f}",
            f"{row['proven']}/{n}",
            f"{row['mip_used']}/{n}",
        ]
        for key, cell in result.items()
        for name, row in cell.items()
    ]
    table = markdown_table(BACKEND_HEADERS, rows, left=len(BACKEND_HEADERS))
    args.files.save(
        result,
        markdown=f"# MIP backends\n\ntime limit {args.time_limit} s; CPU is process time (all "
        f"threads)\n\n{table}\n",
        part="_backends",
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    if args.backends:
        save_backends(args, backend_comparison(args))
        return 0

    if args.quick:
        grid = [(n, m, d) for n in (1, 3, 10, 20) for m in (10, 100, 1000) for d in DENSITIES]
        grid += [(10, 1000, "scarce")] if (10, 1000, "scarce") not in grid else []
    else:
        grid = [(n, m, d) for n in LINES for m in CANDIDATES for d in DENSITIES]
        grid += list(EXTRA_CELLS)
    # Warm up imports and caches (OR-Tools, the ZIP table) outside the timings.
    warm = make_instance(10, 200, "scarce", 10_000).problem
    solve(warm)
    solve(make_instance(50, 100, "scarce", 10_000).problem)
    greedy(warm)
    records: list[Record] = []
    cells: dict[str, dict[str, Any]] = {}
    for lines, cands, density in grid:
        slow_enum = cands >= 1000 or lines >= 20
        cell_records = []
        for seed in range(args.instances):
            with_enum = not slow_enum or seed < args.enum_instances
            cell_records.append(
                run_instance(
                    lines,
                    cands,
                    density,
                    seed,
                    repeats=args.repeats,
                    with_enum=with_enum,
                    enum_vectorised=args.enum_vectorised and with_enum,
                    params=SolveParams(),
                    time_limit=args.time_limit,
                )
            )
        records += cell_records
        key = f"{lines}/{cands}/{density}"
        cells[key] = summarise(cell_records)
        s, g = cells[key]["solver"], cells[key]["greedy"]
        e = cells[key].get("enumeration", {})
        print(
            f"{key:22s} solver p50 {s['p50_ms']:8.2f} p99 {s['p99_ms']:8.2f} ms | greedy "
            f"{g['p50_ms']:6.2f} ms worse {g.get('pct_worse', 0):4.0f}% | enum "
            f"{e.get('p50_ms', float('nan')):9.1f} ms | needs {cells[key]['locations_needed']}"
            f" | {time.time() - started:6.0f}s",
            flush=True,
        )
    summary = targets(records)
    markdown = table(cells)
    print()
    print(markdown)
    print()
    print(json.dumps(summary, indent=1))
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "instances_per_cell": args.instances,
        "enum_instances_in_slow_cells": args.enum_instances,
        "repeats": args.repeats,
        "time_limit": args.time_limit,
        "quick": args.quick,
        "seconds": round(time.time() - started),
    }
    payload = {
        "meta": meta,
        "targets": summary,
        "cells": cells,
        "records": [
            {
                "lines": r.lines,
                "candidates": r.candidates,
                "density": r.density,
                "seed": r.seed,
                "runs": {k: vars(v) for k, v in r.runs.items()},
            }
            for r in records
        ],
    }
    args.files.save(
        payload,
        markdown=f"# Solver benchmark\n\n{json.dumps(meta)}\n\n{markdown}\n\n## Targets\n\n"
        f"```json\n{json.dumps(summary, indent=1)}\n```\n",
        figures={"_latency": plot(cells), "_vs_enumeration": plot_enumeration(records)},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
