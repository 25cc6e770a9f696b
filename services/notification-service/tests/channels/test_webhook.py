"""Signed webhooks, delivered to a real local receiver that checks the signature with the
Standard Webhooks reference library (``standardwebhooks``), as a customer's system would."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import httpx
import pytest
from notification_servers import webhook_receiver
from standardwebhooks import Webhook

from crm_contracts import Category, NotificationChannel
from crm_shared.testing import free_loopback_port
from notification_service.channels.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from notification_service.channels.webhook import WebhookChannel
from notification_service.domain.signing import sign_webhook, webhook_key, webhook_secret
from notification_service.domain.templates import RenderedMessage

KEY = os.urandom(32)
SECRET = webhook_secret(KEY)  # whsec_<base64>, as the receiver is given it
BODY = '{"customer_id": "c-1", "action": "account_manager_task", "churn_risk": 0.71}'


def outgoing(url: str, *, body: str = BODY, notification_id: str = "n-1") -> OutgoingMessage:
    return OutgoingMessage(
        notification_id=notification_id,
        customer_id="c-1",
        channel=NotificationChannel.WEBHOOK,
        recipient=url,
        content=RenderedMessage(NotificationChannel.WEBHOOK, json_body=body),
        category=Category.SERVICE,
    )


async def test_receiver_verifies_the_signed_delivery_with_the_standard_webhooks_library() -> None:
    async with (
        webhook_receiver(SECRET) as receiver,
        WebhookChannel(webhook_key(SECRET), timeout=2.0) as channel,
    ):
        receipt = await channel.send(outgoing(receiver.url))

    assert receipt == "hook-1"
    assert receiver.rejected == []
    (delivery,) = receiver.deliveries
    assert delivery.json() == json.loads(BODY)
    assert delivery.body == BODY.encode()
    assert delivery.message_id == "n-1"
    assert delivery.signature.startswith("v1,")
    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/json"
    headers = {name: request.headers[name] for name in ("webhook-id", "webhook-timestamp")}
    assert headers == {"webhook-id": "n-1", "webhook-timestamp": delivery.timestamp}


async def test_signature_uses_the_injected_clock() -> None:
    sent_at = int(time.time()) - 60
    async with (
        webhook_receiver(SECRET) as receiver,
        WebhookChannel(KEY, clock=lambda: sent_at + 0.9) as channel,
    ):
        await channel.send(outgoing(receiver.url))

    (delivery,) = receiver.deliveries
    assert delivery.timestamp == str(sent_at)
    assert delivery.signature == sign_webhook(KEY, "n-1", sent_at, BODY.encode())


def test_signature_is_the_one_the_reference_library_computes() -> None:
    sent_at = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)

    expected = Webhook(SECRET).sign("n-1", sent_at, BODY)

    assert sign_webhook(KEY, "n-1", int(sent_at.timestamp()), BODY.encode()) == expected


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h, b.replace(b"c-1", b"c-2")), id="body"),
        pytest.param(lambda h, b: ({**h, "webhook-id": "n-2"}, b), id="message-id"),
        pytest.param(
            lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
            id="timestamp",
        ),
    ],
)
async def test_receiver_rejects_a_tampered_delivery(tamper) -> None:
    now = int(time.time())
    body = BODY.encode()
    headers = {
        "webhook-id": "n-1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign_webhook(KEY, "n-1", now, body),
    }
    tampered_headers, tampered_body = tamper(headers, body)

    async with webhook_receiver(SECRET) as receiver, httpx.AsyncClient() as client:
        untouched = await client.post(receiver.url, content=body, headers=headers)
        response = await client.post(receiver.url, content=tampered_body, headers=tampered_headers)

    assert (untouched.status_code, response.status_code) == (200, 401)
    assert [request.body for request in receiver.rejected] == [tampered_body]


async def test_wrong_secret_fails_permanently() -> None:
    async with (
        webhook_receiver(SECRET) as receiver,
        WebhookChannel(os.urandom(32)) as channel,
    ):
        with pytest.raises(PermanentDeliveryError) as raised:
            await channel.send(outgoing(receiver.url))

    assert raised.value.code == 401
    assert len(receiver.rejected) == 1


async def test_signature_older_than_the_tolerance_is_refused() -> None:
    an_hour_ago = time.time() - 3_600
    async with (
        webhook_receiver(SECRET) as receiver,
        WebhookChannel(KEY, clock=lambda: an_hour_ago) as channel,
    ):
        with pytest.raises(PermanentDeliveryError):
            await channel.send(outgoing(receiver.url))

    assert receiver.deliveries == []


async def test_receiver_error_is_retried_with_the_same_notification_id() -> None:
    async with (
        webhook_receiver(SECRET, fail_first=1, failure_status=503) as receiver,
        WebhookChannel(KEY) as channel,
    ):
        with pytest.raises(TransientDeliveryError) as raised:
            await channel.send(outgoing(receiver.url))
        receipt = await channel.send(outgoing(receiver.url))

    assert (raised.value.code, raised.value.retry_after) == (503, 1.0)
    assert receipt == "hook-1"
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert ids == ["n-1", "n-1"]


async def test_receiver_that_is_down_is_a_transient_failure() -> None:
    async with WebhookChannel(KEY) as channel:
        with pytest.raises(TransientDeliveryError, match="unreachable"):
            await channel.send(outgoing(f"http://127.0.0.1:{free_loopback_port()}/hooks"))


@pytest.mark.parametrize("url", ["ftp://hooks.example/crm", "not a url", "http://"])
async def test_url_that_cannot_be_posted_to_fails_permanently(url: str) -> None:
    async with WebhookChannel(KEY) as channel:
        with pytest.raises(PermanentDeliveryError, match="cannot send to this URL"):
            await channel.send(outgoing(url))


async def test_a_message_without_a_json_body_is_refused() -> None:
    message = outgoing("http://127.0.0.1:9/hooks")
    sms = RenderedMessage(NotificationChannel.SMS, text="Hi")
    not_a_webhook = OutgoingMessage(**{**message.__dict__, "content": sms})

    async with WebhookChannel(KEY) as channel:
        with pytest.raises(PermanentDeliveryError, match="no webhook body"):
            await channel.send(not_a_webhook)


def test_a_secret_is_required() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookChannel(b"")
