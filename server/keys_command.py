"""`omniroute keys create|list|revoke`: API keys, through a running server's ApiKeyService
(with an admin key once keys exist), or with `--store`, on the store itself: how the first key
of a server started with --require-auth is made."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from omniroute.admin.v1 import api_keys_pb2 as ak

from server.client_connection import call_metadata, connection_flags, open_channel
from server.domain.access import Role

_TTL = re.compile(r"^(\d+)([dhm])$")
_UNIT_S = {"d": 86400, "h": 3600, "m": 60}
ROLE_NAMES = [role.value for role in Role]


def add_parser(commands: Any) -> None:
    keys = commands.add_parser(
        "keys",
        help="create, list and revoke API keys",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    connection = _connection_flags()
    create = actions.add_parser(
        "create", parents=[connection], help="make a key and print it (shown this once)"
    )
    create.add_argument("--role", required=True, choices=ROLE_NAMES)
    create.add_argument("--tenant", default="", help="tenant of its request_ids (default: its id)")
    create.add_argument("--description", default="", help="free text for operators")
    create.add_argument("--ttl", type=_ttl, help="lifetime such as 90d, 12h or 30m (default: none)")
    create.set_defaults(run=_create)
    listing = actions.add_parser("list", parents=[connection], help="list every key")
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", parents=[connection], help="revoke a key for good")
    revoke.add_argument("id", help="the key's id (as listed)")
    revoke.set_defaults(run=_revoke)


def _connection_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False, parents=[connection_flags()])
    flags.add_argument(
        "--store",
        default=None,
        help="work on this store (SQLite path or postgresql:// DSN) instead of a server",
    )
    return flags


def _ttl(text: str) -> int:
    """Seconds of "90d", "12h" or "30m"."""
    match = _TTL.match(text.strip())
    if not match or int(match[1]) == 0:
        raise argparse.ArgumentTypeError("give a positive whole number of d, h or m, e.g. 90d")
    return int(match[1]) * _UNIT_S[match[2]]


def _create(args: argparse.Namespace) -> int:
    request = ak.CreateApiKeyRequest(
        role=ak.Role.Value(f"ROLE_{args.role.upper().replace('-', '_')}"),
        tenant=args.tenant,
        description=args.description,
    )
    if args.ttl:
        request.ttl.seconds = args.ttl
    response = _call(args, "CreateApiKey", request)
    if response is None:
        return 1
    key = response.api_key
    print(
        f"made key {key.id} (role {args.role}, tenant {key.tenant}); it is shown this once, "
        "store it now:",
        file=sys.stderr,
    )
    print(response.key, flush=True)
    return 0


def _list(args: argparse.Namespace) -> int:
    response = _call(args, "ListApiKeys", ak.ListApiKeysRequest())
    if response is None:
        return 1
    rows = [("ID", "ROLE", "TENANT", "CREATED", "EXPIRES", "LAST USED", "REVOKED", "DESCRIPTION")]
    for key in response.api_keys:
        rows.append(
            (
                key.id,
                _role(key.role),
                key.tenant,
                _time(key, "create_time"),
                _time(key, "expire_time"),
                _time(key, "last_use_time"),
                _time(key, "revoke_time"),
                key.description,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    response = _call(args, "RevokeApiKey", ak.RevokeApiKeyRequest(id=args.id))
    if response is None:
        return 1
    print(f"revoked key {response.api_key.id}", file=sys.stderr)
    return 0


def _role(value: int) -> str:
    return ak.Role.Name(value).removeprefix("ROLE_").lower().replace("_", "-")  # type: ignore[arg-type]


def _time(key: ak.ApiKey, field: str) -> str:
    if not key.HasField(field):  # type: ignore[arg-type]
        return "-"
    return (
        datetime.fromtimestamp(getattr(key, field).seconds, UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    """ApiKeyService's `method` on the server, or on the store with --store; None (after a
    message on stderr) when it fails."""
    if args.store is not None:
        return _on_store(args, method, request)
    import grpc  # noqa: PLC0415 - the --store path needs no gRPC
    from omniroute.admin.v1 import api_keys_pb2_grpc  # noqa: PLC0415

    metadata = call_metadata(args)
    with open_channel(args) as channel:
        stub: Callable[..., Any] = getattr(api_keys_pb2_grpc.ApiKeyServiceStub(channel), method)
        try:
            return stub(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            print(f"omniroute keys: {error.code().name}: {error.details()}", file=sys.stderr)
            return None


def _on_store(args: argparse.Namespace, method: str, request: Any) -> Any:
    """The same call, applied to the store directly."""
    from server.domain import access  # noqa: PLC0415
    from server.domain.errors import DomainError  # noqa: PLC0415
    from server.storage.factory import open_store  # noqa: PLC0415
    from server.transport import convert  # noqa: PLC0415
    from server.transport.validate import api_keys as validate  # noqa: PLC0415

    now = time.time_ns() // 1000
    store = open_store(args.store)
    try:
        if method == "CreateApiKey":
            role, tenant, description, expires_us = validate.create_api_key(request, now)
            secret, key = access.issue(role, tenant, description, now, expires_us)
            with store.write() as uow:
                uow.put_api_key(key)
            return ak.CreateApiKeyResponse(api_key=convert.api_key(key), key=secret)
        if method == "ListApiKeys":
            with store.read() as uow:
                return ak.ListApiKeysResponse(api_keys=map(convert.api_key, uow.api_keys()))
        with store.write() as uow:
            revoked = access.revoke(uow, validate.key_id(request), now)
        return ak.RevokeApiKeyResponse(api_key=convert.api_key(revoked))
    except DomainError as error:
        print(f"omniroute keys: {error.reason}: {error.message}", file=sys.stderr)
        return None
    finally:
        store.close()
