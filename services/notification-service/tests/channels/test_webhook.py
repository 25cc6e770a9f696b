"""Signed webhooks, delivered to a real local receiver that checks the signature."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from notification_servers import webhook_receiver

from crm_shared.contracts import Category, NotificationChannel
from crm_shared.testing import free_loopback_port
from notification_service.channels.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from notification_service.channels.webhook import WebhookChannel
from notification_service.domain.signing import sign_webhook, verify_webhook
from notification_service.domain.templates import RenderedMessage

SECRET = b"whsec-shared-with-the-receiver"
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


async def test_receiver_verifies_the_signed_delivery() -> None:
    async with webhook_receiver(SECRET) as receiver, WebhookChannel(SECRET, timeout=2.0) as channel:
        receipt = await channel.send(outgoing(receiver.url))

    assert receipt == "hook-1"
    (delivery,) = receiver.deliveries
    assert delivery.json() == json.loads(BODY)
    assert delivery.body == BODY.encode()
    assert delivery.notification_id == "n-1"
    assert delivery.signature.startswith(f"t={delivery.timestamp},v1=")
    assert receiver.rejected == []
    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/json"


async def test_signature_uses_the_injected_clock() -> None:
    sent_at = int(time.time()) - 60
    async with (
        webhook_receiver(SECRET) as receiver,
        WebhookChannel(SECRET, clock=lambda: sent_at + 0.9) as channel,
    ):
        await channel.send(outgoing(receiver.url))

    (delivery,) = receiver.deliveries
    assert delivery.timestamp == str(sent_at)
    assert delivery.signature == sign_webhook(SECRET, sent_at, BODY.encode())


async def test_receiver_rejects_a_tampered_body() -> None:
    now = int(time.time())
    signature = sign_webhook(SECRET, now, BODY.encode())
    tampered = BODY.replace("c-1", "c-2").encode()

    async with webhook_receiver(SECRET) as receiver, httpx.AsyncClient() as client:
        response = await client.post(
            receiver.url, content=tampered, headers={"X-CRM-Signature": signature}
        )

    assert response.status_code == 401
    assert receiver.deliveries == []
    assert [request.body for request in receiver.rejected] == [tampered]
    assert not verify_webhook(SECRET, signature, tampered, now)


async def test_wrong_secret_fails_permanently() -> None:
    async with (
        webhook_receiver(SECRET) as receiver,
        WebhookChannel(b"not-the-receivers-secret") as channel,
    ):
        with pytest.raises(PermanentDeliveryError) as raised:
            await channel.send(outgoing(receiver.url))

    assert raised.value.code == 401
    assert len(receiver.rejected) == 1


async def test_signature_older_than_the_tolerance_is_refused() -> None:
    an_hour_ago = time.time() - 3_600
    async with (
        webhook_receiver(SECRET) as receiver,
        WebhookChannel(SECRET, clock=lambda: an_hour_ago) as channel,
    ):
        with pytest.raises(PermanentDeliveryError):
            await channel.send(outgoing(receiver.url))

    assert receiver.deliveries == []


async def test_receiver_error_is_retried_with_the_same_notification_id() -> None:
    async with (
        webhook_receiver(SECRET, fail_first=1, failure_status=503) as receiver,
        WebhookChannel(SECRET) as channel,
    ):
        with pytest.raises(TransientDeliveryError) as raised:
            await channel.send(outgoing(receiver.url))
        receipt = await channel.send(outgoing(receiver.url))

    assert (raised.value.code, raised.value.retry_after) == (503, 1.0)
    assert receipt == "hook-1"
    ids = [request.headers["x-crm-notification-id"] for request in receiver.requests]
    assert ids == ["n-1", "n-1"]


async def test_receiver_that_is_down_is_a_transient_failure() -> None:
    async with WebhookChannel(SECRET) as channel:
        with pytest.raises(TransientDeliveryError, match="unreachable"):
            await channel.send(outgoing(f"http://127.0.0.1:{free_loopback_port()}/hooks"))


@pytest.mark.parametrize("url", ["ftp://hooks.example/crm", "not a url", "http://"])
async def test_url_that_cannot_be_posted_to_fails_permanently(url: str) -> None:
    async with WebhookChannel(SECRET) as channel:
        with pytest.raises(PermanentDeliveryError, match="cannot send to this URL"):
            await channel.send(outgoing(url))


async def test_a_message_without_a_json_body_is_refused() -> None:
    message = outgoing("http://127.0.0.1:9/hooks")
    sms = RenderedMessage(NotificationChannel.SMS, text="Hi")
    not_a_webhook = OutgoingMessage(**{**message.__dict__, "content": sms})

    async with WebhookChannel(SECRET) as channel:
        with pytest.raises(PermanentDeliveryError, match="no webhook body"):
            await channel.send(not_a_webhook)


def test_a_secret_is_required() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookChannel(b"")
