"""Signatures: outgoing webhooks and the unsubscribe links every message carries.

Webhooks are signed as Stripe signs them: the header ``t=<epoch seconds>,v1=<hex>`` holds the
HMAC-SHA256 of ``"<t>." + body``. Signing the timestamp with the body lets a receiver refuse a
replayed delivery once it is older than its tolerance; several ``v1=`` entries may appear (one
per secret while a secret is being rotated) and any one of them matching is enough.

Unsubscribe tokens say who opts out of what, ``u1.<customer>.<channel><purpose>.<mac>``:
``u1`` is the format version, the customer id is base64url, channel and purpose are one
letter each, and the MAC is a truncated HMAC-SHA256. They are short because they travel in
SMS too, and they never expire: an unsubscribe link must work for as long as the message
exists. Base64 hides nothing, but a customer id is not personal data.

No clock here: callers pass the times in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from crm_shared.contracts import NotificationChannel, Purpose

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "UnsubscribeRequest",
    "read_unsubscribe_token",
    "sign_webhook",
    "unsubscribe_token",
    "verify_webhook",
]

DEFAULT_TOLERANCE_SECONDS: Final = 300

_TOKEN_VERSION: Final = "u1"
# Keys the MAC by purpose, so no signature made for something else can pass as a token.
_TOKEN_CONTEXT: Final = b"crm-unsubscribe."
# 128 bits: forging one is as hard as guessing a random UUID, at half the length in an SMS.
_TOKEN_MAC_BYTES: Final = 16

_CHANNEL_CODES: Final = {
    NotificationChannel.EMAIL: "e",
    NotificationChannel.SMS: "s",
    NotificationChannel.WEBHOOK: "w",
    NotificationChannel.IN_APP: "i",
}
_PURPOSE_CODES: Final = {Purpose.MARKETING: "m", Purpose.SERVICE: "s"}
_CHANNELS_BY_CODE: Final = {code: channel for channel, code in _CHANNEL_CODES.items()}
_PURPOSES_BY_CODE: Final = {code: purpose for purpose, code in _PURPOSE_CODES.items()}


def sign_webhook(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-CRM-Signature`` header value of ``body`` sent at ``timestamp`` (epoch seconds)."""
    return f"t={timestamp},v1={_webhook_digest(secret, timestamp, body)}"


def verify_webhook(
    secret: bytes,
    header: str,
    body: bytes,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is at most ``tolerance_seconds`` old.

    A timestamp as far in the future is refused too: the sender's clock may be ahead a
    little, not by more than the tolerance.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance_seconds:
        return False
    expected = _webhook_digest(secret, timestamp, body).encode()
    # Every candidate is compared, and each in constant time: timing reveals nothing.
    matches = [hmac.compare_digest(expected, _bytes(candidate)) for candidate in signatures]
    return any(matches)


def _webhook_digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class UnsubscribeRequest:
    """What following an unsubscribe link asks for: no more ``purpose`` messages on ``channel``."""

    customer_id: str
    channel: NotificationChannel
    purpose: Purpose


def unsubscribe_token(
    secret: bytes, customer_id: str, channel: NotificationChannel, purpose: Purpose
) -> str:
    """A URL-safe token that :func:`read_unsubscribe_token` turns back into the request."""
    if not customer_id:
        raise ValueError("an unsubscribe token needs a customer id")
    customer = _b64encode(customer_id.encode())
    codes = _CHANNEL_CODES[NotificationChannel(channel)] + _PURPOSE_CODES[Purpose(purpose)]
    signed = f"{_TOKEN_VERSION}.{customer}.{codes}"
    return f"{signed}.{_token_mac(secret, signed)}"


def read_unsubscribe_token(secret: bytes, token: str) -> UnsubscribeRequest | None:
    """The request a token carries, or None when it is malformed, tampered with or foreign."""
    pieces = token.split(".")
    if len(pieces) != 4 or pieces[0] != _TOKEN_VERSION:
        return None
    version, customer, codes, mac = pieces
    signed = f"{version}.{customer}.{codes}"
    # Check the MAC before decoding anything: nothing unsigned is interpreted.
    if not hmac.compare_digest(_token_mac(secret, signed).encode(), _bytes(mac)):
        return None
    if len(codes) != 2 or codes[0] not in _CHANNELS_BY_CODE or codes[1] not in _PURPOSES_BY_CODE:
        return None
    try:
        customer_id = _b64decode(customer).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return UnsubscribeRequest(customer_id, _CHANNELS_BY_CODE[codes[0]], _PURPOSES_BY_CODE[codes[1]])


def _token_mac(secret: bytes, signed: str) -> str:
    digest = hmac.new(secret, _TOKEN_CONTEXT + signed.encode(), hashlib.sha256).digest()
    return _b64encode(digest[:_TOKEN_MAC_BYTES])


def _bytes(untrusted: str) -> bytes:
    # compare_digest refuses a str with non-ASCII characters, and a header or URL may hold any.
    return untrusted.encode("utf-8", "replace")


def _b64encode(raw: bytes) -> str:
    # Padding dropped: "=" would need escaping in a URL, and the length restores it.
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
