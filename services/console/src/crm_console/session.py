"""The operator's session: an encrypted, signed cookie holding the API key and a CSRF token.

Decisions: the cookie is encrypted (Fernet: AES-CBC + HMAC), not only signed, because it
carries the API key; it is HttpOnly (no script reads it), SameSite=Strict (no other site's
page sends it) and Secure outside development. Fernet's timestamp bounds its age, so a stolen
cookie stops working after ``session_max_age_seconds``. Every form carries the session's CSRF
token (synchroniser pattern); it is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, replace

from cryptography.fernet import Fernet, InvalidToken

COOKIE_NAME = "crm_console_session"


@dataclass(frozen=True)
class Session:
    """What the cookie holds: the CSRF token always, the API key once logged in."""

    csrf_token: str
    api_key: str | None = None

    @property
    def logged_in(self) -> bool:
        """Whether an API key was accepted for this session."""
        return self.api_key is not None

    def checks_csrf(self, presented: str | None) -> bool:
        """Whether `presented` is this session's CSRF token."""
        return presented is not None and hmac.compare_digest(presented, self.csrf_token)

    def with_key(self, api_key: str) -> Session:
        """The session after a login: a fresh CSRF token (no fixation) and the key."""
        return replace(self, csrf_token=new_csrf_token(), api_key=api_key)


def new_csrf_token() -> str:
    """A random CSRF token."""
    return secrets.token_urlsafe(24)


def anonymous_session() -> Session:
    """A session before login: only a CSRF token, for the login form."""
    return Session(csrf_token=new_csrf_token())


class SessionCodec:
    """Turns a session into cookie text and back; a bad or expired cookie reads as None."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())
        self._fernet = Fernet(key)
        self._max_age = max_age_seconds

    def encode(self, session: Session) -> str:
        """The cookie value for `session`."""
        document = {"c": session.csrf_token, "k": session.api_key}
        return self._fernet.encrypt(json.dumps(document).encode()).decode()

    def decode(self, cookie: str | None, *, now: int | None = None) -> Session | None:
        """The session in `cookie`, or None when it is missing, tampered with or older than
        the maximum age at `now` (Unix seconds; default: the clock)."""
        if not cookie:
            return None
        at = int(time.time()) if now is None else now
        try:
            plain = self._fernet.decrypt_at_time(cookie.encode(), self._max_age, at)
            document = json.loads(plain)
        except (InvalidToken, ValueError):
            return None
        if not isinstance(document, dict) or not isinstance(document.get("c"), str):
            return None
        key = document.get("k")
        return Session(csrf_token=document["c"], api_key=key if isinstance(key, str) else None)
