"""ApiKeyService's requests, checked as documented in api_keys.proto."""

from __future__ import annotations

from omniroute.admin.v1 import api_keys_pb2 as ak

from server.domain.access import MAX_DESCRIPTION, Role
from server.transport import convert
from server.transport.validate.checker import Checker

ROLES = {message: role for role, message in convert.ROLES.items()}


def create_api_key(
    request: ak.CreateApiKeyRequest, now_us: int
) -> tuple[Role, str, str, int | None]:
    """The new key's role, tenant, description and expiry time (None: never)."""
    check = Checker()
    role = ROLES.get(request.role)
    if role is None:
        check.fail("role", "MISSING_FIELD", "set one of storefront, order-system, inventory, admin")
    tenant = check.identifier("tenant", request.tenant, required=False)
    description = check.text("description", request.description, MAX_DESCRIPTION)
    expires_us = None
    expiration = request.WhichOneof("expiration")
    if expiration == "expire_time":
        expires_us = check.timestamp("expire_time", request.expire_time)
        if expires_us and expires_us <= now_us:
            check.fail("expire_time", "INVALID_FIELD", "must be in the future")
    elif expiration == "ttl":
        ttl_us = check.duration("ttl", request.ttl)
        if ttl_us is not None and ttl_us <= 0:
            check.fail("ttl", "INVALID_FIELD", "must be positive")
        expires_us = now_us + (ttl_us or 0)
    check.done()
    assert role is not None
    return role, tenant, description, expires_us


def key_id(request: ak.RevokeApiKeyRequest) -> str:
    check = Checker()
    value = check.identifier("id", request.id)
    check.done()
    return value
