"""Units of work for RPCs. A mutation runs in one write unit of work together with its
request_id bookkeeping (AIP-155), so a response is remembered exactly when its changes commit.
Transient store failures (a conflict with another writer, a connection lost before commit) are
retried here with backoff, so clients see ABORTED or UNAVAILABLE only when retries run out."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Collection
from typing import TypeVar

from google.protobuf.message import Message

from server.domain.errors import AlreadyExists, Conflict, StoreUnavailable
from server.storage.contract import RememberedResponse, Store, UnitOfWork

Response = TypeVar("Response", bound=Message)
Result = TypeVar("Result")
ATTEMPTS = 6
FIRST_BACKOFF_S = 0.005


def retrying(attempt: Callable[[], Result]) -> Result:
    """Runs `attempt` again after retry-safe store failures, with jittered exponential backoff."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except (Conflict, StoreUnavailable) as error:
            if number == ATTEMPTS or not getattr(error, "retry_safe", True):
                raise
            time.sleep(FIRST_BACKOFF_S * 2 ** (number - 1) * random.uniform(0.5, 1.5))
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
    method: str,
    request: Message,
    response_type: type[Response],
    skus: Collection[str],
    run: Callable[[UnitOfWork], Response],
    *,
    network: bool = False,
) -> Response:
    """Runs `run` in a write unit of work; replays the first response for a repeated
    request_id and refuses a request_id reused for a different request."""
    request_id: str = request.request_id  # type: ignore[attr-defined]
    digest = fingerprint(request) if request_id else b""
    return retrying(
        lambda: _mutate_once(
            store, now_us, method, request_id, digest, response_type, skus, run, network
        )
    )


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
) -> Response:
    with store.write(skus, network=network) as uow:
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
