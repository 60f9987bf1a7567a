"""`python -m server`: run omniroute. Every flag also reads an OMNIROUTE_* environment variable."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from urllib.parse import urlsplit, urlunsplit

from server.app import start_server
from server.storage.factory import open_store
from server.storage.migrations import SchemaTooNew
from server.storage.sqlite import SYNCHRONOUS_MODES


def _env(name: str, default: str) -> str:
    return os.environ.get(f"OMNIROUTE_{name}", default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="omniroute: omnichannel inventory ledger and order routing over gRPC.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--address",
        default=_env("ADDRESS", "localhost:50051"),
        help="host:port to listen on (env OMNIROUTE_ADDRESS); port 0 picks a free port",
    )
    parser.add_argument(
        "--store",
        default=_env("STORE", "data/omniroute.sqlite3"),
        help="SQLite file path, or a postgresql:// DSN (env OMNIROUTE_STORE)",
    )
    parser.add_argument(
        "--sqlite-synchronous",
        default=_env("SQLITE_SYNCHRONOUS", "FULL"),
        choices=SYNCHRONOUS_MODES,
        type=str.upper,
        help="SQLite durability: NORMAL survives a killed process, FULL also power loss "
        "(env OMNIROUTE_SQLITE_SYNCHRONOUS)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=_env("WORKERS", "16"),
        help="threads for the ledger transactions that leave the event loop: every PostgreSQL "
        "transaction, and RouteOrder's reads and commits (env OMNIROUTE_WORKERS)",
    )
    parser.add_argument(
        "--solve-workers",
        type=int,
        default=_env("SOLVE_WORKERS", "2"),
        help="threads that run RouteOrder's solves, apart from --workers so that long solves "
        "never hold back ledger transactions; one solve uses one core "
        "(env OMNIROUTE_SOLVE_WORKERS)",
    )
    parser.add_argument(
        "--solve-queue",
        type=int,
        default=_env("SOLVE_QUEUE", "8"),
        help="RouteOrder solves that may wait for a solve thread; beyond that RouteOrder is "
        "refused with RESOURCE_EXHAUSTED, reason ROUTING_BUSY (env OMNIROUTE_SOLVE_QUEUE)",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=_env("POOL_SIZE", "8"),
        help="PostgreSQL connections per server process; ignored for SQLite "
        "(env OMNIROUTE_POOL_SIZE)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=_env("GRACE", "10"),
        help="seconds in-flight calls get to finish on SIGTERM/SIGINT (env OMNIROUTE_GRACE)",
    )
    parser.add_argument(
        "--migrate-only",
        action="store_true",
        help="apply schema migrations to the store and exit",
    )
    parser.add_argument(
        "--log-level", default=_env("LOG_LEVEL", "INFO"), help="env OMNIROUTE_LOG_LEVEL"
    )
    # argparse converts string defaults (the environment) with `type` but does not check them
    # against `choices` or ranges: do it here, so a bad variable is an error, not a traceback.
    args = parser.parse_args(argv)
    if args.sqlite_synchronous not in SYNCHRONOUS_MODES:
        parser.error(f"--sqlite-synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    for name in ("workers", "solve_workers", "pool_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.solve_queue < 0:
        parser.error("--solve-queue must not be negative")
    if args.grace < 0:
        parser.error("--grace must not be negative")
    return args


SWITCH_INTERVAL_S = 0.0005
"""How long a thread holds the GIL while another waits for it (Python's default: 5 ms). The
event loop gives up the GIL several times per RPC, and while a worker thread computes (a big
GetAvailability, a RouteOrder's snapshot) each time costs the loop up to this long
(benchmarks/group_bench.py measures a health check meanwhile)."""


def shown(store: str) -> str:
    """The store as it may be printed or logged: a DSN's password replaced by ***."""
    store = re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", store)
    parts = urlsplit(store)
    if parts.password is None:
        return store
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        store = open_store(
            args.store, sqlite_synchronous=args.sqlite_synchronous, pool_size=args.pool_size
        )
    except SchemaTooNew as error:
        print(f"omniroute: refusing to start: {error}", file=sys.stderr, flush=True)
        return 2
    if args.migrate_only:
        store.close()
        logging.info("schema is up to date")
        return 0
    try:
        running = start_server(
            args.address,
            store,
            workers=args.workers,
            solve_workers=args.solve_workers,
            solve_queue=args.solve_queue,
        )
    except OSError as error:
        store.close()
        print(f"omniroute: refusing to start: {error}", file=sys.stderr, flush=True)
        return 2
    print(f"omniroute listening on port {running.port} (store: {shown(args.store)})", flush=True)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logging.info("received %s; stopping within %.0f s", signal.Signals(signum).name, args.grace)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    running.stop(args.grace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
