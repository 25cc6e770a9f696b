"""A process dying mid-send: SMS and webhooks sent again under their key, email never twice.

The "crash" is the delivery round dying right after a channel took a message (an exception
no code of ours catches, as a SIGKILL leaves things), with the app then stopped and a new
one started on the same database, as a restarted process. One message is handed over at a
time (``parallel_sends=1``), so which ones had left when it died is known.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from notification_servers import sms_gateway, smtp_sink, webhook_receiver
from sqlalchemy import select

from crm_contracts import Channel, CloudEvent, NotificationChannel, Stage
from crm_shared.testing import ApiClient
from notification_service.channels.base import Channel as DeliveryChannel
from notification_service.channels.base import OutgoingMessage
from notification_service.db.models import PLUMBING, Notification
from notification_service.domain.signing import webhook_secret
from notification_service.workflows.delivery import deliver_due
from notification_testing import (
    app_settings,
    churn_warning,
    customer,
    feed,
    running_api,
    stage_changed,
)

MORNING = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
CUSTOMERS = ("c1", "c2", "c3")
WEBHOOK_SECRET = webhook_secret(b"k" * 32)


class ProcessKilled(BaseException):
    """Stands for a SIGKILL: nothing in the service catches it."""


@dataclasses.dataclass
class DiesAfterSending:
    """A channel whose process dies right after its ``die_at``-th message left."""

    inner: DeliveryChannel
    die_at: int
    sent: int = 0

    async def send(self, message: OutgoingMessage) -> str:
        receipt = await self.inner.send(message)
        self.sent += 1
        if self.sent == self.die_at:
            raise ProcessKilled
        return receipt


def triggers(channel: NotificationChannel) -> list[CloudEvent]:
    """Three customers, each with one message due now on ``channel``."""
    events: list[CloudEvent] = []
    for number, customer_id in enumerate(CUSTOMERS):
        joined = MORNING - timedelta(days=400)
        if channel is NotificationChannel.SMS:
            phone = f"+49151000000{number}"
            events.append(
                customer(customer_id, joined, email=None, phone=phone, marketing=[Channel.SMS])
            )
            events.append(stage_changed(customer_id, MORNING, Stage.CHURNED, Stage.DORMANT))
        elif channel is NotificationChannel.WEBHOOK:
            events.append(customer(customer_id, joined))
            warning = churn_warning(
                customer_id, MORNING, action="account_manager_task", warning_id=f"w-{number}"
            )
            events.append(warning)
        else:
            events.append(customer(customer_id, joined))
            events.append(churn_warning(customer_id, MORNING, warning_id=f"w-{number}"))
    return events


async def round_that_dies(api: ApiClient, channel: NotificationChannel, die_at: int) -> None:
    config = api.app.state.delivery
    dying = DiesAfterSending(config.channels[channel], die_at)
    one_at_a_time = dataclasses.replace(
        config, channels={**config.channels, channel: dying}, parallel_sends=1
    )
    with pytest.raises(ProcessKilled):
        await deliver_due(api.app.state.runtime, one_at_a_time, lambda: MORNING, lambda: 0.5)


async def deliver_at(api: ApiClient, at: datetime) -> None:
    await deliver_due(api.app.state.runtime, api.app.state.delivery, lambda: at, lambda: 0.5)


async def notifications(api: ApiClient) -> dict[str, Notification]:
    async with api.app.state.runtime.sessions() as session:
        rows = await session.scalars(select(Notification))
        return {row.customer_id: row for row in rows}


async def published(api: ApiClient) -> list[str]:
    async with api.app.state.runtime.sessions() as session:
        return list(await session.scalars(select(PLUMBING.outbox.c.payload)))


@pytest.mark.parametrize("channel", [NotificationChannel.SMS, NotificationChannel.WEBHOOK])
async def test_sms_and_webhooks_interrupted_by_a_crash_are_sent_again_under_the_same_key(
    database_url: str, channel: NotificationChannel
):
    async with (
        smtp_sink() as mail,
        sms_gateway() as gateway,
        webhook_receiver(WEBHOOK_SECRET) as receiver,
    ):
        settings = app_settings(
            database_url,
            smtp_host=mail.host,
            smtp_port=mail.port,
            sms_gateway_url=gateway.url,
            sms_gateway_token="gateway-token",
            account_manager_webhook_url=receiver.url,
            webhook_secret=WEBHOOK_SECRET,
        )
        async with running_api(settings) as api:
            await feed(api, triggers(channel))
            await round_that_dies(api, channel, die_at=2)
        async with running_api(settings) as restarted:
            await deliver_at(restarted, MORNING + timedelta(minutes=1))
            rows = await notifications(restarted)

    assert {customer_id: row.status for customer_id, row in rows.items()} == dict.fromkeys(
        CUSTOMERS, "sent"
    )
    ids = {row.notification_id for row in rows.values()}
    if channel is NotificationChannel.SMS:
        keys = [request.headers["idempotency-key"] for request in gateway.requests]
        unique = gateway.unique_messages()
    else:
        keys = [request.headers["webhook-id"] for request in receiver.requests]
        unique = {key: d.json() for key, d in receiver.unique_deliveries().items()}
    # The message that left as the process died went again, under the same key: the
    # receiver keeps one per key, so each customer has exactly one and none is lost.
    assert sorted(keys) == sorted([*ids, keys[1]])
    assert set(unique) == ids
    assert mail.messages == []


async def test_an_email_interrupted_by_a_crash_is_reported_failed_and_never_sent_twice(
    database_url: str,
):
    async with smtp_sink() as mail:
        settings = app_settings(database_url, smtp_host=mail.host, smtp_port=mail.port)
        async with running_api(settings) as api:
            await feed(api, triggers(NotificationChannel.EMAIL))
            await round_that_dies(api, NotificationChannel.EMAIL, die_at=2)
            before = await notifications(api)
        async with running_api(settings) as restarted:
            await deliver_at(restarted, MORNING + timedelta(minutes=1))
            rows = await notifications(restarted)
            events = await published(restarted)

    first, interrupted, untouched = sorted(
        before.values(), key=lambda row: (row.handed_at is None, row.status != "sent")
    )
    assert (first.status, interrupted.status, untouched.status) == ("sent", "sending", "sending")
    assert interrupted.handed_at is not None
    assert untouched.handed_at is None
    # The one handed to SMTP when the process died: unknown, so failed and never resent;
    # the one never handed over: sent by the restarted process.
    after = {row.notification_id: row for row in rows.values()}
    assert after[interrupted.notification_id].status == "failed"
    assert "interrupted" in (after[interrupted.notification_id].detail or "")
    assert after[untouched.notification_id].status == "sent"
    mailed = [email.message["X-CRM-Notification-Id"] for email in mail.messages]
    assert sorted(mailed) == sorted(after)  # each once: none twice, the untouched one too
    assert sum('"type":"notification.failed"' in event for event in events) == 1


async def test_a_live_replicas_sends_are_left_alone_until_it_is_gone(postgres_url: str):
    async with smtp_sink() as mail, sms_gateway() as gateway:
        settings = app_settings(
            postgres_url,
            smtp_host=mail.host,
            smtp_port=mail.port,
            sms_gateway_url=gateway.url,
            sms_gateway_token="gateway-token",
        )
        async with running_api(settings) as first:
            await feed(first, triggers(NotificationChannel.SMS))
            await round_that_dies(first, NotificationChannel.SMS, die_at=1)
            async with running_api(settings) as sibling:
                # The first replica still holds its sender lock: its sends are its own.
                await deliver_at(sibling, MORNING + timedelta(minutes=1))
                still = await notifications(sibling)
                assert sorted(row.status for row in still.values()) == ["sending"] * 3
        async with running_api(settings) as restarted:
            await deliver_at(restarted, MORNING + timedelta(minutes=2))
            rows = await notifications(restarted)

    assert sorted(row.status for row in rows.values()) == ["sent"] * 3
    assert len(gateway.unique_messages()) == 3
    assert len(gateway.messages) == 4  # the one in flight at the "crash" went twice
