"""Wave benchmark: joint routing vs order-by-order exact vs order-by-order greedy, side by side.

Instances (benchmarks/wave_instances.py): orders and locations at real US ZIP centroids, a
200-SKU catalogue, stock set against the wave's demand (scarce 1.5x, plentiful 5x), and in the
"cap" cells a daily order and unit capacity per location. Every method runs in this one process
on the same `WaveProblem` (its construction is not timed), once (the machine is shared).

LB is the sum of each order's own optimum with the stock and capacity to itself (shipments);
excess = boxes - LB; the share of excess removed = 1 - excess(joint) / excess(order by order),
over the cell's instances together. `gap` is the joint answer's reported gap (against its own
lower bound, at the first level where they differ: shipments, else distance).

    .venv/bin/python benchmarks/wave_bench.py --quick     # 10 and 100 orders over 100 locations
    .venv/bin/python benchmarks/wave_bench.py             # the full grid

Writes benchmarks/results/wave.{json,md,png} (wave-quick.* with --quick).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from support import BenchParser, machine_info, markdown_table, plots
from wave_instances import make_wave

from solver import wave
from solver.wave_baselines import greedy_one_by_one, one_by_one
from solver.wave_plan import WavePlan, evaluate
from solver.wave_problem import WaveProblem

ORDERS = (10, 100, 1000)
LOCATIONS = (100, 1000)
DENSITIES = ("scarce", "plentiful")
METHODS = ("joint", "one-by-one", "greedy")


@dataclass
class Run:
    """One method on one wave."""

    boxes: int
    km: float
    unrouted: int
    seconds: float
    proven: bool
    gap: float | None
    method: str


@dataclass
class Record:
    orders: int
    locations: int
    density: str
    capacity: bool
    seed: int
    lower_bound_boxes: int
    runs: dict[str, Run] = field(default_factory=dict)


def _run(problem: WaveProblem, plan: WavePlan, seconds: float) -> Run:
    assert evaluate(problem, plan) == plan.objective  # stock and capacity never exceeded
    return Run(
        plan.shipment_count,
        round(plan.objective.distance_m / 1000.0, 1),
        plan.unrouted_units,
        round(seconds, 3),
        plan.proven_optimal,
        plan.gap,
        plan.method,
    )


def run_wave(
    orders: int, locations: int, density: str, capacity: bool, seed: int, time_limit: float
) -> Record:
    problem = make_wave(orders, locations, density, capacity, seed)
    own = [wave.own_optimum(problem, k, 10.0) for k in range(orders)]
    record = Record(
        orders, locations, density, capacity, seed, sum(score.shipments for _, score, _ in own)
    )
    for name, method in (
        ("joint", lambda: wave.solve(problem, time_limit)),
        ("one-by-one", lambda: one_by_one(problem)),
        ("greedy", lambda: greedy_one_by_one(problem)),
    ):
        started = time.perf_counter()
        plan = method()
        record.runs[name] = _run(problem, plan, time.perf_counter() - started)
    return record


def summarise(records: list[Record]) -> dict[str, Any]:
    """A cell: totals over its waves per method, and the share of excess boxes removed."""
    lb = sum(r.lower_bound_boxes for r in records)
    cell: dict[str, Any] = {"waves": len(records), "lower_bound_boxes": lb}
    for name in METHODS:
        runs = [r.runs[name] for r in records]
        cell[name] = {
            "boxes": sum(x.boxes for x in runs),
            "excess_boxes": sum(x.boxes for x in runs) - lb,
            "km": round(sum(x.km for x in runs)),
            "unrouted": sum(x.unrouted for x in runs),
            "max_seconds": max(x.seconds for x in runs),
            "p50_seconds": float(np.median([x.seconds for x in runs])),
            "proven": sum(x.proven for x in runs),
            "max_gap": max((x.gap or 0.0) for x in runs),
            "methods": sorted({x.method for x in runs}),
        }
    obo, joint = cell["one-by-one"]["excess_boxes"], cell["joint"]["excess_boxes"]
    cell["share_removed"] = None if obo <= 0 else 1.0 - joint / obo
    return cell


HEADERS = (
    "orders",
    "loc.",
    "stock",
    "capacity",
    "waves",
    "LB boxes",
    "joint boxes / km / unrouted",
    "one-by-one boxes / km / unrouted",
    "greedy boxes / km / unrouted",
    "excess removed",
    "joint s (max)",
    "one-by-one s",
    "greedy s",
    "joint proven",
    "joint gap (max)",
)


def table(cells: dict[str, dict[str, Any]]) -> str:
    rows = []
    for key, cell in cells.items():
        orders, locations, density, capacity = key.split("/")
        share = cell["share_removed"]
        rows.append(
            [
                orders,
                locations,
                density,
                capacity,
                cell["waves"],
                cell["lower_bound_boxes"],
                *(
                    f"{cell[m]['boxes']} / {cell[m]['km']:,} / {cell[m]['unrouted']}"
                    for m in METHODS
                ),
                "-" if share is None else f"{100 * share:.0f}%",
                f"{cell['joint']['max_seconds']:.2f}",
                f"{cell['one-by-one']['max_seconds']:.2f}",
                f"{cell['greedy']['max_seconds']:.2f}",
                f"{cell['joint']['proven']}/{cell['waves']}",
                f"{100 * cell['joint']['max_gap']:.2f}%",
            ]
        )
    return markdown_table(HEADERS, rows, left=4)


def targets(cells: dict[str, dict[str, Any]], time_limit: float) -> dict[str, Any]:
    """The issue's targets, computed from the cells."""
    big = {k: c for k, c in cells.items() if k.startswith("1000/1000/")}
    scarce = {k: c for k, c in cells.items() if "/scarce/" in k}
    return {
        "1000x1000_within_60s_gap_1pct": {
            key: {
                "max_seconds": c["joint"]["max_seconds"],
                "max_gap": c["joint"]["max_gap"],
                "met": c["joint"]["max_seconds"] <= 60.0 and c["joint"]["max_gap"] <= 0.01,
            }
            for key, c in big.items()
        },
        "scarce_share_removed_50pct": {
            key: {
                "share_removed": c["share_removed"],
                "met": c["share_removed"] is None or c["share_removed"] >= 0.5,
            }
            for key, c in scarce.items()
        },
        "time_limit": time_limit,
    }


