"""Units of work for RPCs. A mutation runs in one write unit of work together with its
request_id bookkeeping (AIP-155), so a response is remembered exactly when its changes commit.
Transient store failures (a conflict with another writer, a connection lost before commit) are
retried here with backoff, so clients see ABORTED or UNAVAILABLE only when retries run out.

`Transactions` is what the servicers, which run on the server's event loop, call: on a
`LoopStore` (SQLite) the units of work run on the loop itself, otherwise (PostgreSQL, where each
statement is a network round trip) on the loop's worker threads. A network change, and a
request the servicer calls big, run on a worker thread instead, so that no request holds the
loop, and every other caller with it, for more than a few milliseconds. Summing a big group's
stock is slow too: a unit of work on the loop, or a write on any thread, stops before it
(port.WouldBlock); the sums are then read into the cache on a thread, outside any write,
and the unit of work runs again. `query` and `mutate`
are the same on a thread of one's own (RouteOrder's, the sweeper's)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from google.protobuf.message import Message

from server.domain.errors import AlreadyExists, Conflict, StoreUnavailable
from server.domain.port import (
    LoopStore,
    RememberedResponse,
    Store,
    UnitOfWork,
    WouldBlock,
)

Response = TypeVar("Response", bound=Message)
Result = TypeVar("Result")
ATTEMPTS = 6
FIRST_BACKOFF_S = 0.005


class Transactions:
    """Runs the units of work of RPCs from the event loop."""

    def __init__(self, store: Store, now_us: Callable[[], int]) -> None:
        self.store = store
        self.now_us = now_us
        self._on_loop = store if isinstance(store, LoopStore) else None

    async def query(self, run: Callable[[UnitOfWork], Result], *, big: bool = False) -> Result:
        """`run` on a read snapshot; `big`: on a worker thread even where the loop could."""
        store = self._on_loop
        if store is None or big:
            return await asyncio.to_thread(query, self.store, run)

        async def attempt() -> Result:
            with store.read_on_loop() as uow:
                return run(uow)

        try:
            return await retrying_on_loop(attempt)
        except WouldBlock:
            return await asyncio.to_thread(query, self.store, run)

    async def mutate(
        self,
        method: str,
        request: Message,
        response_type: type[Response],
        skus: Collection[str],
        run: Callable[[UnitOfWork], Response],
        *,
        network: bool = False,
        big: bool = False,
    ) -> Response:
        """`mutate` (below), on the loop or on a worker thread."""

        def on_thread() -> Response:
            return mutate(
                self.store, self.now_us, method, request, response_type, skus, run, network=network
            )

        store = self._on_loop
        if store is None or network or big:
            return await asyncio.to_thread(on_thread)
        request_id, digest = _identity(request)

        async def on_loop() -> Response:
            return await retrying_on_loop(
                lambda: store.write_on_loop(
                    lambda uow: _replay_or_run(
                        uow, self.now_us, method, request_id, digest, response_type, run
                    )
                )
            )

        try:
            return await on_loop()
        except WouldBlock:
            await asyncio.to_thread(read_totals, store, skus)
        try:
            return await on_loop()  # unless a writer changed the SKUs' stock meanwhile
        except WouldBlock:
            return await asyncio.to_thread(on_thread)


def _backoff_s(attempt: int) -> float:
    return float(FIRST_BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))


def _retry(error: Conflict | StoreUnavailable, attempt: int) -> bool:
    return attempt < ATTEMPTS and getattr(error, "retry_safe", True)


def retrying(attempt: Callable[[], Result]) -> Result:
    """Runs `attempt` again after retry-safe store failures, with jittered exponential backoff."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except (Conflict, StoreUnavailable) as error:
            if not _retry(error, number):
                raise
            time.sleep(_backoff_s(number))
    raise AssertionError("unreachable")


async def retrying_on_loop(attempt: Callable[[], Awaitable[Result]]) -> Result:
    """`retrying` for the event loop: waits without blocking it."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return await attempt()
        except (Conflict, StoreUnavailable) as error:
            if not _retry(error, number):
                raise
            await asyncio.sleep(_backoff_s(number))
    raise AssertionError("unreachable")


def query(store: Store, run: Callable[[UnitOfWork], Result]) -> Result:
    """Runs `run` on a consistent read snapshot."""

    def attempt() -> Result:
        with store.read() as uow:
            return run(uow)

    return retrying(attempt)


def _identity(request: Message) -> tuple[str, bytes]:
    """The request's request_id and, if it has one, its fingerprint."""
    request_id: str = request.request_id  # type: ignore[attr-defined]
    return request_id, fingerprint(request) if request_id else b""


def fingerprint(request: Message) -> bytes:
    """Digest of the request without its request_id: what "the same request" means."""
    body = type(request)()
    body.CopyFrom(request)
    body.ClearField("request_id")
    return hashlib.sha256(body.SerializeToString(deterministic=True)).digest()


def mutate(
    store: Store,
    now_us: Callable[[], int],
    method: str,
    request: Message,
    response_type: type[Response],
    skus: Collection[str],
    run: Callable[[UnitOfWork], Response],
    *,
    network: bool = False,
) -> Response:
    """Runs `run` in a write unit of work; replays the first response for a repeated
    request_id and refuses a request_id reused for a different request. Totals the write
    needs and no cache holds are summed first, in a read, so that no writer waits for that."""
    request_id, digest = _identity(request)

    def attempt(slow_reads: bool) -> Response:
        return retrying(
            lambda: _mutate_once(
                store,
                now_us,
                method,
                request_id,
                digest,
                response_type,
                skus,
                run,
                network,
                slow_reads,
            )
        )

    try:
        return attempt(slow_reads=False)
    except WouldBlock:
        read_totals(store, skus)
    return attempt(slow_reads=True)


def read_totals(store: Store, skus: Collection[str]) -> None:
    """Sums the SKUs' stock per membership class into the store's cache (a plain read)."""
    query(store, lambda uow: uow.stock_totals(skus))


def _mutate_once(
    store: Store,
    now_us: Callable[[], int],
    method: str,
    request_id: str,
    digest: bytes,
    response_type: type[Response],
    skus: Collection[str],
    run: Callable[[UnitOfWork], Response],
    network: bool,
    slow_reads: bool,
) -> Response:
    with store.write(skus, network=network, slow_reads=slow_reads) as uow:
        return _replay_or_run(uow, now_us, method, request_id, digest, response_type, run)


def _replay_or_run(
    uow: UnitOfWork,
    now_us: Callable[[], int],
    method: str,
    request_id: str,
    digest: bytes,
    response_type: type[Response],
    run: Callable[[UnitOfWork], Response],
) -> Response:
    if request_id:
        seen = uow.remembered(request_id)
        if seen is not None:
            if seen.method != method or seen.fingerprint != digest:
                raise AlreadyExists(
                    "REQUEST_ID_REUSED",
                    f"request_id {request_id} was already used for a different request",
                    request_id=request_id,
                )
            return response_type.FromString(seen.response)
    response = run(uow)
    if request_id:
        uow.remember(
            request_id,
            RememberedResponse(method, digest, response.SerializeToString(deterministic=True)),
            now_us(),
        )
    return response
