"""A new customer's due messages that cannot be sent are stored decided by the batch that
queues them, as the delivery round would have decided them, each published once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from notification_servers import SmtpSink
from sqlalchemy import select

from crm_shared import utc_now
from crm_shared.testing import ApiClient
from notification_service.app import decision_settings
from notification_service.db.models import PLUMBING, Notification
from notification_service.events.handlers import apply_events
from notification_testing import app_settings, customer, deliver, feed, order

AT = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)


async def _apply(api: ApiClient, batch: list, database_url: str, *, decide: bool) -> None:
    decisions = decision_settings(app_settings(database_url)) if decide else None
    async with api.app.state.runtime.sessions() as session, session.begin():
        await apply_events(session, batch, decisions)


async def _rows(api: ApiClient, customer_id: str) -> dict[str | None, Notification]:
    async with api.app.state.runtime.sessions() as session:
        found = await session.scalars(
            select(Notification).where(Notification.customer_id == customer_id)
        )
        return {row.rule_id: row for row in found}


async def _published(api: ApiClient) -> list[dict]:
    async with api.app.state.runtime.sessions() as session:
        return [json.loads(p) for p in await session.scalars(select(PLUMBING.outbox.c.payload))]


async def test_a_new_customers_welcome_is_stored_suppressed_as_the_round_decides_it(
    notification_api: ApiClient, database_url: str
):
    # Decided as queued: a customer seen first in this batch, with nowhere to send to.
    placed = utc_now() - timedelta(minutes=5)
    first = order("dn-c1", "dn-o1", placed)
    await _apply(notification_api, [first], database_url, decide=True)
    # The same batch again, and the same order under a new event id: nothing more.
    await _apply(notification_api, [first], database_url, decide=True)
    await _apply(notification_api, [order("dn-c1", "dn-o1", placed)], database_url, decide=True)
    at_once = await _rows(notification_api, "dn-c1")

    # Queued, then decided by a delivery round.
    await _apply(notification_api, [order("dn-c2", "dn-o2", placed)], database_url, decide=False)
    assert (await _rows(notification_api, "dn-c2"))["welcome-first-order"].status == "scheduled"
    await deliver(notification_api, utc_now())
    by_round = await _rows(notification_api, "dn-c2")

    assert (
        set(at_once)
        == set(by_round)
        == {
            "welcome-first-order",
            "care-15d",
            "member-benefits-30d",
            "offer-40d-no-repeat",
        }
    )
    for rule_id, row in at_once.items():
        other = by_round[rule_id]
        assert (row.status, row.reason, row.detail, row.assignment, row.attempts) == (
            other.status,
            other.reason,
            other.detail,
            other.assignment,
            other.attempts,
        )
    welcome = at_once["welcome-first-order"]
    assert welcome.status == "suppressed"
    assert welcome.finished_at is not None
    # Those due later stay in the queue.
    assert {row.status for rule, row in at_once.items() if rule != "welcome-first-order"} == {
        "scheduled"
    }
    published = await _published(notification_api)
    suppressed = [
        p for p in published if p["type"] == "notification.suppressed" and p["subject"] == "dn-c1"
    ]
    assert [p["data"]["notification_id"] for p in suppressed] == [welcome.notification_id]
    assert suppressed[0]["data"]["reason"] == welcome.reason


async def test_a_known_customers_welcome_waits_for_the_delivery_round(
    notification_api: ApiClient, database_url: str, mail: SmtpSink
):
    # Known from profile-service before the order: the round renders and sends it.
    await feed(notification_api, [customer("dn-c3", AT - timedelta(days=1))])
    await _apply(notification_api, [order("dn-c3", "dn-o3", AT)], database_url, decide=True)
    assert (await _rows(notification_api, "dn-c3"))["welcome-first-order"].status == "scheduled"

    await deliver(notification_api, AT + timedelta(minutes=30))  # 12:00 in Berlin

    welcome = (await _rows(notification_api, "dn-c3"))["welcome-first-order"]
    assert (welcome.status, welcome.channel) == ("sent", "email")
    assert [m.rcpt_tos for m in mail.messages] == [["ada@example.com"]]
