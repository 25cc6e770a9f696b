"""From triggering events to delivered messages: once, with consent, cap and quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from crm_shared.testing import ApiClient
from notification_servers import SmtpSink
from notification_service.db.models import PLUMBING, Notification
from notification_testing import churn_warning, customer, deliver, feed

# 10:00 in Berlin: outside quiet hours.
MORNING = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


async def notifications(api: ApiClient) -> list[Notification]:
    async with api.app.state.runtime.sessions() as session:
        return list(await session.scalars(select(Notification).order_by(Notification.created_at)))


async def published_types(api: ApiClient) -> list[str]:
    async with api.app.state.runtime.sessions() as session:
        payloads = await session.scalars(select(PLUMBING.outbox.c.payload))
        return [p.split('"type":"')[1].split('"')[0] for p in payloads]


async def test_the_same_churn_warning_delivered_three_times_sends_one_email(
    notification_api: ApiClient, mail: SmtpSink
):
    warning = churn_warning("c1", MORNING)
    await feed(notification_api, [customer("c1", MORNING - timedelta(days=30))])
    await feed(notification_api, [warning, warning, warning])

    await deliver(notification_api, MORNING + timedelta(minutes=1))
    await deliver(notification_api, MORNING + timedelta(minutes=2))

    assert len(mail.messages) == 1
    email = mail.messages[0]
    assert email.rcpt_tos == ["ada@example.com"]
    assert "15% off" in email.part("text/plain")
    [sent] = await notifications(notification_api)
    assert (sent.status, sent.rule_id, sent.channel) == ("sent", "warning-retention-offer", "email")
    assert "notification.sent" in await published_types(notification_api)
