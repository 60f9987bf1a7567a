"""Mutations run in one unit of work together with their request_id bookkeeping (AIP-155), so a
response is remembered exactly when its changes commit."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from typing import TypeVar

from google.protobuf.message import Message

from server.domain.errors import AlreadyExists
from server.storage.contract import RememberedResponse, Store, UnitOfWork

Response = TypeVar("Response", bound=Message)


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
