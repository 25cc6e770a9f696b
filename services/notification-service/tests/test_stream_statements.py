"""The stream run's set-based statements store what the events said, each row once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import select, text

from crm_contracts import Stage
from crm_shared.testing import ApiClient
from notification_service.db.models import Contact, ContactOrder, Notification
from notification_service.domain.default_playbook import DEFAULT_RULES
from notification_service.domain.playbooks import Trigger
from notification_service.events.handlers import apply_events
from notification_service.workflows import contacts
from notification_service.workflows.scheduling import notification_rows, queue_notifications
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


async def test_rows_sent_as_one_json_document_are_stored_exactly(postgres_url: str):
    # The stream statements send their rows as one JSON document: text with quotes,
    # backslashes and non-ASCII, floats, decimals with their scale, times with another
    # offset and microseconds, JSON nulls and documents must come back as they were.
    odd_id = 'st-"c4"\\/ü\n'
    berlin = timezone(timedelta(hours=2))
    seen_at = datetime(2025, 6, 2, 11, 30, 0, 123456, tzinfo=berlin)
    contact = contacts.StreamContact(
        customer_id=odd_id,
        scores={"as_of": seen_at.isoformat(), "nested": {"list": [1, "two", None]}},
        stage="new",
        churn_risk=0.1 + 0.2,
        predicted_clv_12m="12.30 USD",
        order_count=3,
        last_order_at=seen_at,
    )
    row = notification_rows(
        [DEFAULT_RULES[0]],
        Trigger.from_order_placed(
            "st-e4",
            order(odd_id, "st-o4", seen_at).data,  # type: ignore[arg-type]
            is_first_order=True,
        ),
        {"order": {"note": 'say "hi"\\ 🎉'}},
        seen_at,
    )[0]
    row.update(reason="no_contact", detail="line one\nline two ✓", finished_at=seen_at)
    async with running_api(app_settings(postgres_url)) as api:
        async with api.app.state.runtime.sessions() as session, session.begin():
            await contacts.insert_stream_contacts(session, [(contact, seen_at)])
            await contacts.insert_orders(
                session,
                [
                    {
                        "order_id": "st-o4",
                        "customer_id": odd_id,
                        "placed_at": seen_at,
                        "total": Decimal("123.4500"),
                    }
                ],
            )
            assert await queue_notifications(session, [row]) == {row["notification_id"]}
        contact.stage, contact.churn_risk, contact.rfm_segment = None, 1 / 3, "At Risk"
        async with api.app.state.runtime.sessions() as session, session.begin():
            await contacts.update_stream_contacts(session, [contact])
        async with api.app.state.runtime.sessions() as session:
            stored = await session.get(Contact, odd_id)
            stored_order = await session.get(ContactOrder, "st-o4")
            queued = await session.get(Notification, row["notification_id"])
    assert stored is not None
    assert stored_order is not None
    assert queued is not None
    assert stored.scores == contact.scores
    assert (stored.stage, stored.churn_risk, stored.rfm_segment) == (None, 1 / 3, "At Risk")
    assert (stored.predicted_clv_12m, stored.order_count) == ("12.30 USD", 3)
    assert stored.last_order_at == seen_at
    assert str(stored_order.total) == "123.4500"
    assert stored_order.placed_at == seen_at
    assert queued.customer_id == odd_id
    assert queued.trigger_facts == {"order": {"note": 'say "hi"\\ 🎉'}}
    assert queued.channels == row["channels"]
    assert (queued.reason, queued.detail) == ("no_contact", "line one\nline two ✓")
    assert queued.finished_at == seen_at
    assert queued.due_at == row["due_at"]
    assert queued.assignment is None
