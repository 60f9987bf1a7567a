"""The command line the benchmarks share: --out and --name for the result files, --quick for a
smoke run, and where a benchmark asks for them the load flags, --postgres and --baseline."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from support.report import RESULTS, ResultFiles

T = TypeVar("T")
POSTGRES_ENV = ("OMNIROUTE_BENCH_POSTGRES_DSN", "OMNIROUTE_TEST_POSTGRES_DSN")


class BenchParser(argparse.ArgumentParser):
    """A benchmark's parser: its own flags plus the shared ones. `parse` applies the `quick`
    defaults under --quick (explicit flags still win) and sets `args.files` and, with the load
    flags, `args.load`: run_load's keywords, in the order the results' config records them."""

    def __init__(
        self,
        doc: str | None,
        name: str,
        *,
        quick: Mapping[str, Any],
        quick_help: str,
        load: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(
            description=(doc or "").split("\n\n")[0],
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        self._stem = name
        self._quick = dict(quick)
        self._load = load is not None
        if load is not None:
            self._add_load_flags(load)
        self.add_argument("--out", type=Path, default=RESULTS, help="results directory")
        self.add_argument(
            "--name",
            default=None,
            help=f"results file stem, instead of {name} ({name}-quick with --quick)",
        )
        self.add_argument(
            "--quick",
            action="store_true",
            help=f"smoke run: {quick_help} (explicit flags still win); writes {name}-quick.*",
        )

    def _add_load_flags(self, load: Mapping[str, float]) -> None:
        """Closed-loop load (support.load): window, warm-up, clients, threads, repeats."""
        self.add_argument(
            "--duration", type=float, default=load["duration"], help="measured s per window"
        )
        self.add_argument("--warmup", type=float, default=2.0, help="warm-up s before each window")
        self.add_argument("--clients", type=int, default=4, help="client processes")
        self.add_argument(
            "--threads", type=int, default=load["threads"], help="threads per client process"
        )
        if "repeats" in load:
            self.add_argument(
                "--repeats", type=int, default=load["repeats"], help="repeats (median)"
            )

    def add_postgres(self, default: str | None) -> None:
        """--postgres DSN (--dsn too), from the environment when not given."""
        found = next((os.environ[key] for key in POSTGRES_ENV if os.environ.get(key)), None)
        self.add_argument(
            "--postgres",
            "--dsn",
            dest="postgres",
            metavar="DSN",
            default=found or default,
            help="PostgreSQL to measure on, in a schema of its own dropped at the end; "
            f"when not given, ${' or $'.join(POSTGRES_ENV)}" + ("" if default else " (none: skip)"),
        )

    def add_baseline(self) -> None:
        self.add_argument(
            "--baseline",
            default="",
            metavar="REV",
            help="also measure commit REV's server, from a worktree of it (none: skip)",
        )

    def parse(self, argv: list[str] | None = None) -> argparse.Namespace:
        if self.parse_known_args(argv)[0].quick:
            self.set_defaults(**self._quick)
        args = self.parse_args(argv)
        tag = "-quick" if args.quick and not args.name else ""
        args.files = ResultFiles(args.out, args.name or self._stem, tag)
        if self._load:
            args.load = {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "clients": args.clients,
                "threads": args.threads,
            }
        return args


def listed(
    item: Callable[[str], T], choices: Collection[T] | None = None
) -> Callable[[str], list[T]]:
    """An argparse type: a comma-separated list of `item`s (each among `choices`, if given)."""

    def parse(text: str) -> list[T]:
        try:
            values = [item(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error
        unknown = [value for value in values if value not in (choices or values)]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {list(choices)}")
        return values

    return parse
