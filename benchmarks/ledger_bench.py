"""Ledger throughput over the real gRPC server, next to the transport's own ceiling.

Starts `python -m server` on a fresh SQLite file once per durability mode (synchronous=FULL,
the default, and NORMAL), seeds a network and plentiful stock through the API, then drives each
scenario from several client processes over loopback (benchmarks/support/load.py states the load
model) and reports RPC/s and latency percentiles:

  echo         grpc.health.v1.Health/Check: a trivial unary RPC on the same server and event
               loop, i.e. what the transport alone costs (the ceiling)
  create       CreateReservation, 1 item x 1 unit at a random location, random SKU of many
               (with a request_id, as an idempotent client sends it)
  create_hot   the same, all on one SKU at one location: one hot stock row
  create_transport
               the create workload against a second server whose CreateReservation only
               validates and returns a canned reply of the real shape
               (benchmarks/transport_only_server.py): the transport's cost for these messages,
               so the ledger's own cost per create is the difference
  availability GetAvailability for 10 random SKUs x 10 random locations
  create_unlogged
               the create workload against a server with the availability change log off
               (--no-change-log): what the feed's outbox costs (target: create >= 0.9x this)
  create_unrecorded
               the create workload against a server with stock movements off
               (--no-history): what the history costs (target: create >= 0.9x this)
  create_observed
               the create workload against a third server with API keys on (each call sends a
               storefront key), Prometheus metrics and a JSON access log: what security and
               the operator's visibility cost (target: >= 0.9x create)

Scenarios run round-robin `--repeats` times per server; each figure is the median over repeats.
The target is create RPC/s >= 0.5 x echo RPC/s, so that the ledger costs no more than the
transport; the verdicts also state that cost directly, per call, from create_transport.

  .venv/bin/python benchmarks/ledger_bench.py            # full run
  .venv/bin/python benchmarks/ledger_bench.py --quick    # smoke run

Writes benchmarks/results/ledger.{json,md,png}. Not a test: never run it from the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from omniroute.admin.v1 import api_keys_pb2, api_keys_pb2_grpc
from omniroute.inventory.v1 import (
    inventory_pb2,
    inventory_pb2_grpc,
    reservation_pb2,
    reservation_pb2_grpc,
)
from support import (
    BenchParser,
    LoadResult,
    Workload,
    cell,
    errors_cell,
    footer,
    header,
    listed,
    log,
    markdown_table,
    median,
    omniroute_server,
    plots,
    run_load,
    stock_network,
    summarise,
    text_table,
)

TARGET_RATIO = 0.5
MODES = ("FULL", "NORMAL")
SCENARIOS = (
    "echo",
    "create",
    "create_transport",
    "create_hot",
    "availability",
    "create_observed",
    "create_unlogged",
    "create_unrecorded",
)
OBSERVED = ("--metrics-address", "localhost:0", "--access-log", "--log-format", "json")
SECURED = {"create_observed"}  # scenarios that send the observed server's API key
OBSERVED_TARGET = 0.9
TRANSPORT_ONLY_SERVER = ("benchmarks/transport_only_server.py",)
HOT_SKU = "sku-hot"
PLENTY = 1_000_000
HOT_PLENTY = 1_000_000_000
LABELS = {
    "echo": "Health/Check (echo)",
    "create": "CreateReservation, 1 item",
    "create_transport": "CreateReservation, transport only",
    "create_hot": "CreateReservation, 1 hot SKU",
    "availability": "GetAvailability 10x10",
    "create_observed": "CreateReservation, API key + metrics + JSON access log",
    "create_unlogged": "CreateReservation, change log off",
    "create_unrecorded": "CreateReservation, history off",
}


def location_ids(count: int) -> list[str]:
    return [f"loc-{index:03d}" for index in range(count)]


def skus(count: int) -> list[str]:
    return [f"sku-{index:05d}" for index in range(count)]


# --- workloads: each runs in a client process, one callable per thread ------------------------


def echo_call(channel: grpc.Channel, params: dict[str, Any], rng: random.Random) -> Any:
    check = health_pb2_grpc.HealthStub(channel).Check
    request = health_pb2.HealthCheckRequest(service="")
    return lambda: check(request, timeout=30)


def create_call(channel: grpc.Channel, params: dict[str, Any], rng: random.Random) -> Any:
    create = reservation_pb2_grpc.ReservationServiceStub(channel).CreateReservation
    metadata = [("authorization", f"Bearer {params['key']}")] if params.get("key") else None
    locations = location_ids(params["locations"])
    sku_ids = [HOT_SKU] if params["hot"] else skus(params["skus"])
    if params["hot"]:
        locations = locations[:1]
    Request = reservation_pb2.CreateReservationRequest  # noqa: N806
    Item = reservation_pb2.ReservationItem  # noqa: N806
    Place = inventory_pb2.Place  # noqa: N806
    prefix = uuid.uuid4().hex  # unique per thread and run: request ids never repeat
    counter = itertools.count()

    def call() -> Any:
        item = Item(
            sku=rng.choice(sku_ids), place=Place(location_id=rng.choice(locations)), quantity=1
        )
        request = Request(items=[item], request_id=f"{prefix}-{next(counter)}")
        return create(request, timeout=30, metadata=metadata)

    return call


def availability_call(channel: grpc.Channel, params: dict[str, Any], rng: random.Random) -> Any:
    get = inventory_pb2_grpc.InventoryServiceStub(channel).GetAvailability
    locations = location_ids(params["locations"])
    sku_ids = skus(params["skus"])
    Request = inventory_pb2.GetAvailabilityRequest  # noqa: N806

    def call() -> Any:
        return get(
            Request(skus=rng.sample(sku_ids, 10), location_ids=rng.sample(locations, 10)),
            timeout=30,
        )

    return call


def workload(name: str, locations: int, sku_count: int, key: str = "") -> Workload:
    params = {"locations": locations, "skus": sku_count, "hot": name == "create_hot", "key": key}
    factory = {
        "echo": echo_call,
        "create": create_call,
        "create_transport": create_call,
        "create_hot": create_call,
        "availability": availability_call,
        "create_observed": create_call,
        "create_unlogged": create_call,
        "create_unrecorded": create_call,
    }[name]
    return Workload(name, factory, params)


# --- seeding through the API -------------------------------------------------------------------


def seed(address: str, locations: int, sku_count: int) -> float:
    """`locations` warehouses, every SKU stocked at every location (plenty), plus the hot SKU
    at the first location. Returns seconds taken."""
    began = time.perf_counter()
    sites = [
        inventory_pb2.Location(
            id=location_id,
            display_name=location_id,
            type=inventory_pb2.LOCATION_TYPE_WAREHOUSE,
            position=inventory_pb2.GeoPoint(latitude=30 + index % 15, longitude=-120 + index % 45),
            country_code="US",
        )
        for index, location_id in enumerate(location_ids(locations))
    ]
    levels = [
        inventory_pb2.StockLevel(location_id=location_id, sku=sku, on_hand=PLENTY)
        for sku in skus(sku_count)
        for location_id in location_ids(locations)
    ]
    levels.append(
        inventory_pb2.StockLevel(location_id=location_ids(1)[0], sku=HOT_SKU, on_hand=HOT_PLENTY)
    )
    with grpc.insecure_channel(address) as channel:
        stock_network(channel, sites, levels)
    return time.perf_counter() - began


def storefront_key(address: str) -> str:
    """Makes the server's first key (a storefront one), which turns its auth on."""
    with grpc.insecure_channel(address) as channel:
        made = api_keys_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
            api_keys_pb2.CreateApiKeyRequest(role=api_keys_pb2.ROLE_STOREFRONT), timeout=30
        )
    return str(made.key)


