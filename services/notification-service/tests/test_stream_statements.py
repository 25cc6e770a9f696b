"""The stream run's set-based statements store what the events said, each row once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, text

from crm_contracts import Stage
from crm_shared.testing import ApiClient
from notification_service.db.models import Contact, ContactOrder, Notification
from notification_service.events.handlers import apply_events
from notification_testing import (
    app_settings,
    churn_warning,
    event,
    feed,
    order,
    running_api,
    scores,
    stage_changed,
)

AT = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)


async def test_a_batch_stores_documents_totals_and_each_trigger_once(notification_api: ApiClient):
    warning = churn_warning("st-c1", AT + timedelta(minutes=3), warning_id="st-w1")
    first_order = order("st-c1", "st-o1", AT, total="123.4500")
    batch = [
        first_order,
        event(scores("st-c1", AT + timedelta(minutes=1), 0.7), AT + timedelta(minutes=1)),
        stage_changed("st-c1", AT + timedelta(minutes=2), Stage.NEW, Stage.PROSPECT),
        warning,
        warning,  # the same event twice in one batch: one queued row per rule
        order("st-c2", "st-o2", AT, total="5.00"),
    ]
    async with notification_api.app.state.runtime.sessions() as session, session.begin():
        await apply_events(session, batch)
    # The whole batch again, as a consumer reading it twice would hand it over: nothing new.
    async with notification_api.app.state.runtime.sessions() as session, session.begin():
        await apply_events(session, batch)

    async with notification_api.app.state.runtime.sessions() as session:
        contact = await session.get(Contact, "st-c1")
        orders = {
            row.order_id: row
            for row in await session.scalars(
                select(ContactOrder).where(ContactOrder.customer_id.startswith("st-"))
            )
        }
        queued = list(
            await session.scalars(
                select(Notification).where(Notification.customer_id.startswith("st-"))
            )
        )
    assert contact is not None
    assert contact.order_count == 1
    assert contact.last_order_at == AT
    assert contact.stage == "new"
    assert contact.previous_stage == "prospect"
    assert contact.churn_risk == 0.7
    assert contact.value_tier == "profit"
    assert contact.scores["rfm_segment"] == "Loyal"
    assert contact.scores["churn_risk"] == 0.7
    assert contact.known_from_profile is False
    assert {order_id: (row.total, row.cancelled) for order_id, row in orders.items()} == {
        "st-o1": (Decimal("123.4500"), False),
        "st-o2": (Decimal("5.0000"), False),
    }
    keys = [row.dedup_key for row in queued]
    assert len(keys) == len(set(keys))
    warned = [row for row in queued if row.trigger_event_id == warning.id]
    assert warned, "the open warning matches the retention rules"
    assert len(warned) == len({row.rule_id for row in warned})
    facts = warned[0].trigger_facts["warning"]
    assert facts["warning_id"] == "st-w1"
    assert facts["status"] == "open"
    welcome = [row for row in queued if row.trigger_event_id == first_order.id]
    assert welcome
    assert welcome[0].trigger_facts["order"] == {
        "order_id": "st-o1",
        "total": {"amount": "123.4500", "currency": "USD"},
    }
    assert all(row.status == "scheduled" and row.attempts == 0 for row in queued)
    assert all(row.channels for row in queued)


async def test_a_batch_that_changes_no_value_writes_no_contact_row(postgres_url: str):
    # A score already kept, and the stage it announces already stored: the row stays as it
    # is (no new row version: its xmin, the writing transaction, does not move).
    async with running_api(app_settings(postgres_url)) as api:
        kept = event(scores("st-c3", AT, 0.4), AT)
        stage = stage_changed("st-c3", AT, Stage.ACTIVE, Stage.NEW)
        await feed(api, [order("st-c3", "st-o3", AT - timedelta(days=2)), kept, stage])
        before = await _row_version(api, "st-c3")
        await feed(api, [event(scores("st-c3", AT, 0.4), AT)])
        await feed(api, [stage_changed("st-c3", AT, Stage.ACTIVE, Stage.NEW)])
        assert await _row_version(api, "st-c3") == before
        await feed(api, [event(scores("st-c3", AT + timedelta(days=1), 0.5), AT)])
        assert await _row_version(api, "st-c3") != before


async def _row_version(api: ApiClient, customer_id: str) -> str:
    async with api.app.state.runtime.sessions() as session:
        version = await session.scalar(
            text("SELECT xmin::text FROM contacts WHERE customer_id = :id"), {"id": customer_id}
        )
    assert version is not None
    return str(version)
