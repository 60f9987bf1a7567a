"""Who makes the current call, as auth found it: request_ids are scoped by its tenant, and the
access log names its key."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from server.domain.access import Role


@dataclass(frozen=True, slots=True)
class Caller:
    """The call's key: its id (never the key itself), role and tenant."""

    key_id: str
    role: Role
    tenant: str


CALLER: ContextVar[Caller | None] = ContextVar("omniroute_caller", default=None)
"""The current call's caller; None when auth is off. Set by auth.Auth, which grpc.aio runs in
the call's own task, so it lasts exactly the call (and follows it onto worker threads)."""
