"""API keys on every RPC: one server interceptor finds the call's key, checks it against the
deployment's keys and the role table (roles.py), and refuses the call before any servicer runs.

Auth is on once any key was ever made (a revoked one counts, so revoking every key cannot open
the server) or the server requires it. Health checking and reflection stay open: a server that
should not describe itself runs without reflection."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import grpc

from server.domain.access import ApiKey, matches, parse
from server.domain.errors import DomainError, PermissionDenied, Unauthenticated
from server.transport.caller import CALLER, Caller
from server.transport.roles import ROLES_OF_RPC
from server.transport.status import to_status
from server.transport.transactions import Transactions

log = logging.getLogger(__name__)
REFRESH_S = 1.0
"""How often a server reads the key table again: how late it sees a revocation, or a key made
through another server."""
LAST_USE_PRECISION_US = 60 * 1_000_000
"""A key's last use is written at most this often: never a write per call."""
REREAD_UNKNOWN_S = 0.1
"""A key id this server does not know makes it read the key table again, at most this often:
a new key works at once, and unknown ids cost the database at most ten reads a second."""
_MAX_VERIFIED = 4096


class KeyRing:
    """The deployment's keys as this server knows them: read from the store at start and every
    REFRESH_S after. A key's secret is checked once (scrypt, on a worker thread, one at a time
    so that a flood of wrong secrets takes at most one core); then the sha256 of the key as
    presented is trusted from memory, as long as the key is valid."""

    def __init__(
        self, transactions: Transactions, now_us: Callable[[], int], *, required: bool = False
    ) -> None:
        self.tx = transactions
        self.now_us = now_us
        self.required = required
        self._keys: dict[str, ApiKey] = {}
        self._any_key = False
        self._verified: dict[bytes, str] = {}
        self._noted_use: dict[str, int] = {}
        self._unsaved_use: dict[str, int] = {}
        self._checking = asyncio.Semaphore(1)
        self._refreshing: asyncio.Task[None] | None = None
        self._read_at = 0.0

    @property
    def enforced(self) -> bool:
        return self.required or self._any_key

    async def refresh(self) -> None:
        """Writes the last uses noted since the last refresh, then reads every key again."""
        unsaved, self._unsaved_use = self._unsaved_use, {}
        if unsaved:
            await self.tx.write(lambda uow: uow.note_api_key_use(unsaved))
        self._read_at = time.monotonic()
        keys = await self.tx.query(lambda uow: uow.api_keys(), big=True)
        self._keys = {key.id: key for key in keys}
        self._any_key = self._any_key or bool(keys)

    def start(self) -> None:
        self._refreshing = asyncio.get_running_loop().create_task(self._keep_fresh())

    async def stop(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refreshing
        with contextlib.suppress(Exception):  # best effort: last uses are to the minute anyway
            await self.refresh()

    async def _keep_fresh(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except (DomainError, OSError) as error:
                if not failing:  # once per outage, not once a second
                    log.warning("cannot read the API keys, keeping the last ones read: %s", error)
                failing = True
            else:
                failing = False

    async def authenticate(self, presented: str) -> Caller | None:
        """The caller `presented` identifies, or None if it is no valid key."""
        now = self.now_us()
        digest = hashlib.sha256(presented.encode()).digest()
        key_id = self._verified.get(digest)
        if key_id is None:
            key_id = await self._verify(presented, now)
            if key_id is None:
                return None
            if len(self._verified) >= _MAX_VERIFIED:
                self._verified.clear()
            self._verified[digest] = key_id
        key = self._keys.get(key_id)
        if key is None or not key.valid_at(now):
            return None
        if now - self._noted_use.get(key_id, key.last_used_us or 0) >= LAST_USE_PRECISION_US:
            self._noted_use[key_id] = self._unsaved_use[key_id] = now
        return Caller(key.id, key.role, key.tenant)

    async def _verify(self, presented: str, now_us: int) -> str | None:
        parsed = parse(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        key = self._keys.get(key_id)
        if key is None and time.monotonic() - self._read_at >= REREAD_UNKNOWN_S:
            await self.refresh()  # made a moment ago, through another server or --store?
            key = self._keys.get(key_id)
        if key is None or not key.valid_at(now_us):
            return None
        async with self._checking:
            return key_id if await asyncio.to_thread(matches, key, secret) else None


class Auth(grpc.aio.ServerInterceptor):
    """Refuses every call to a method outside `open_services` that carries no valid key
    (UNAUTHENTICATED) or whose key's role may not call it (PERMISSION_DENIED)."""

    def __init__(self, keys: KeyRing, open_services: Collection[str]) -> None:
        self.keys = keys
        self.open = tuple(f"/{name}/" for name in open_services)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.keys.enforced or method.startswith(self.open):
            return handler
        presented = _bearer(handler_call_details.invocation_metadata or ())
        if presented is None:
            return _refusing(
                handler,
                Unauthenticated(
                    "API_KEY_MISSING", "send an API key as metadata authorization: Bearer <key>"
                ),
            )
        caller = await self.keys.authenticate(presented)
        if caller is None:
            return _refusing(
                handler, Unauthenticated("API_KEY_INVALID", "the API key is not valid")
            )
        if caller.role not in ROLES_OF_RPC.get(method, ()):
            return _refusing(
                handler,
                PermissionDenied(
                    "ROLE_NOT_ALLOWED",
                    f"role {caller.role.value} may not call {method.rpartition('/')[2]}",
                    role=caller.role.value,
                    method=method,
                ),
            )
        CALLER.set(caller)
        return handler


def _bearer(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    for key, value in metadata:
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], error: DomainError
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of `handler`'s kind that answers `error` without reading the request stream."""
    status = to_status(error)

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort_with_status(status)

    kind = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[handler.request_streaming, handler.response_streaming]
    return kind(refuse)
