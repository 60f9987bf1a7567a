"""Domain errors. Each names its gRPC-independent kind and an UPPER_SNAKE reason, the machine
contract clients branch on; `metadata` carries the dynamic values (sku, place, requested, ...)."""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What went wrong, in the terms of the canonical status codes (mapped in transport)."""

    INVALID = "invalid"
    NOT_FOUND = "not_found"
    PRECONDITION = "precondition"
    ALREADY_EXISTS = "already_exists"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    DEADLINE = "deadline"
    RESOURCE = "resource"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION = "permission"
    OUT_OF_RANGE = "out_of_range"


class DomainError(Exception):
    kind: ErrorKind = ErrorKind.PRECONDITION

    def __init__(self, reason: str, message: str, **metadata: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = {key: str(value) for key, value in metadata.items()}


class UnlockedSkus(Exception):
    """A write that acts on a whole reservation found it holding SKUs its unit of work did not
    lock (an update added them after the caller read its SKUs): run it again locking `skus`."""

    def __init__(self, skus: set[str]) -> None:
        super().__init__(f"the reservation now holds {sorted(skus)}")
        self.skus = skus


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND


class FailedPrecondition(DomainError):
    kind = ErrorKind.PRECONDITION


class AlreadyExists(DomainError):
    kind = ErrorKind.ALREADY_EXISTS


class Conflict(DomainError):
    """A retryable clash with a concurrent writer."""

    kind = ErrorKind.CONFLICT


class Unauthenticated(DomainError):
    """The call carries no key this deployment accepts."""

    kind = ErrorKind.UNAUTHENTICATED


class PermissionDenied(DomainError):
    """The call's key is valid, but its role may not make this call."""

    kind = ErrorKind.PERMISSION


class OutOfRange(DomainError):
    """A position past what is kept (a change-log token older than its retention)."""

    kind = ErrorKind.OUT_OF_RANGE


class DeadlineExceeded(DomainError):
    """Too little of the caller's deadline is left to do the work."""

    kind = ErrorKind.DEADLINE


class StoreUnavailable(DomainError):
    """The database could not be reached. `retry_safe`: the transaction never reached its
    commit, so nothing was applied and running it again is safe. Callers get a fixed message;
    `detail` (the driver's text, which may name hosts and users) is for the server log only."""

    kind = ErrorKind.UNAVAILABLE
    MESSAGE = "the database is unavailable; retry with the same request_id"

    def __init__(self, detail: str, *, retry_safe: bool) -> None:
        super().__init__("STORE_UNAVAILABLE", self.MESSAGE)
        self.detail = detail
        self.retry_safe = retry_safe

    def __str__(self) -> str:
        return self.detail


class FieldViolation:
    """One problem with one request field (becomes a google.rpc.BadRequest violation)."""

    __slots__ = ("description", "field", "reason")

    def __init__(self, field: str, reason: str, description: str) -> None:
        self.field = field
        self.reason = reason
        self.description = description

    def __repr__(self) -> str:
        return f"FieldViolation({self.field!r}, {self.reason!r})"


class InvalidRequest(DomainError):
    """Malformed input; lists every violation found. The reason is the first one's."""

    kind = ErrorKind.INVALID

    def __init__(self, violations: list[FieldViolation]) -> None:
        first = violations[0]
        super().__init__(first.reason, f"{first.field}: {first.description}", field=first.field)
        self.violations = violations
