"""The 360 view is built from events the other services publish, read off the real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select

from crm_shared.contracts import (
    EventPayload,
    Money,
    NotificationSent,
    NotificationSuppressed,
    ScoreUpdated,
    Stage,
    StageChanged,
    build_event,
    encode_event,
)
from profile_service.db.models import NotificationView
from profile_service.events.handlers import apply_to_customer_view
from profile_testing import Api

pytestmark = pytest.mark.kafka
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def scores_for(customer_id: str, *, as_of: datetime, churn_risk: float) -> ScoreUpdated:
    euros = Money(amount=Decimal("120.00"), currency="EUR")
    return ScoreUpdated(
        customer_id=customer_id,
        as_of=as_of,
        recency_score=4,
        frequency_score=3,
        monetary_score=5,
        rfm_segment="Loyal",
        order_count=3,
        total_spend=euros,
        spend_12m=euros,
        historic_clv=euros,
        churn_risk=churn_risk,
    )


async def publish(api: Api, *payloads: EventPayload) -> None:
    settings = api.app.state.settings
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for payload in payloads:
            event = build_event(payload, source="/tests", time=NOW)
            await producer.send_and_wait(
                payload.topic, encode_event(event), key=event.subject.encode()
            )
    finally:
        await producer.stop()


async def test_360_shows_latest_scores_stage_and_messages(api_with_broker: Api) -> None:
    api = api_with_broker
    customer = await api.create_customer(email="three-sixty@example.com")
    cid = customer["id"]
    empty = (await api.get(f"/v1/customers/{cid}/360")).json()
    assert (empty["scores"], empty["lifecycle"], empty["recent_notifications"]) == (None, None, [])

    await publish(
        api,
        scores_for(cid, as_of=NOW, churn_risk=0.2),
        scores_for(cid, as_of=NOW - timedelta(days=1), churn_risk=0.9),  # late and older
        StageChanged(
            customer_id=cid, stage=Stage.ACTIVE, changed_at=NOW, cause="evt-1", reason="2nd order"
        ),
        NotificationSent(
            notification_id="n-1",
            customer_id=cid,
            channel="email",
            category="service",
            sent_at=NOW,
        ),
        NotificationSuppressed(
            notification_id="n-2",
            customer_id=cid,
            category="marketing",
            suppressed_at=NOW + timedelta(minutes=1),
            reason="no_consent",
        ),
    )
    view = {}
    for _ in range(200):
        view = (await api.get(f"/v1/customers/{cid}/360")).json()
        if len(view["recent_notifications"]) == 2 and view["lifecycle"]:
            break
        await asyncio.sleep(0.1)
    assert view["profile"]["email"] == "three-sixty@example.com"
    assert view["scores"]["churn_risk"] == 0.2
    assert view["lifecycle"]["stage"] == "active"
    assert [n["outcome"] for n in view["recent_notifications"]] == ["suppressed", "sent"]


async def test_the_read_model_keeps_ids_of_any_length(api: Api) -> None:
    # Event contracts bound no id length; a long id once sent the event to the dead letters.
    long_customer, long_notification = "shop-customer-" + "c" * 90, "shop-message-" + "n" * 90
    sent = NotificationSent(
        notification_id=long_notification,
        customer_id=long_customer,
        channel="email",
        category="service",
        sent_at=NOW,
    )
    async with api.app.state.runtime.sessions() as session, session.begin():
        await apply_to_customer_view(session, build_event(sent, source="/tests", time=NOW))

    async with api.app.state.runtime.sessions() as session:
        stored = await session.scalar(select(NotificationView.notification_id))
    assert stored == long_notification
