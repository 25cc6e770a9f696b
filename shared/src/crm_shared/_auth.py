"""API-key authentication with scopes; keys are stored as SHA-256 digests only."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from crm_shared._settings import ApiKeyRecord, Scope
from crm_shared.errors import Forbidden, Unauthorized

API_KEY_HEADER = "X-API-Key"
_KEY_PREFIX = "crm_"
_SCOPE_RANK = {Scope.READ: 1, Scope.WRITE: 2, Scope.ADMIN: 3}


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest of a key. Keys are 256-bit random, so a plain digest is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key(name: str, scopes: Iterable[Scope]) -> tuple[str, ApiKeyRecord]:
    """Make a new random key; return it (shown once) and the record to store."""
    key = _KEY_PREFIX + secrets.token_urlsafe(32)
    return key, ApiKeyRecord(name=name, key_sha256=hash_api_key(key), scopes=list(scopes))


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and what it may do."""

    name: str
    scopes: frozenset[Scope]

    def allows(self, needed: Scope) -> bool:
        """Whether this caller holds `needed` or a scope above it."""
        return max(_SCOPE_RANK[scope] for scope in self.scopes) >= _SCOPE_RANK[needed]


class ApiKeyAuthenticator:
    """Looks a presented key up by its digest."""

    def __init__(self, records: Iterable[ApiKeyRecord]) -> None:
        self._by_digest = {
            record.key_sha256: Principal(record.name, frozenset(record.scopes))
            for record in records
        }

    def authenticate(self, presented: str | None) -> Principal:
        """Return the caller for a presented key, or raise 401."""
        if not presented:
            raise Unauthorized(f"Send an API key in the {API_KEY_HEADER} header.")
        principal = self.principal_for(presented)
        if principal is None:
            raise Unauthorized("The API key is not valid.")
        return principal

    def principal_for(self, presented: str | None) -> Principal | None:
        """The caller a presented key names; None for no key or an unknown one."""
        return self._by_digest.get(hash_api_key(presented)) if presented else None


_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def _authenticator(request: Request) -> ApiKeyAuthenticator:
    authenticator: ApiKeyAuthenticator = request.app.state.authenticator
    return authenticator


def require_scope(needed: Scope) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency that admits callers holding `needed` (or more)."""

    async def dependency(
        request: Request,
        presented: Annotated[str | None, Depends(_api_key_header)],
    ) -> Principal:
        principal = _authenticator(request).authenticate(presented)
        if not principal.allows(needed):
            raise Forbidden(f"This API key lacks the '{needed.value}' scope.")
        request.state.principal = principal
        return principal

    return dependency


ReadAccess = Annotated[Principal, Depends(require_scope(Scope.READ))]
WriteAccess = Annotated[Principal, Depends(require_scope(Scope.WRITE))]
AdminAccess = Annotated[Principal, Depends(require_scope(Scope.ADMIN))]
