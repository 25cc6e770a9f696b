"""Email over SMTP, delivered to a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import pytest
from notification_servers import smtp_sink

from crm_contracts import Category, NotificationChannel
from crm_shared.testing import free_loopback_port
from notification_service.channels.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from notification_service.channels.email import SmtpChannel
from notification_service.domain.templates import RenderedMessage

SENDER = "CRM <crm@shop.example>"
UNSUBSCRIBE_URL = "https://crm.example.com/v1/unsubscribe/u1.YWJj.em.c2lnbmF0dXJl?x=1&y=2"
FIXED_CLOCK = 1_741_944_600.0  # 2025-03-14T09:30:00Z


def email_content(
    *,
    subject: str = "We miss you, Ada",
    text_body: str = "Hello Ada,\ncome back for 10% off.",
    html_body: str | None = "<html><body><p>Hello Ada, come back for 10% off.</p></body></html>",
) -> RenderedMessage:
    return RenderedMessage(
        NotificationChannel.EMAIL, subject=subject, text_body=text_body, html_body=html_body
    )


def outgoing(
    *,
    recipient: str = "ada@example.com",
    content: RenderedMessage | None = None,
    notification_id: str = "01932c50-2222-7c3b-8d2e-9f0a1b2c3d4e",
    unsubscribe_url: str | None = UNSUBSCRIBE_URL,
) -> OutgoingMessage:
    return OutgoingMessage(
        notification_id=notification_id,
        customer_id="c-1",
        channel=NotificationChannel.EMAIL,
        recipient=recipient,
        content=content or email_content(),
        category=Category.MARKETING,
        unsubscribe_url=unsubscribe_url,
    )


def channel_to(port: int, **options) -> SmtpChannel:
    return SmtpChannel("127.0.0.1", port, SENDER, timeout=5.0, clock=lambda: FIXED_CLOCK, **options)


async def test_email_arrives_with_text_html_and_one_click_unsubscribe() -> None:
    async with smtp_sink() as sink:
        receipt = await channel_to(sink.port).send(outgoing())

    (received,) = sink.messages
    message = received.message
    assert received.mail_from == "crm@shop.example"
    assert received.rcpt_tos == ["ada@example.com"]
    assert message["From"] == SENDER
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "We miss you, Ada"
    assert message["Date"] == "Fri, 14 Mar 2025 09:30:00 +0000"
    assert message.get_content_type() == "multipart/alternative"
    # (A long header is folded after its colon; Python's parser keeps the fold's space.)
    assert message["List-Unsubscribe"].strip() == f"<{UNSUBSCRIBE_URL}>"
    # On the wire as written, not as an encoded word mail clients would not recognise.
    assert f"List-Unsubscribe: <{UNSUBSCRIBE_URL}>".encode() in received.raw
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-CRM-Notification-Id"] == "01932c50-2222-7c3b-8d2e-9f0a1b2c3d4e"
    assert message["Message-ID"] == "<01932c50-2222-7c3b-8d2e-9f0a1b2c3d4e@shop.example>"
    assert receipt == message["Message-ID"]
    assert (received.part("text/plain") or "").startswith("Hello Ada,\ncome back for 10% off.")
    assert "<p>Hello Ada, come back for 10% off.</p>" in (received.part("text/html") or "")


async def test_unsubscribe_link_is_added_to_bodies_that_lack_it() -> None:
    async with smtp_sink() as sink:
        await channel_to(sink.port).send(outgoing())

    (received,) = sink.messages
    text = received.part("text/plain") or ""
    html = received.part("text/html") or ""
    assert text.rstrip().endswith(f"Unsubscribe: {UNSUBSCRIBE_URL}")
    escaped = UNSUBSCRIBE_URL.replace("&", "&amp;")
    # The footer goes inside the document, before </body>.
    assert html.index(f'href="{escaped}"') < html.index("</body>")


async def test_unsubscribe_link_the_template_placed_is_not_repeated() -> None:
    escaped = UNSUBSCRIBE_URL.replace("&", "&amp;")
    content = email_content(
        text_body=f"Hello Ada.\nUnsubscribe here: {UNSUBSCRIBE_URL}",
        html_body=f'<p>Hello Ada. <a href="{escaped}">Unsubscribe here</a></p>',
    )

    async with smtp_sink() as sink:
        await channel_to(sink.port).send(outgoing(content=content))

    (received,) = sink.messages
    assert (received.part("text/plain") or "").count(UNSUBSCRIBE_URL) == 1
    assert (received.part("text/html") or "").count(escaped) == 1


async def test_email_without_html_is_plain_text() -> None:
    async with smtp_sink() as sink:
        await channel_to(sink.port).send(outgoing(content=email_content(html_body=None)))

    (received,) = sink.messages
    assert received.message.get_content_type() == "text/plain"
    assert UNSUBSCRIBE_URL in (received.part("text/plain") or "")


async def test_message_without_unsubscribe_link_has_no_unsubscribe_header() -> None:
    async with smtp_sink() as sink:
        await channel_to(sink.port).send(outgoing(unsubscribe_url=None))

    (received,) = sink.messages
    assert received.message["List-Unsubscribe"] is None
    assert "Unsubscribe" not in (received.part("text/plain") or "")


async def test_every_attempt_of_a_notification_carries_the_same_message_id() -> None:
    async with smtp_sink() as sink:
        channel = channel_to(sink.port)
        first = await channel.send(outgoing())
        second = await channel.send(outgoing())

    assert first == second
    assert [m.message["Message-ID"] for m in sink.messages] == [first, second]


async def test_refused_recipient_fails_permanently_without_naming_the_address() -> None:
    refusal = "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"

    async with smtp_sink(refuse={"gone@example.com": refusal}) as sink:
        with pytest.raises(PermanentDeliveryError) as raised:
            await channel_to(sink.port).send(outgoing(recipient="gone@example.com"))

    assert raised.value.code == 550
    assert "User unknown" in str(raised.value)
    assert "gone@example.com" not in str(raised.value)
    assert sink.messages == []


async def test_greylisted_recipient_is_retried_later() -> None:
    refusal = "450 4.7.1 Greylisted, try again in 5 minutes"

    async with smtp_sink(refuse={"new@example.com": refusal}) as sink:
        with pytest.raises(TransientDeliveryError) as raised:
            await channel_to(sink.port).send(outgoing(recipient="new@example.com"))

    assert raised.value.code == 450


async def test_server_that_is_not_running_is_a_transient_failure() -> None:
    channel = channel_to(free_loopback_port())

    with pytest.raises(TransientDeliveryError, match="unreachable"):
        await channel.send(outgoing())


@pytest.mark.parametrize(
    "recipient",
    [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "a b@example.com",
        "ada@example.com\r\nBcc: x@y.z",
    ],
)
async def test_malformed_address_fails_permanently_without_a_connection(recipient: str) -> None:
    channel = channel_to(free_loopback_port())  # nothing listens: only validation can answer

    with pytest.raises(PermanentDeliveryError, match="not an email address"):
        await channel.send(outgoing(recipient=recipient))


async def test_line_break_in_a_header_is_refused() -> None:
    channel = channel_to(free_loopback_port())

    with pytest.raises(PermanentDeliveryError, match="cannot build the email"):
        await channel.send(outgoing(unsubscribe_url="https://x.example/u\r\nBcc: x@y.z"))


async def test_a_message_that_is_not_an_email_is_refused() -> None:
    sms = RenderedMessage(NotificationChannel.SMS, text="Hi")

    with pytest.raises(PermanentDeliveryError, match="not an email"):
        await channel_to(free_loopback_port()).send(outgoing(content=sms))


def test_sender_needs_an_address() -> None:
    with pytest.raises(ValueError, match="sender"):
        SmtpChannel("127.0.0.1", 25, "CRM")
