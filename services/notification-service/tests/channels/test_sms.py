"""SMS through an HTTP gateway, sent to a real local gateway."""

from __future__ import annotations

import httpx
import pytest
from notification_servers import sms_gateway

from crm_contracts import Category, NotificationChannel
from crm_shared.testing import free_loopback_port
from notification_service.channels.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from notification_service.channels.sms import HttpSmsGateway, sms_text
from notification_service.domain.templates import RenderedMessage

PHONE = "+4915112345678"
UNSUBSCRIBE_URL = "https://crm.example.com/v1/unsubscribe/u1.YWJj.sm.c2ln"


def outgoing(
    *,
    text: str = "Ada, 10% off today only.",
    recipient: str = PHONE,
    category: Category = Category.MARKETING,
    unsubscribe_url: str | None = UNSUBSCRIBE_URL,
    notification_id: str = "n-1",
) -> OutgoingMessage:
    return OutgoingMessage(
        notification_id=notification_id,
        customer_id="c-1",
        channel=NotificationChannel.SMS,
        recipient=recipient,
        content=RenderedMessage(NotificationChannel.SMS, text=text),
        category=category,
        unsubscribe_url=unsubscribe_url,
    )


def gateway_at(url: str, **options) -> HttpSmsGateway:
    options.setdefault("api_token", "gateway-token")
    return HttpSmsGateway(url, sender_id="CRM", timeout=2.0, **options)


# --- the text -----------------------------------------------------------------------------------


def test_marketing_sms_ends_with_a_stop_line() -> None:
    assert sms_text(outgoing()) == f"Ada, 10% off today only.\nSTOP: {UNSUBSCRIBE_URL}"


def test_service_sms_carries_no_stop_line() -> None:
    assert sms_text(outgoing(category=Category.SERVICE)) == "Ada, 10% off today only."


def test_link_the_template_placed_is_not_repeated() -> None:
    text = f"10% off. Opt out: {UNSUBSCRIBE_URL}"

    assert sms_text(outgoing(text=text)) == text


# --- the gateway --------------------------------------------------------------------------------


async def test_sms_reaches_the_gateway_with_bearer_token_and_json_body() -> None:
    async with (
        sms_gateway(api_token="gateway-token") as gateway,
        gateway_at(gateway.url) as channel,
    ):
        receipt = await channel.send(outgoing())

    assert receipt == "sms-1"
    assert gateway.messages == [
        {
            "to": PHONE,
            "from": "CRM",
            "text": f"Ada, 10% off today only.\nSTOP: {UNSUBSCRIBE_URL}",
            "reference": "n-1",
        }
    ]
    (request,) = gateway.requests
    assert request.headers["authorization"] == "Bearer gateway-token"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "n-1"


async def test_gateway_with_basic_auth() -> None:
    async with (
        sms_gateway(api_token=None, username="crm", password="s3cret") as gateway,
        gateway_at(gateway.url, api_token=None, username="crm", password="s3cret") as ch,
    ):
        assert await ch.send(outgoing()) == "sms-1"

    assert gateway.requests[0].headers["authorization"].startswith("Basic ")


async def test_gateway_failing_twice_then_accepting_is_retried_until_sent() -> None:
    async with (
        sms_gateway(fail_first=2, failure_status=500) as gateway,
        gateway_at(gateway.url) as channel,
    ):
        failures = []
        for _ in range(2):
            with pytest.raises(TransientDeliveryError) as raised:
                await channel.send(outgoing())
            failures.append(raised.value.code)
        receipt = await channel.send(outgoing())

    assert failures == [500, 500]
    assert receipt == "sms-1"
    assert len(gateway.messages) == 1
    # Every attempt names the same notification: a de-duplicating gateway sends it once.
    assert {request.headers["idempotency-key"] for request in gateway.requests} == {"n-1"}


@pytest.mark.parametrize("status", [408, 429, 502, 503])
async def test_busy_or_broken_gateway_is_a_transient_failure(status: int) -> None:
    async with (
        sms_gateway(fail_first=1, failure_status=status) as gateway,
        gateway_at(gateway.url) as channel,
    ):
        with pytest.raises(TransientDeliveryError) as raised:
            await channel.send(outgoing())

    assert raised.value.code == status


async def test_retry_after_is_passed_on() -> None:
    async with (
        sms_gateway(fail_first=1, failure_status=429) as gateway,
        gateway_at(gateway.url) as channel,
    ):
        with pytest.raises(TransientDeliveryError) as raised:
            await channel.send(outgoing())

    assert raised.value.retry_after == 1.0


async def test_number_the_gateway_rejects_fails_permanently_without_naming_it() -> None:
    async with (
        sms_gateway(rejected_numbers=frozenset({PHONE})) as gateway,
        gateway_at(gateway.url) as channel,
    ):
        with pytest.raises(PermanentDeliveryError) as raised:
            await channel.send(outgoing())

    assert raised.value.code == 400
    assert "invalid destination number" in str(raised.value)
    assert PHONE not in str(raised.value)


async def test_wrong_credentials_fail_permanently() -> None:
    async with (
        sms_gateway(api_token="gateway-token") as gateway,
        gateway_at(gateway.url, api_token="stale-token") as channel,
    ):
        with pytest.raises(PermanentDeliveryError) as raised:
            await channel.send(outgoing())

    assert raised.value.code == 401


async def test_gateway_that_is_down_is_a_transient_failure() -> None:
    async with gateway_at(f"http://127.0.0.1:{free_loopback_port()}/v1/messages") as channel:
        with pytest.raises(TransientDeliveryError, match="unreachable"):
            await channel.send(outgoing())


async def test_gateway_too_slow_to_answer_is_a_transient_failure() -> None:
    async with sms_gateway(delay_seconds=0.5) as gateway:
        channel = HttpSmsGateway(gateway.url, sender_id="CRM", api_token="t", timeout=0.1)
        async with channel:
            with pytest.raises(TransientDeliveryError, match="timed out"):
                await channel.send(outgoing())


@pytest.mark.parametrize("recipient", ["015112345678", "+0151", "+49 151 1234", "+4915112345678\n"])
async def test_number_not_in_e164_fails_permanently_without_a_request(recipient: str) -> None:
    # Nothing listens here: a request would fail as unreachable, not as a bad number.
    async with gateway_at(f"http://127.0.0.1:{free_loopback_port()}/v1/messages") as channel:
        with pytest.raises(PermanentDeliveryError, match=r"E\.164"):
            await channel.send(outgoing(recipient=recipient))


async def test_a_shared_client_stays_open_for_its_owner() -> None:
    async with sms_gateway() as gateway, httpx.AsyncClient() as client:
        async with gateway_at(gateway.url, client=client) as channel:
            await channel.send(outgoing())

        assert not client.is_closed
        assert (await client.get(gateway.url)).status_code == 405


def test_credentials_are_a_token_or_a_username_and_password() -> None:
    with pytest.raises(ValueError, match="api_token or a username"):
        HttpSmsGateway("http://x", sender_id="CRM", api_token="t", username="u", password="p")
    with pytest.raises(ValueError, match="both"):
        HttpSmsGateway("http://x", sender_id="CRM", username="u")