def plot(cells: dict[str, dict[str, Any]], time_limit: float) -> Any:
    fig, axes = plots.subplots(1, 2, figsize=(16, 5.5))
    keys = list(cells)
    xs = np.arange(len(keys))
    width = 0.27
    colours = {"joint": "#1b9e77", "one-by-one": "#d95f02", "greedy": "#7570b3"}
    for offset, name in zip((-width, 0.0, width), METHODS, strict=True):
        excess = [max(cells[k][name]["excess_boxes"], 0) + 1 for k in keys]
        axes[0].bar(xs + offset, excess, width, label=name, color=colours[name])
    axes[0].set_yscale("log")
    axes[0].set_ylabel("excess boxes over LB, + 1 (log)")
    axes[0].set_title("boxes above the sum of own optima (lower is better)")
    axes[1].bar(xs, [cells[k]["joint"]["max_seconds"] for k in keys], color=colours["joint"])
    axes[1].axhline(time_limit, color="grey", lw=0.8, ls="--")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("seconds (max over the cell's waves)")
    axes[1].set_title(f"joint solve time (limit {time_limit:g} s)")
    for ax in axes:
        ax.set_xticks(xs, [k.replace("/", "\n") for k in keys], fontsize=6)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("wave: joint vs order by order (orders / locations / stock / capacity)")
    return fig


def parse_args(argv: list[str] | None) -> Any:
    parser = BenchParser(
        __doc__,
        "wave",
        quick={"orders": [10, 100], "locations": [100], "instances": 1, "time_limit": 10.0},
        quick_help="10 and 100 orders over 100 locations, one wave per cell, 10 s limit",
    )
    parser.add_argument("--orders", type=int, nargs="+", default=list(ORDERS))
    parser.add_argument("--locations", type=int, nargs="+", default=list(LOCATIONS))
    parser.add_argument(
        "--instances", type=int, default=2, help="waves per cell below 1,000 orders (1 above)"
    )
    parser.add_argument("--time-limit", type=float, default=60.0, help="joint solve, seconds")
    return parser.parse(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    wave.solve(make_wave(10, 100, "scarce", False, 10_000), 5.0)  # imports, the ZIP table
    records: list[Record] = []
    cells: dict[str, dict[str, Any]] = {}
    for orders in args.orders:
        for locations in args.locations:
            for density in DENSITIES:
                for capacity in (False, True):
                    waves = 1 if orders >= 1000 else args.instances
                    found = [
                        run_wave(orders, locations, density, capacity, seed, args.time_limit)
                        for seed in range(waves)
                    ]
                    records += found
                    key = f"{orders}/{locations}/{density}/{'cap' if capacity else 'none'}"
                    cells[key] = summarise(found)
                    c = cells[key]
                    share = c["share_removed"]
                    print(
                        f"{key:28s} LB {c['lower_bound_boxes']:5d} | boxes joint "
                        f"{c['joint']['boxes']:5d} one-by-one {c['one-by-one']['boxes']:5d} "
                        f"greedy {c['greedy']['boxes']:5d} | removed "
                        f"{'-' if share is None else f'{100 * share:.0f}%':>4s} | joint "
                        f"{c['joint']['max_seconds']:6.2f} s gap "
                        f"{100 * c['joint']['max_gap']:.2f}% | {time.time() - started:5.0f}s",
                        flush=True,
                    )
    markdown = table(cells)
    summary = targets(cells, args.time_limit)
    print()
    print(markdown)
    print()
    print(json.dumps(summary, indent=1))
    meta = {
        **machine_info(),
        "instances_below_1000_orders": args.instances,
        "time_limit": args.time_limit,
        "quick": args.quick,
        "seconds": round(time.time() - started),
    }
    args.files.save(
        {
            "meta": meta,
            "targets": summary,
            "cells": cells,
            "records": [asdict(r) for r in records],
        },
        markdown=f"# Wave benchmark\n\n{json.dumps(meta)}\n\n{markdown}\n\n## Targets\n\n"
        f"```json\n{json.dumps(summary, indent=1)}\n```\n",
        figures={"": plot(cells, args.time_limit)},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
