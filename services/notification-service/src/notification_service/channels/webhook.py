"""Webhooks: the rendered JSON POSTed to the recipient's URL, signed with HMAC-SHA256.

Headers a receiver reads:

- ``X-CRM-Signature``: ``t=<epoch seconds>,v1=<hex>`` (see
  :func:`notification_service.domain.signing.verify_webhook`); the receiver recomputes it over
  the raw body and refuses a delivery older than its tolerance, so a captured request cannot
  be replayed later;
- ``X-CRM-Timestamp``: the same ``t``, for receivers that log it;
- ``X-CRM-Notification-Id``: the same on every attempt, so a receiver that got a delivery whose
  answer was lost can recognise the retry.

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
    "NOTIFICATION_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookChannel",
]

SIGNATURE_HEADER: Final = "X-CRM-Signature"
TIMESTAMP_HEADER: Final = "X-CRM-Timestamp"
NOTIFICATION_ID_HEADER: Final = "X-CRM-Notification-Id"


class WebhookChannel(HttpAdapter):
    """POSTs signed JSON to each message's recipient URL."""

    def __init__(
        self,
        secret: bytes,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` returns epoch seconds (the signature's timestamp); tests pass a fixed one."""
        if not secret:
            raise ValueError("webhooks need a signing secret")
        super().__init__(timeout=timeout, client=client)
        self._secret = secret
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
            SIGNATURE_HEADER: sign_webhook(self._secret, timestamp, body),
            TIMESTAMP_HEADER: str(timestamp),
            NOTIFICATION_ID_HEADER: message.notification_id,
        }
        response = await self._post(
            message.recipient, content=body, headers=headers, provider="webhook receiver"
        )
        return receipt_from(response, fallback=message.notification_id)
