"""How the operator's commands (`omniroute keys`, `import`, `export`) reach a running server:
one set of flags (address, TLS, API key) and the channel and call metadata they make."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc


def connection_flags() -> argparse.ArgumentParser:
    """--address, --api-key and --tls-ca, as a parent parser."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--address",
        default=os.environ.get("OMNIROUTE_ADDRESS", "localhost:50051"),
        help="the server to ask (env OMNIROUTE_ADDRESS)",
    )
    flags.add_argument(
        "--api-key",
        default=os.environ.get("OMNIROUTE_API_KEY", ""),
        help="an API key whose role may make the calls; env OMNIROUTE_API_KEY (preferred: flags "
        "show in process lists)",
    )
    flags.add_argument(
        "--tls-ca",
        default=os.environ.get("OMNIROUTE_TLS_CA", ""),
        help="PEM CA certificates: talk TLS to the server and trust these (env OMNIROUTE_TLS_CA)",
    )
    return flags


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """A channel to --address: TLS trusting --tls-ca when given, plaintext otherwise."""
    import grpc  # noqa: PLC0415 - commands that work on the store need no gRPC

    if args.tls_ca:
        credentials = grpc.ssl_channel_credentials(Path(args.tls_ca).read_bytes())
        return grpc.secure_channel(args.address, credentials)
    return grpc.insecure_channel(args.address)


def call_metadata(args: argparse.Namespace) -> tuple[tuple[str, str | bytes], ...]:
    """The API key as bearer metadata, when there is one."""
    return (("authorization", f"Bearer {args.api_key}"),) if args.api_key else ()
