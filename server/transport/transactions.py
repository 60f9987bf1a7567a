"""Units of work for RPCs. A mutation runs in one write unit of work together with its
request_id bookkeeping (AIP-155), so a response is remembered exactly when its changes commit.
Transient store failures (a conflict with another writer, a connection lost before commit) are
retried here with backoff, so clients see ABORTED or UNAVAILABLE only when retries run out.

`Transactions` is what the servicers, which run on the server's event loop, call. Units of work
of a `LoopStore` run on the loop itself (`SqliteStore` says why, and what it costs); all others,
a network change and a request the servicer calls big run on a worker thread, so that no
request holds the loop, and every other caller with it, for long. A unit of work that would sum
a big group's stock stops first (WouldBlock); the sums are read into the cache on a thread,
outside any write, and the unit of work runs again."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf import message_factory
from google.protobuf.message import Message

from server.domain.errors import AlreadyExists, Conflict, StoreUnavailable
from server.domain.history import CAUSE, Cause
from server.domain.port import (
    LoopStore,
    RememberedResponse,
    Store,
    UnitOfWork,
    WouldBlock,
)
from server.transport.caller import CALLER
from server.transport.services import SERVICES

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
        self.committed: Callable[[], None] = lambda: None
        """Called on the event loop after every mutation commits (the change feed's nudge)."""

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
        request: Message,
        skus: Collection[str],
        run: Callable[[UnitOfWork], Response],
        *,
        network: bool = False,
        big: bool = False,
    ) -> Response:
        """`run` in a write unit of work, on the loop or on a worker thread (`network`, `big`);
        replays the first response for a repeated request_id and refuses a request_id reused
        for a different request. The RPC is the one whose request message `request` is."""
        response = await self._mutate(Identity.of(request), skus, run, network, big)
        self.committed()
        return response

    async def _mutate(
        self,
        identity: Identity,
        skus: Collection[str],
        run: Callable[[UnitOfWork], Response],
        network: bool,
        big: bool,
    ) -> Response:
        def on_thread() -> Response:
            return mutate(self.store, self.now_us, identity, skus, run, network=network)

        store = self._on_loop
        if store is None or network or big:
            return await asyncio.to_thread(on_thread)

        async def on_loop() -> Response:
            return await retrying_on_loop(
                lambda: store.write_on_loop(
                    lambda uow: _replay_or_run(uow, self.now_us, identity, run)
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

    async def write(self, run: Callable[[UnitOfWork], Result]) -> Result:
        """`run` in a write unit of work on a worker thread, without request_id bookkeeping:
        for writes that are idempotent by themselves."""

        def attempt() -> Result:
            with self.store.write() as uow:
                return run(uow)

        return await asyncio.to_thread(retrying, attempt)

    async def replay(self, request: Message) -> Message | None:
        """The response a request with this request_id already got, if it was this request;
        None when the id is unknown (a mismatch is refused later, inside the write)."""
        identity = Identity.of(request)
        if not identity.request_id:
            return None
        seen = await self.query(lambda uow: uow.remembered(identity.key), big=True)
        if seen is None or seen.method != identity.method or seen.fingerprint != identity.digest:
            return None
        return identity.response_type.FromString(seen.response)


@dataclass(frozen=True)
class Identity:
    """What request_id bookkeeping knows of a request: its RPC, id, the key its response is
    remembered under (tenant and id; ids never hold control characters) and fingerprint."""

    method: str
    response_type: type[Message]
    request_id: str
    key: str
    digest: bytes

    @classmethod
    def of(cls, request: Message) -> Identity:
        """The request as the current caller's: request_ids are scoped by the key's tenant."""
        method, response_type = _RPCS[request.DESCRIPTOR.full_name]
        request_id: str = request.request_id  # type: ignore[attr-defined]
        caller = CALLER.get()
        key = request_id if caller is None or not request_id else f"{caller.tenant}\x1f{request_id}"
        return cls(
            method, response_type, request_id, key, fingerprint(request) if request_id else b""
        )


_RPCS = {
    method.input_type.full_name: (method.name, message_factory.GetMessageClass(method.output_type))
    for service in SERVICES
    for method in service.methods
}
"""Each RPC's name and response type by its request message (each RPC has one of its own)."""


def _backoff_s(attempt: int) -> float:
    return float(FIRST_BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))


RETRIES: Counter[str] = Counter()
"""Units of work run again after a retry-safe store failure, by failure (for the metrics)."""


def _retry(error: Conflict | StoreUnavailable, attempt: int) -> bool:
    again = attempt < ATTEMPTS and getattr(error, "retry_safe", True)
    if again:
        RETRIES[type(error).__name__] += 1
    return again


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


def fingerprint(request: Message) -> bytes:
    """Digest of the request without its request_id: what "the same request" means."""
    body = type(request)()
    body.CopyFrom(request)
    body.ClearField("request_id")
    return hashlib.sha256(body.SerializeToString(deterministic=True)).digest()


def mutate(
    store: Store,
    now_us: Callable[[], int],
    identity: Identity,
    skus: Collection[str],
    run: Callable[[UnitOfWork], Response],
    *,
    network: bool = False,
) -> Response:
    """`Transactions.mutate` on this thread. Totals the write needs and no cache holds are
    summed first, in a read, so that no writer waits for that."""

    def attempt(slow_reads: bool) -> Response:
        return retrying(
            lambda: _mutate_once(store, now_us, identity, skus, run, network, slow_reads)
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
    identity: Identity,
    skus: Collection[str],
    run: Callable[[UnitOfWork], Response],
    network: bool,
    slow_reads: bool,
) -> Response:
    with store.write(skus, network=network, slow_reads=slow_reads) as uow:
        return _replay_or_run(uow, now_us, identity, run)


def _replay_or_run(
    uow: UnitOfWork,
    now_us: Callable[[], int],
    identity: Identity,
    run: Callable[[UnitOfWork], Response],
) -> Response:
    request_id = identity.request_id
    if request_id:
        seen = uow.remembered(identity.key)
        if seen is not None:
            if seen.method != identity.method or seen.fingerprint != identity.digest:
                raise AlreadyExists(
                    "REQUEST_ID_REUSED",
                    f"request_id {request_id} was already used for a different request",
                    request_id=request_id,
                )
            return identity.response_type.FromString(seen.response)  # type: ignore[return-value]
    caller = CALLER.get()
    cause = CAUSE.set(Cause(identity.method, request_id, caller.key_id if caller else ""))
    try:
        response = run(uow)
    finally:
        CAUSE.reset(cause)
    if request_id:
        uow.remember(
            identity.key,
            RememberedResponse(
                identity.method, identity.digest, response.SerializeToString(deterministic=True)
            ),
            now_us(),
        )
    return response
