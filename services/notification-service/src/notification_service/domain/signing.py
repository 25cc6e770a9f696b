"""Signatures: outgoing webhooks and the unsubscribe links every message carries.

The two use separate secrets: a webhook receiver holds the webhook secret (HMAC is symmetric),
so a shared secret would let every receiver mint unsubscribe tokens for any customer.

Webhooks are signed as Standard Webhooks (https://www.standardwebhooks.com) sign them, so a
receiver verifies them with an existing library (``standardwebhooks`` on PyPI, npm, Go...):

- ``webhook-id``: the message id, the same on every attempt (receivers de-duplicate by it);
- ``webhook-timestamp``: epoch seconds of this attempt (receivers refuse old ones);
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, several
  space-separated while a secret is being rotated;

keyed by the secret ``whsec_<base64 key>``, whose key is the base64-decoded part.

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

from crm_contracts import NotificationChannel, Purpose

__all__ = [
    "WEBHOOK_SECRET_PREFIX",
    "UnsubscribeRequest",
    "read_unsubscribe_token",
    "sign_webhook",
    "unsubscribe_token",
    "webhook_key",
    "webhook_secret",
]

WEBHOOK_SECRET_PREFIX: Final = "whsec_"

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
# Profiling: a link may carry the customer's objection to profiling (GDPR art. 21 asks that
# objecting be as easy as any opt-out); the one-click flow forwards it to profile-service.
_PURPOSE_CODES: Final = {Purpose.MARKETING: "m", Purpose.SERVICE: "s", Purpose.PROFILING: "p"}
_CHANNELS_BY_CODE: Final = {code: channel for channel, code in _CHANNEL_CODES.items()}
_PURPOSES_BY_CODE: Final = {code: purpose for purpose, code in _PURPOSE_CODES.items()}


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError when it is not one or is empty."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError(f"a webhook secret has the form {WEBHOOK_SECRET_PREFIX}<base64 key>")
    encoded = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as error:
        raise ValueError(f"the key after {WEBHOOK_SECRET_PREFIX} is not base64") from error
    if not key:
        raise ValueError("the webhook secret's key is empty")
    return key


def webhook_secret(key: bytes) -> str:
    """The ``whsec_<base64>`` form of ``key``, as receivers' libraries take it."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def sign_webhook(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of ``body`` sent as ``message_id`` at ``timestamp``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


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
