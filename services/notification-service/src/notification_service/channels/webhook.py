"""Webhooks: the rendered JSON POSTed to the recipient's URL, signed as Standard Webhooks.

Headers a receiver reads (see :mod:`notification_service.domain.signing`):

- ``webhook-id``: the notification id, the same on every attempt and after a crash of this
  service, so a receiver that got a delivery whose answer was lost recognises the retry;
- ``webhook-timestamp``: epoch seconds of this attempt; receivers refuse old ones, so a
  captured request cannot be replayed later;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, verified
  by the receiver with the ``whsec_`` secret, e.g. with the ``standardwebhooks`` library.

A receiver that answers 401 or 403 (a wrong secret) fails the notification at once: retrying
with the same secret cannot succeed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import httpx

from notification_service.channels._http import HttpAdapter, receipt_from
from notification_service.channels.base import OutgoingMessage, PermanentDeliveryError
from notification_service.domain.signing import sign_webhook

__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookChannel",
]

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"


class WebhookChannel(HttpAdapter):
    """POSTs signed JSON to each message's recipient URL."""

    def __init__(
        self,
        key: bytes,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``key``: the decoded webhook secret (``signing.webhook_key``); ``clock`` returns epoch
        seconds (the signature's timestamp); tests pass a fixed one."""
        if not key:
            raise ValueError("webhooks need a signing secret")
        super().__init__(timeout=timeout, client=client)
        self._key = key
        self._clock = clock

    async def send(self, message: OutgoingMessage) -> str:
        """POST the signed body; returns the answer's ``{"id": ...}`` or the notification id."""
        if message.content.json_body is None:
            raise PermanentDeliveryError(
                f"a {message.content.channel.value} message has no webhook body"
            )
        body = message.content.json_body.encode()
        # Signed at each attempt: a retry an hour later must still be inside the tolerance.
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            ID_HEADER: message.notification_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign_webhook(self._key, message.notification_id, timestamp, body),
        }
        response = await self._post(
            message.recipient, content=body, headers=headers, provider="webhook receiver"
        )
        return receipt_from(response, fallback=message.notification_id)
