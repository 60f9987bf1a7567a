"""Domain errors become google.rpc.Status in one place: canonical code, exactly one ErrorInfo
(domain "omniroute"), and a BadRequest with field violations for malformed input."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.domain.errors import DomainError, ErrorKind, FieldViolation, InvalidRequest
from server.transport.handlers import Undecodable

DOMAIN = "omniroute"
log = logging.getLogger(__name__)

_CODES = {
    ErrorKind.INVALID: code_pb2.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: code_pb2.NOT_FOUND,
    ErrorKind.PRECONDITION: code_pb2.FAILED_PRECONDITION,
    ErrorKind.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    ErrorKind.CONFLICT: code_pb2.ABORTED,
    ErrorKind.UNAVAILABLE: code_pb2.UNAVAILABLE,
    ErrorKind.DEADLINE: code_pb2.DEADLINE_EXCEEDED,
}


def to_status(error: DomainError) -> grpc.Status:
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    )
    details = [info]
    if isinstance(error, InvalidRequest):
        bad_request = any_pb2.Any()
        bad_request.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=violation.field,
                        description=violation.description,
                        reason=violation.reason,
                    )
                    for violation in error.violations
                ]
            )
        )
        details.append(bad_request)
    return rpc_status.to_status(
        status_pb2.Status(code=_CODES[error.kind], message=error.message, details=details)
    )


Context = grpc.aio.ServicerContext[Any, Any]
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def rpc(handler: Handler) -> Handler:
    """Wraps a servicer coroutine: domain errors abort with their status; anything else is
    logged and answered with INTERNAL, never a crashed or hung server."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Context) -> Any:
        try:
            if isinstance(request, Undecodable):
                raise InvalidRequest([_malformed(request)])
            return await handler(self, request, context)
        except DomainError as error:
            await context.abort_with_status(to_status(error))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unexpected error in %s", handler.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    return wrapper  # type: ignore[return-value]


def _malformed(request: Undecodable) -> FieldViolation:
    return FieldViolation(
        "request",
        "MALFORMED_REQUEST",
        f"the bytes sent are not a valid {request.message_type}: {request.error}",
    )