# --- the run -----------------------------------------------------------------------------------


def run_mode(mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    store = workdir / f"ledger-{mode.lower()}.sqlite3"
    with contextlib.ExitStack() as servers:
        server = servers.enter_context(omniroute_server(store, args=["--sqlite-synchronous", mode]))
        transport_only = server
        if "create_transport" in args.scenarios:
            transport_only = servers.enter_context(
                omniroute_server(
                    workdir / f"transport-{mode.lower()}.sqlite3", entry=TRANSPORT_ONLY_SERVER
                )
            )
        targets = {"create_transport": transport_only}
        key = ""
        if "create_observed" in args.scenarios:
            targets["create_observed"] = servers.enter_context(
                omniroute_server(
                    workdir / f"observed-{mode.lower()}.sqlite3",
                    args=["--sqlite-synchronous", mode, *OBSERVED],
                )
            )
            seed(targets["create_observed"].address, args.locations, args.skus)
            key = storefront_key(targets["create_observed"].address)
        for name, flag in (
            ("create_unlogged", "--no-change-log"),
            ("create_unrecorded", "--no-history"),
        ):
            if name in args.scenarios:
                targets[name] = servers.enter_context(
                    omniroute_server(
                        workdir / f"{name}-{mode.lower()}.sqlite3",
                        args=["--sqlite-synchronous", mode, flag],
                    )
                )
                seed(targets[name].address, args.locations, args.skus)
        log(f"[{mode}] server pid {server.pid} on port {server.port}; seeding...")
        seconds = seed(server.address, args.locations, args.skus)
        log(
            f"[{mode}] seeded {args.locations} locations x {args.skus} SKUs "
            f"({args.locations * args.skus + 1} stock rows) in {seconds:.1f} s"
        )
        runs: dict[str, list[LoadResult]] = {name: [] for name in args.scenarios}
        for repeat in range(args.repeats):
            for name in args.scenarios:
                target = targets.get(name, server)
                result = run_load(
                    target.address,
                    workload(name, args.locations, args.skus, key if name in SECURED else ""),
                    **args.load,
                    server_pid=target.pid,
                    seed=repeat * 100 + len(runs[name]),
                )
                runs[name].append(result)
                log(
                    f"[{mode}] repeat {repeat + 1}/{args.repeats} {name:<12} "
                    f"{result.rps:8.0f} RPC/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms  errors {result.error_count}  "
                    f"cores: server {result.server_cpu or 0:.2f} "
                    f"clients {result.client_cpu or 0:.2f} other {result.other_cpu or 0:.2f}"
                )
    scenarios = {name: summarise(found) for name, found in runs.items()}
    out: dict[str, Any] = {"seed_seconds": seconds, "scenarios": scenarios}
    if "echo" in runs:
        echo = scenarios["echo"]["rps"]
        for name, mine_runs in runs.items():
            scenarios[name]["vs_echo"] = scenarios[name]["rps"] / echo if echo else None
            # Same-repeat pairs ran back to back, so their ratio cancels slow drifts in load.
            scenarios[name]["vs_echo_paired_median"] = median(
                [
                    mine.rps / theirs.rps
                    for mine, theirs in zip(mine_runs, runs["echo"], strict=True)
                    if theirs.rps
                ]
            )
    return out


def rows(results: dict[str, Any]) -> list[list[object]]:
    table = []
    for mode, found in results["modes"].items():
        for name, summary in found["scenarios"].items():
            ratio = summary.get("vs_echo")
            table.append(
                [
                    mode,
                    LABELS[name],
                    f"{summary['rpcs']:,}",
                    f"{summary['rps']:,.0f}",
                    f"{summary['p50_ms']:.2f}",
                    f"{summary['p90_ms']:.2f}",
                    f"{summary['p99_ms']:.2f}",
                    errors_cell(summary),
                    _cores(summary),
                    # Server CPU per RPC: what one call costs the server, whatever the load.
                    cell(summary.get("server_cpu_ms_per_rpc")),
                    cell(ratio),
                ]
            )
    return table


def _cores(summary: dict[str, Any]) -> str:
    parts = [summary.get(key) for key in ("server_cpu", "client_cpu", "other_cpu")]
    return "/".join("?" if part is None else f"{part:.2f}" for part in parts)


HEADERS = (
    "durability",
    "scenario",
    "RPCs",
    "RPC/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "errors",
    "cores srv/cli/other",
    "srv CPU ms/RPC",
    "x echo",
)


def verdicts(results: dict[str, Any]) -> list[str]:
    lines = []
    for mode, found in results["modes"].items():
        create = found["scenarios"].get("create", {})
        ratio = create.get("vs_echo")
        if ratio is None:
            continue
        met = "meets" if ratio >= TARGET_RATIO else "MISSES"
        lines.append(
            f"synchronous={mode}: CreateReservation {create['rps']:,.0f} RPC/s / echo "
            f"{found['scenarios']['echo']['rps']:,.0f} RPC/s = {ratio:.2f} "
            f"(paired median {create['vs_echo_paired_median']:.2f}); {met} the target "
            f">= {TARGET_RATIO}"
        )
        transport = found["scenarios"].get("create_transport", {}).get("rps")
        if transport and create.get("rps"):
            # Both saturate one server process: 1 / RPC/s is the share of its capacity (and of
            # the machine's) that one call takes.
            alone, whole = 1000 / transport, 1000 / create["rps"]
            lines.append(
                f"synchronous={mode}: one CreateReservation takes {whole:.2f} ms of capacity: "
                f"{alone:.2f} ms the transport's (transport only: {transport:,.0f} RPC/s) and "
                f"{whole - alone:.2f} ms the ledger's, {(whole - alone) / alone:.2f}x the "
                "transport's"
            )
        for name, what in (("create_unlogged", "change log"), ("create_unrecorded", "history")):
            without = found["scenarios"].get(name, {})
            if without.get("rps") and create.get("rps"):
                kept = create["rps"] / without["rps"]
                met = "meets" if kept >= OBSERVED_TARGET else "MISSES"
                lines.append(
                    f"synchronous={mode}: with the {what}, CreateReservation "
                    f"{create['rps']:,.0f} RPC/s = {kept:.2f}x the same without it "
                    f"({without['rps']:,.0f}); server CPU {create['server_cpu_ms_per_rpc']:.2f} vs "
                    f"{without['server_cpu_ms_per_rpc']:.2f} ms per call; {met} the target >= "
                    f"{OBSERVED_TARGET}"
                )
        observed = found["scenarios"].get("create_observed", {})
        if observed.get("rps") and create.get("rps"):
            kept = observed["rps"] / create["rps"]
            met = "meets" if kept >= OBSERVED_TARGET else "MISSES"
            lines.append(
                f"synchronous={mode}: with an API key, metrics and a JSON access log, "
                "CreateReservation "
                f"{observed['rps']:,.0f} RPC/s = {kept:.2f}x bare ({create['rps']:,.0f}); "
                f"server CPU {observed['server_cpu_ms_per_rpc']:.2f} vs "
                f"{create['server_cpu_ms_per_rpc']:.2f} ms per call; {met} the target "
                f">= {OBSERVED_TARGET}"
            )
    return lines


def markdown(results: dict[str, Any]) -> str:
    config = results["config"]
    text = [
        "# Ledger benchmark: CreateReservation and GetAvailability vs the gRPC echo ceiling",
        "",
        f"`{results['command']}`",
        "",
        f"{config['clients']} client processes x {config['threads']} threads, closed loop over "
        f"loopback; {config['warmup_s']:g} s warm-up + {config['duration_s']:g} s measured per "
        f"scenario, {config['repeats']} round-robin repeats, medians shown. Seed: "
        f"{config['locations']} locations x {config['skus']} SKUs. Latencies are client-side. "
        "'cores' is CPU used during the window by the server process, by all client processes "
        "and by anything else on the machine (1.00 = one core; the machine has "
        f"{results['machine']['cores']}). 'srv CPU ms/RPC' is the server's CPU time per call: "
        "the cost of one RPC, less sensitive to the machine's other load than RPC/s.",
        "",
        f"**{results['note']}.**",
        "",
        markdown_table(HEADERS, rows(results), left=2),
        "",
        *[f"- {line}" for line in verdicts(results)],
        f"- Other work on the machine used a median {_other_load(results):.2f} cores during the "
        "measured windows (see 'cores' above): figures move with it.",
        "",
        footer(results),
        "",
    ]
    return "\n".join(text)


def _other_load(results: dict[str, Any]) -> float:
    values = [
        run["other_cpu"]
        for found in results["modes"].values()
        for summary in found["scenarios"].values()
        for run in summary["repeats"]
        if run.get("other_cpu") is not None
    ]
    return median(values) if values else float("nan")


def plot(results: dict[str, Any]) -> Any:
    import numpy as np  # noqa: PLC0415  (clients never need it)

    modes = list(results["modes"])
    names = list(results["config"]["scenarios"])
    colours = {"FULL": "#1f5f99", "NORMAL": "#e08a1e"}
    width, slots = plots.slots(len(modes), len(names))
    x = np.arange(len(names))
    figure, (left, right) = plots.subplots(1, 2, figsize=(13, 5.6))

    for mode, where in zip(modes, slots, strict=True):
        scenarios = results["modes"][mode]["scenarios"]
        rps = [scenarios[name]["rps"] for name in names]
        bars = left.bar(where, rps, width, label=f"synchronous={mode}", color=colours[mode])
        for bar, name in zip(bars, names, strict=True):
            ratio = scenarios[name].get("vs_echo")
            label = f"{bar.get_height():,.0f}"
            if ratio is not None and name != "echo":
                label += f"\n{ratio:.2f}x"
            plots.label_above(
                left,
                bar.get_x() + bar.get_width() / 2,
                bar.get_height(),
                label,
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"},
            )
        if "echo" in scenarios:
            half = TARGET_RATIO * scenarios["echo"]["rps"]
            left.axhline(
                half,
                color=colours[mode],
                linestyle=":",
                linewidth=1.2,
                label=f"{TARGET_RATIO:g}x echo, the target ({mode})",
            )
        plots.p50_p99_bars(
            right,
            where,
            [scenarios[name]["p50_ms"] for name in names],
            [scenarios[name]["p99_ms"] for name in names],
            width,
            colours[mode],
            labels=(f"p50 ({mode})", f"p99 ({mode})"),
        )

    pretty = [textwrap.fill(LABELS[name], 18, break_long_words=False) for name in names]
    left.set_xticks(x, pretty, fontsize=8)
    left.set_ylabel("RPC/s (median of repeats)")
    left.set_title("Throughput (label: RPC/s and ratio to echo)", fontsize=10)
    left.set_ylim(0, left.get_ylim()[1] * 1.15)
    left.legend(fontsize=8, loc="upper right")
    left.grid(axis="y", alpha=0.3)
    right.set_xticks(x, pretty, fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("client latency, ms (log scale)")
    right.set_title("Latency: p50 (solid) and p99 (light)", fontsize=10)
    right.set_ylim(right.get_ylim()[0], right.get_ylim()[1] * 2)
    right.legend(fontsize=8, loc="upper left", ncol=2)
    right.grid(axis="y", alpha=0.3, which="both")
    config = results["config"]
    figure.suptitle(
        "omniroute ledger over gRPC on SQLite (WAL): "
        f"{config['clients']} client processes x {config['threads']} threads, "
        f"{config['duration_s']:g} s x {config['repeats']} per scenario\n"
        f"{results['machine']['cores']} cores shared by server, clients and other work "
        f"(median {_other_load(results):.2f} cores busy with other work during the windows): "
        "relative figures for this machine",
        fontsize=10,
    )
    return figure


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = BenchParser(
        __doc__,
        "ledger",
        load={"duration": 10.0, "threads": 4, "repeats": 3},
        quick={"duration": 2.0, "warmup": 0.5, "repeats": 1, "locations": 20, "skus": 100},
        quick_help="2 s windows, 0.5 s warm-up, 1 repeat, 20 locations x 100 SKUs",
    )
    parser.add_argument("--locations", type=int, default=100)
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument(
        "--modes", type=listed(str.upper), default=",".join(MODES), help="SQLite synchronous modes"
    )
    parser.add_argument("--scenarios", type=listed(str, SCENARIOS), default=",".join(SCENARIOS))
    args = parser.parse(argv)
    if args.locations < 10 or args.skus < 10:
        parser.error("GetAvailability samples 10 x 10: need at least 10 locations and 10 SKUs")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {
        **header("ledger"),
        "target": {"create_vs_echo": TARGET_RATIO},
        "config": {
            **args.load,
            "repeats": args.repeats,
            "locations": args.locations,
            "skus": args.skus,
            "modes": args.modes,
            "scenarios": args.scenarios,
        },
        "modes": {},
    }
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as workdir:
        for mode in args.modes:
            results["modes"][mode] = run_mode(mode, args, Path(workdir))

    print()
    print(results["note"])
    print(
        f"{args.clients} client processes x {args.threads} threads; {args.duration:g} s windows "
        f"x {args.repeats} repeats (medians); latencies client-side"
    )
    print(text_table(HEADERS, rows(results), left=2))
    for line in verdicts(results):
        print(line)
    print(f"other work on the machine: median {_other_load(results):.2f} cores during the windows")
    args.files.save(results, markdown=markdown(results), figures={"": plot(results)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
