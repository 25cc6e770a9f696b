"""A customer who objects to profiling gets no message acting on scores or warnings; service
messages still go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notification_servers import SmtpSink
from sqlalchemy import select

from crm_contracts import Channel, CloudEvent, ConsentChanged, ConsentState, Purpose
from crm_shared.testing import ApiClient
from notification_service.db.models import Notification
from notification_testing import churn_warning, customer, deliver, event, feed, order

MORNING = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: outside quiet hours


def profiling(customer_id: str, at: datetime, *, objects: bool) -> CloudEvent:
    decision = ConsentState(
        channel=Channel.EMAIL,
        purpose=Purpose.PROFILING,
        granted=not objects,
        source="account_settings",
        changed_at=at,
    )
    return event(ConsentChanged(customer_id=customer_id, consent=decision), at)


async def outcomes(api: ApiClient) -> dict[str | None, tuple[str, str | None]]:
    async with api.app.state.runtime.sessions() as session:
        rows = await session.scalars(select(Notification).order_by(Notification.created_at))
        return {n.rule_id: (n.status, n.reason) for n in rows}


async def test_a_warning_in_flight_is_not_acted_on_but_the_welcome_goes(
    notification_api: ApiClient, mail: SmtpSink
):
    await feed(notification_api, [customer("c1", MORNING - timedelta(minutes=5))])
    await feed(notification_api, [profiling("c1", MORNING - timedelta(minutes=4), objects=True)])
    await feed(notification_api, [order("c1", "o-1", MORNING), churn_warning("c1", MORNING)])

    await deliver(notification_api, MORNING + timedelta(minutes=1))

    held = await outcomes(notification_api)
    assert held["warning-retention-offer"] == ("suppressed", "profiling_objection")
    assert held["welcome-first-order"] == ("sent", None)
    assert len(mail.messages) == 1


async def test_after_withdrawing_the_objection_warnings_are_acted_on_again(
    notification_api: ApiClient, mail: SmtpSink
):
    await feed(notification_api, [customer("c1", MORNING - timedelta(days=30))])
    await feed(notification_api, [profiling("c1", MORNING - timedelta(days=2), objects=True)])
    await feed(notification_api, [profiling("c1", MORNING - timedelta(days=1), objects=False)])
    await feed(notification_api, [churn_warning("c1", MORNING)])

    await deliver(notification_api, MORNING + timedelta(minutes=1))

    assert (await outcomes(notification_api))["warning-retention-offer"] == ("sent", None)
    assert len(mail.messages) == 1
