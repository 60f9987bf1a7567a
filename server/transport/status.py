"""Domain errors become google.rpc.Status in one place: canonical code, exactly one ErrorInfo
(domain "omniroute"), and a BadRequest with field violations for malformed input.

Errors echo what callers sent, and a grpc client refuses trailers over 8 KiB at random (always
over 16 KiB), reporting RESOURCE_EXHAUSTED instead of our status; so every echoed string is cut to
MAX_ECHO_BYTES and the violations sent to VIOLATION_BYTES, which keeps the whole trailer under
8 KiB."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.domain.errors import DomainError, ErrorKind, FieldViolation, InvalidRequest
from server.transport.handlers import Undecodable

DOMAIN = "omniroute"
MAX_ECHO_BYTES = 512
"""Longest message, ErrorInfo metadata value, violation field or description sent, in UTF-8
bytes: an id (at most 128 characters of at most 4 bytes) always arrives whole."""
VIOLATION_BYTES = 3072
"""Violations are sent in request order while they fit in this many bytes (at least one; about
40 typical ones); ErrorInfo metadata `omitted_violations` counts the rest."""
log = logging.getLogger(__name__)

_CODES = {
    ErrorKind.INVALID: code_pb2.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: code_pb2.NOT_FOUND,
    ErrorKind.PRECONDITION: code_pb2.FAILED_PRECONDITION,
    ErrorKind.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    ErrorKind.CONFLICT: code_pb2.ABORTED,
    ErrorKind.UNAVAILABLE: code_pb2.UNAVAILABLE,
    ErrorKind.DEADLINE: code_pb2.DEADLINE_EXCEEDED,
    ErrorKind.RESOURCE: code_pb2.RESOURCE_EXHAUSTED,
    ErrorKind.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    ErrorKind.PERMISSION: code_pb2.PERMISSION_DENIED,
    ErrorKind.OUT_OF_RANGE: code_pb2.OUT_OF_RANGE,
}


def to_status(error: DomainError) -> grpc.Status:
    return rpc_status.to_status(status_message(error))


def status_message(error: DomainError) -> status_pb2.Status:
    """The google.rpc.Status of `error`: what a call failing with it ends with, and what a
    batch answers for a request of it that failed."""
    if error.kind is ErrorKind.UNAVAILABLE:
        log.warning("%s: %s", error.reason, error)  # the driver's text stays in the server log
    metadata = {key: bounded(value) for key, value in error.metadata.items()}
    details = []
    if isinstance(error, InvalidRequest):
        violations = _violations(error.violations)
        if len(violations) < len(error.violations):
            metadata["omitted_violations"] = str(len(error.violations) - len(violations))
        bad_request = any_pb2.Any()
        bad_request.Pack(error_details_pb2.BadRequest(field_violations=violations))
        details.append(bad_request)
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason=bounded(error.reason), domain=DOMAIN, metadata=metadata)
    )
    return status_pb2.Status(
        code=_CODES[error.kind], message=bounded(error.message), details=[info, *details]
    )


def bounded(text: str, limit: int = MAX_ECHO_BYTES) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, ending in an ellipsis when cut."""
    if len(text) * 4 <= limit:
        return text
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - len("…".encode())].decode(errors="ignore") + "…"


def _violations(
    violations: list[FieldViolation],
) -> list[error_details_pb2.BadRequest.FieldViolation]:
    """The first violations, bounded, while they fit in VIOLATION_BYTES (always the first)."""
    sent: list[error_details_pb2.BadRequest.FieldViolation] = []
    size = 0
    for violation in violations:
        message = error_details_pb2.BadRequest.FieldViolation(
            field=bounded(violation.field),
            description=bounded(violation.description),
            reason=bounded(violation.reason),
        )
        size += message.ByteSize()
        if sent and size > VIOLATION_BYTES:
            break
        sent.append(message)
    return sent


Context = grpc.aio.ServicerContext[Any, Any]
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def rpc(handler: Handler) -> Handler:
    """Wraps a servicer coroutine: domain errors abort with their status; anything else is
    logged and answered with INTERNAL, never a crashed or hung server."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Context) -> Any:
        async with _answered(context, handler.__name__):
            return await handler(self, _decoded(request), context)

    return wrapper  # type: ignore[return-value]


Streamer = TypeVar("Streamer", bound=Callable[..., AsyncIterator[Any]])


def stream_rpc(handler: Streamer) -> Streamer:
    """`rpc` for a servicer async generator (a server-streaming RPC)."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Context) -> AsyncIterator[Any]:
        async with _answered(context, handler.__name__):
            async for response in handler(self, _decoded(request), context):
                yield response

    return wrapper  # type: ignore[return-value]


@contextlib.asynccontextmanager
async def _answered(context: Context, name: str) -> AsyncIterator[None]:
    """Turns what the servicer raised into the call's status."""
    try:
        yield
    except DomainError as error:
        await context.abort_with_status(to_status(error))
    except grpc.aio.AbortError:
        raise
    except Exception:
        log.exception("unexpected error in %s", name)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")


def _decoded(request: Any) -> Any:
    if isinstance(request, Undecodable):
        raise InvalidRequest([_malformed(request)])
    return request


def _malformed(request: Undecodable) -> FieldViolation:
    return FieldViolation(
        "request",
        "MALFORMED_REQUEST",
        f"the bytes sent are not a valid {request.message_type}: {request.error}",
    )
