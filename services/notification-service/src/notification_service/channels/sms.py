"""SMS through an HTTP gateway: one JSON POST per message.

The request is the common shape of SMS APIs::

    POST <url>
    Authorization: Bearer <api_token>        (or HTTP basic with username and password)
    Idempotency-Key: <notification id>
    {"to": "+4915112345678", "from": "CRM", "text": "...", "reference": "<notification id>"}

and a 2xx answer may carry the gateway's id for the message as ``{"id": ...}``. A retry after a
timeout may reach a gateway that did send the first time: the notification id, as
``reference`` and ``Idempotency-Key``, lets a gateway that de-duplicates drop the second.

Marketing messages end with a ``STOP: <unsubscribe url>`` line unless their text already holds
the link; service messages (an order confirmation) carry none, since every character counts.
"""

from __future__ import annotations

import json
import re
from typing import Final

import httpx

from crm_contracts import Category
from notification_service.channels._http import HttpAdapter, receipt_from
from notification_service.channels.base import OutgoingMessage, PermanentDeliveryError

__all__ = ["HttpSmsGateway", "sms_text"]

_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")


def sms_text(message: OutgoingMessage) -> str:
    """The text to send: the rendered text, plus the unsubscribe line a marketing SMS needs."""
    text = message.content.text
    if text is None:
        raise PermanentDeliveryError(f"a {message.content.channel.value} message has no SMS text")
    url = message.unsubscribe_url
    if message.category is Category.MARKETING and url and url not in text:
        return f"{text.rstrip()}\nSTOP: {url}"
    return text


class HttpSmsGateway(HttpAdapter):
    """Sends SMS through an HTTP gateway, authenticated by a bearer token or HTTP basic."""

    def __init__(
        self,
        url: str,
        *,
        sender_id: str,
        api_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """``client``: a shared client (closed by its owner); without one the adapter owns one."""
        if api_token is not None and (username is not None or password is not None):
            raise ValueError("give the SMS gateway an api_token or a username and password")
        if (username is None) != (password is None):
            raise ValueError("HTTP basic auth needs both a username and a password")
        super().__init__(timeout=timeout, client=client)
        self._url = url
        self._sender_id = sender_id
        self._auth: httpx.Auth | None = None
        self._headers = {"Content-Type": "application/json"}
        if api_token is not None:
            self._headers["Authorization"] = f"Bearer {api_token}"
        elif username is not None and password is not None:
            self._auth = httpx.BasicAuth(username, password)

    async def send(self, message: OutgoingMessage) -> str:
        """Hand the SMS to the gateway; its id for the message, or the notification id."""
        if not _E164.fullmatch(message.recipient):
            raise PermanentDeliveryError("not a phone number in E.164 form")
        body = {
            "to": message.recipient,
            "from": self._sender_id,
            "text": sms_text(message),
            "reference": message.notification_id,
        }
        response = await self._post(
            self._url,
            content=json.dumps(body).encode(),
            headers={**self._headers, "Idempotency-Key": message.notification_id},
            auth=self._auth,
            provider="SMS gateway",
        )
        return receipt_from(response, fallback=message.notification_id)
