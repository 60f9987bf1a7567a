"""API keys and the roles they carry.

A key reads `omr_<id>_<secret>`: the id names the key (it may appear in logs and listings), the
secret proves it. Only a salted scrypt hash of the secret is stored, so a copy of the database
grants nothing; the full key is shown once, when it is made. Which RPCs a role may call is
transport's business (server/transport/roles.py)."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from server.domain.errors import NotFound

if TYPE_CHECKING:
    from server.domain.port import UnitOfWork

PREFIX = "omr_"
ID_CHARS = 12
SCRYPT = (2**14, 8, 1)
"""scrypt's (n, r, p): about 16 MiB and 40 ms per check, the interactive-login setting."""
MAX_DESCRIPTION = 200


class Role(enum.Enum):
    STOREFRONT = "storefront"
    ORDER_SYSTEM = "order-system"
    INVENTORY = "inventory"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: never its secret, only the secret's salted hash. `tenant` scopes the
    request_ids of its calls (keys of one tenant share them; it defaults to the key's id)."""

    id: str
    role: Role
    tenant: str
    description: str
    created_us: int
    expires_us: int | None
    revoked_us: int | None
    last_used_us: int | None
    hash: str  # "scrypt$n$r$p$salt-hex$digest-hex"

    def valid_at(self, now_us: int) -> bool:
        return self.revoked_us is None and (self.expires_us is None or now_us < self.expires_us)

    def revoked(self, now_us: int) -> ApiKey:
        return self if self.revoked_us is not None else replace(self, revoked_us=now_us)


def issue(
    role: Role, tenant: str, description: str, now_us: int, expires_us: int | None
) -> tuple[str, ApiKey]:
    """A new key: the full key (to show once) and the record to store."""
    key_id = secrets.token_hex(ID_CHARS // 2)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    n, r, p = SCRYPT
    digest = _scrypt(secret, salt, n, r, p)
    record = ApiKey(
        key_id,
        role,
        tenant or key_id,
        description,
        now_us,
        expires_us,
        None,
        None,
        f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}",
    )
    return f"{PREFIX}{key_id}_{secret}", record


def parse(presented: str) -> tuple[str, str] | None:
    """The (id, secret) of something shaped like a key, else None."""
    if not presented.startswith(PREFIX) or len(presented) < len(PREFIX) + ID_CHARS + 2:
        return None
    rest = presented[len(PREFIX) :]
    key_id, separator, secret = rest[:ID_CHARS], rest[ID_CHARS], rest[ID_CHARS + 1 :]
    if separator != "_" or not secret:
        return None
    return key_id, secret


def matches(key: ApiKey, secret: str) -> bool:
    """Whether `secret` is the key's (slow on purpose: run it off the event loop)."""
    try:
        scheme, n, r, p, salt, digest = key.hash.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(secret, bytes.fromhex(salt), int(n), int(r), int(p))
        return hmac.compare_digest(computed, bytes.fromhex(digest))
    except ValueError:  # a malformed stored hash, or a secret scrypt cannot take
        return False


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r * p, dklen=32
    )


def revoke(uow: UnitOfWork, key_id: str, now_us: int) -> ApiKey:
    """Revokes the key (a revoked key stays revoked as it was)."""
    key = next((key for key in uow.api_keys() if key.id == key_id), None)
    if key is None:
        raise NotFound("API_KEY_NOT_FOUND", f"no API key has id {key_id}", id=key_id)
    revoked = key.revoked(now_us)
    if revoked is not key:
        uow.put_api_key(revoked)
    return revoked
