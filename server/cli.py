"""The `omniroute` command: `serve`, `migrate`, `keys`, `import`, `export` and `protos`.

Every flag also reads an OMNIROUTE_* environment variable, named after the flag."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from server import export_command, import_command, keys_command
from server.domain.port import Store
from server.storage.factory import open_store
from server.storage.migrations import SchemaTooNew
from server.storage.sqlite import SYNCHRONOUS_MODES

SWITCH_INTERVAL_S = 0.0005
"""How long a thread holds the GIL while another waits for it (Python's default: 5 ms). The
event loop gives up the GIL several times per RPC, and while a worker thread computes (a big
GetAvailability, a RouteOrder's snapshot) each time costs the loop up to this long."""


MAX_CONCURRENT_RPCS = 1000
"""The operator's default bound on RPCs served at once (`start_server` says what it does)."""


def _env(name: str, default: str) -> str:
    return os.environ.get(f"OMNIROUTE_{name}", default)


def shown(store: str) -> str:
    """The store as it may be printed or logged: a DSN's password replaced by ***."""
    store = re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", store)
    parts = urlsplit(store)
    if parts.password is None:
        return store
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _refuse(reason: object) -> int:
    print(f"omniroute: refusing to start: {reason}", file=sys.stderr, flush=True)
    return 2


def _log_to_stderr(args: argparse.Namespace) -> None:
    """Text lines for people, or one JSON object per line (extra fields included) for machines."""
    handler = logging.StreamHandler()
    if args.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter  # noqa: PLC0415 - only when used

        handler.setFormatter(JsonFormatter("{asctime}{levelname}{name}{message}", style="{"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])


def _open(args: argparse.Namespace) -> Store:
    _log_to_stderr(args)
    return open_store(
        args.store, sqlite_synchronous=args.sqlite_synchronous, pool_size=args.pool_size
    )


def serve(args: argparse.Namespace) -> int:
    """Serves until SIGTERM or SIGINT, then stops within the grace period."""
    # Imported here: `migrate` and `protos` need no gRPC.
    from server.app import start_server  # noqa: PLC0415
    from server.domain.ledger import Ledger  # noqa: PLC0415
    from server.transport import telemetry, tracing  # noqa: PLC0415
    from server.transport.tls import ServerTls, TlsFiles, is_loopback  # noqa: PLC0415

    tls = None
    if args.tls_cert:
        client_ca = Path(args.tls_client_ca) if args.tls_client_ca else None
        try:
            tls = ServerTls(TlsFiles(Path(args.tls_cert), Path(args.tls_key), client_ca))
        except OSError as error:
            return _refuse(f"cannot read the TLS files: {error}")
    elif not is_loopback(args.address) and not args.insecure:
        return _refuse(
            f"{args.address} is reachable from other machines: serve it with --tls-cert and "
            "--tls-key, or pass --insecure to serve it in plaintext"
        )
    try:
        tracer_provider = tracing.start()
    except ValueError as error:
        return _refuse(error)
    sinks: list[telemetry.Sink] = [telemetry.AccessLog()] if args.access_log else []
    metrics_http = None
    if args.metrics_address:
        metrics = telemetry.Metrics()
        try:
            metrics_http = telemetry.serve_metrics(args.metrics_address, metrics)
        except (OSError, ValueError) as error:
            return _refuse(f"cannot serve metrics on {args.metrics_address}: {error}")
        sinks.append(metrics)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        store = _open(args)
    except SchemaTooNew as error:
        return _refuse(error)
    try:
        running = start_server(
            args.address,
            store,
            ledger=Ledger(log_changes=args.change_log, record_history=args.history),
            workers=args.workers,
            solve_workers=args.solve_workers,
            solve_queue=args.solve_queue,
            max_concurrent_rpcs=args.max_concurrent_rpcs,
            tls=tls,
            telemetry=sinks,
            max_request_bytes=args.max_request_bytes,
            request_id_retention_s=args.request_id_days * 24 * 3600,
            change_log_retention_s=args.change_log_days * 24 * 3600,
            history_retention_s=args.history_days * 24 * 3600,
            tracer_provider=tracer_provider,
            require_auth=args.require_auth,
            reflection_on=args.reflection,
        )
    except OSError as error:
        store.close()
        return _refuse(error)
    print(f"omniroute listening on port {running.port} (store: {shown(args.store)})", flush=True)
    if not running.keys.enforced and not is_loopback(args.address):
        logging.warning(
            "no API key exists: anyone who reaches %s may call every RPC; make one with "
            "`omniroute keys create --role admin`, or serve with --require-auth",
            args.address,
        )
    if metrics_http is not None:
        metrics.watch(running.store.stats)
        metrics.watch(lambda: {"reservations_expired_total": running.sweeper.expired})
        metrics.watch(
            lambda: {
                "feed_watchers": running.changes.watchers,
                "change_log_newest_sequence": running.changes.newest,
            }
        )
        print(f"omniroute metrics on port {metrics_http.server_port} (/metrics)", flush=True)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logging.info("received %s; stopping within %.0f s", signal.Signals(signum).name, args.grace)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if tls is not None:
        signal.signal(signal.SIGHUP, lambda _signum, _frame: tls.reload())
    stopping.wait()
    running.stop(args.grace)
    if tracer_provider is not None:
        tracer_provider.shutdown()  # sends the spans still buffered
    if metrics_http is not None:
        metrics_http.shutdown()
    return 0


def migrate(args: argparse.Namespace) -> int:
    """Brings the store's schema up to date (as `serve` does at start) and exits."""
    try:
        store = _open(args)
    except SchemaTooNew as error:
        return _refuse(error)
    store.close()
    print(f"omniroute: the schema of {shown(args.store)} is up to date", flush=True)
    return 0


def protos(_args: argparse.Namespace) -> int:
    """Prints the directory of the bundled .proto files: one include root (`protoc -I`) with
    omniroute's services and the google/rpc messages its error details use."""
    print(resources.files("omniroute") / "protos")
    return 0


def _store_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--store",
        default=_env("STORE", "data/omniroute.sqlite3"),
        help="SQLite file path, or a postgresql:// DSN (env OMNIROUTE_STORE)",
    )
    flags.add_argument(
        "--sqlite-synchronous",
        default=_env("SQLITE_SYNCHRONOUS", "FULL"),
        choices=SYNCHRONOUS_MODES,
        type=str.upper,
        help="SQLite durability: NORMAL survives a killed process, FULL also power loss "
        "(env OMNIROUTE_SQLITE_SYNCHRONOUS)",
    )
    flags.add_argument(
        "--pool-size",
        type=int,
        default=_env("POOL_SIZE", "8"),
        help="PostgreSQL connections per server process; ignored for SQLite "
        "(env OMNIROUTE_POOL_SIZE)",
    )
    flags.add_argument(
        "--log-level", default=_env("LOG_LEVEL", "INFO"), help="env OMNIROUTE_LOG_LEVEL"
    )
    flags.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "text"),
        choices=("text", "json"),
        help="log lines on stderr: text, or one JSON object per line (env OMNIROUTE_LOG_FORMAT)",
    )
    return flags


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=_env("ADDRESS", "localhost:50051"),
        help="host:port to listen on (env OMNIROUTE_ADDRESS); port 0 picks a free port",
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
        "--tls-cert",
        default=_env("TLS_CERT", ""),
        help="PEM certificate chain to serve TLS with; reloaded on SIGHUP (env OMNIROUTE_TLS_CERT)",
    )
    parser.add_argument(
        "--tls-key",
        default=_env("TLS_KEY", ""),
        help="PEM private key of --tls-cert; reloaded on SIGHUP (env OMNIROUTE_TLS_KEY)",
    )
    parser.add_argument(
        "--tls-client-ca",
        default=_env("TLS_CLIENT_CA", ""),
        help="PEM CA certificates: require client certificates they signed (mutual TLS; "
        "env OMNIROUTE_TLS_CLIENT_CA)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=_env("INSECURE", "") not in ("", "0", "false"),
        help="serve plaintext on an address other machines can reach (refused without it; "
        "env OMNIROUTE_INSECURE=1)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        default=_env("ACCESS_LOG", "") not in ("", "0", "false"),
        help="log a line per RPC at INFO: method, code, ErrorInfo reason, duration, peer, "
        "API key id, request_id (logger omniroute.access; env OMNIROUTE_ACCESS_LOG=1)",
    )
    parser.add_argument(
        "--require-auth",
        action="store_true",
        default=_env("REQUIRE_AUTH", "") not in ("", "0", "false"),
        help="refuse calls without a valid API key even before any key exists (auth is on "
        "anyway once one does; env OMNIROUTE_REQUIRE_AUTH=1)",
    )
    parser.add_argument(
        "--reflection",
        action=argparse.BooleanOptionalAction,
        default=_env("REFLECTION", "1") not in ("", "0", "false"),
        help="serve gRPC reflection (v1 and v1alpha), open to callers without a key "
        "(env OMNIROUTE_REFLECTION=0 turns it off)",
    )
    parser.add_argument(
        "--metrics-address",
        default=_env("METRICS_ADDRESS", ""),
        help="host:port to serve Prometheus metrics on at /metrics over HTTP; off when empty "
        "(env OMNIROUTE_METRICS_ADDRESS)",
    )
    parser.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=_env("MAX_CONCURRENT_RPCS", str(MAX_CONCURRENT_RPCS)),
        help="RPCs served at once (health checks and streams included); beyond that a call is "
        "refused at once with RESOURCE_EXHAUSTED, not queued (env OMNIROUTE_MAX_CONCURRENT_RPCS)",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=_env("MAX_REQUEST_BYTES", str(4 * 1024 * 1024)),
        help="largest request accepted, in bytes; bigger ones get RESOURCE_EXHAUSTED (replies "
        "stay under 4 MiB whatever this is; env OMNIROUTE_MAX_REQUEST_BYTES)",
    )
    parser.add_argument(
        "--request-id-days",
        type=float,
        default=_env("REQUEST_ID_DAYS", "7"),
        help="days a mutation's response is kept for a retry with the same request_id, then "
        "forgotten (env OMNIROUTE_REQUEST_ID_DAYS)",
    )
    parser.add_argument(
        "--change-log",
        action=argparse.BooleanOptionalAction,
        default=_env("CHANGE_LOG", "1") not in ("", "0", "false"),
        help="log every availability change for WatchAvailability and ListAvailabilityChanges; "
        "with --no-change-log the feed stays silent (env OMNIROUTE_CHANGE_LOG=0)",
    )
    parser.add_argument(
        "--change-log-days",
        type=float,
        default=_env("CHANGE_LOG_DAYS", "7"),
        help="days the availability change log keeps an entry: how long a feed consumer may "
        "stay away and still resume (env OMNIROUTE_CHANGE_LOG_DAYS)",
    )
    parser.add_argument(
        "--history",
        action=argparse.BooleanOptionalAction,
        default=_env("HISTORY", "1") not in ("", "0", "false"),
        help="record every stock movement and network change for ListStockMovements "
        "(env OMNIROUTE_HISTORY=0 to turn off)",
    )
    parser.add_argument(
        "--history-days",
        type=float,
        default=_env("HISTORY_DAYS", "90"),
        help="days a stock movement is kept (env OMNIROUTE_HISTORY_DAYS)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=_env("GRACE", "10"),
        help="seconds in-flight calls get to finish on SIGTERM/SIGINT (env OMNIROUTE_GRACE)",
    )


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per operator task."""
    root = argparse.ArgumentParser(
        prog="omniroute",
        description="omniroute: omnichannel inventory ledger and order routing over gRPC.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    store = _store_flags()
    for name, parents, run, help_text in (
        ("serve", [store], serve, "serve the gRPC API until SIGTERM or SIGINT"),
        ("migrate", [store], migrate, "bring the store's schema up to date and exit"),
        ("protos", [], protos, "print the directory of the bundled .proto files (protoc -I)"),
    ):
        command = commands.add_parser(
            name,
            parents=parents,
            help=help_text,
            description=help_text,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        command.set_defaults(run=run)
        if run is serve:
            _serve_flags(command)
    keys_command.add_parser(commands)
    import_command.add_parser(commands)
    export_command.add_parser(commands)
    return root


def _check(root: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """argparse converts string defaults (the environment) with `type` but does not check them
    against `choices` or ranges: done here, so a bad variable is an error, not a traceback."""
    if getattr(args, "log_format", "text") not in ("text", "json"):
        root.error("--log-format must be text or json")
    if getattr(args, "sqlite_synchronous", SYNCHRONOUS_MODES[0]) not in SYNCHRONOUS_MODES:
        root.error(f"--sqlite-synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    for name in ("workers", "solve_workers", "pool_size", "max_concurrent_rpcs"):
        if getattr(args, name, 1) < 1:
            root.error(f"--{name.replace('_', '-')} must be at least 1")
    if bool(getattr(args, "tls_cert", "")) != bool(getattr(args, "tls_key", "")):
        root.error("--tls-cert and --tls-key go together")
    if getattr(args, "tls_client_ca", "") and not getattr(args, "tls_cert", ""):
        root.error("--tls-client-ca needs --tls-cert and --tls-key")
    if getattr(args, "solve_queue", 0) < 0:
        root.error("--solve-queue must not be negative")
    if not 64 * 1024 <= getattr(args, "max_request_bytes", 64 * 1024) <= 256 * 1024 * 1024:
        root.error("--max-request-bytes must be between 65536 and 268435456")
    if getattr(args, "request_id_days", 1) <= 0:
        root.error("--request-id-days must be positive")
    if getattr(args, "change_log_days", 1) <= 0:
        root.error("--change-log-days must be positive")
    if getattr(args, "history_days", 1) <= 0:
        root.error("--history-days must be positive")
    if getattr(args, "grace", 0) < 0:
        root.error("--grace must not be negative")


def main(argv: list[str] | None = None) -> int:
    root = parser()
    args = root.parse_args(argv)
    _check(root, args)
    result: int = args.run(args)
    return result
