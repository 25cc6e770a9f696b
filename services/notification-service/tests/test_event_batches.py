"""A consumed batch applied at once leaves the same replica and queue as its events one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from crm_contracts import (
    Channel,
    CloudEvent,
    ConsentChanged,
    ConsentState,
    CustomerErased,
    CustomerMerged,
    CustomerSnapshot,
    CustomerUpdated,
    EventPayload,
    OrderCancelled,
    Purpose,
    Stage,
)
from crm_shared.testing import ApiClient
from notification_service.db.models import Contact, ContactConsent, ContactOrder, Notification
from notification_service.events.handlers import apply_events
from notification_testing import (
    churn_warning,
    customer,
    event,
    feed,
    order,
    scores,
    stage_changed,
)

START = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)


def stream(prefix: str) -> list[CloudEvent]:
    """Every kind of consumed event, for customers and ids starting with ``prefix``."""
    c1, c2, c3, c4 = (f"{prefix}-c{n}" for n in range(1, 5))
    at = [START + timedelta(minutes=n) for n in range(20)]
    counter = iter(range(100))

    def numbered(item: CloudEvent) -> CloudEvent:
        return item.model_copy(update={"id": f"{prefix}-e{next(counter)}"})

    def wrapped(payload: EventPayload, moment: datetime) -> CloudEvent:
        return numbered(event(payload, moment))

    withdrawn = ConsentState(
        channel=Channel.EMAIL,
        purpose=Purpose.MARKETING,
        granted=False,
        source="test",
        changed_at=at[8],
    )
    updated = CustomerSnapshot(
        customer_id=c1,
        email="ada@example.org",
        first_name="Ada",
        time_zone="Europe/Berlin",
        created_at=at[0],
        updated_at=at[15],
    )
    return [
        numbered(customer(c1, at[0])),
        numbered(order(c1, f"{prefix}-o1", at[1])),
        wrapped(scores(c1, at[2], 0.2), at[2]),
        numbered(stage_changed(c1, at[3], Stage.NEW, Stage.PROSPECT)),
        numbered(order(c2, f"{prefix}-o2", at[4])),
        numbered(order(c1, f"{prefix}-o1", at[5])),  # redelivered under a new event id
        wrapped(scores(c2, at[7], 0.9), at[7]),
        wrapped(scores(c2, at[6], 0.1), at[7]),  # older scores arriving later
        wrapped(ConsentChanged(customer_id=c1, consent=withdrawn), at[8]),
        numbered(churn_warning(c1, at[9], warning_id=f"{prefix}-w1")),
        wrapped(
            OrderCancelled(order_id=f"{prefix}-o2", customer_id=c2, cancelled_at=at[10]),
            at[10],
        ),
        numbered(order(c2, f"{prefix}-o3", at[11])),  # first again: o2 was cancelled
        numbered(stage_changed(c3, at[12], Stage.AT_RISK, Stage.ACTIVE)),
        wrapped(CustomerMerged(customer_id=c1, merged_customer_id=c3, merged_at=at[13]), at[13]),
        wrapped(scores(c4, at[14], 0.5), at[14]),
        wrapped(CustomerErased(customer_id=c4, erased_at=at[14]), at[14]),
        wrapped(scores(c2, at[16], 0.4), at[16]),
        wrapped(CustomerUpdated(customer=updated, changed_fields=["email"]), at[15]),
        numbered(stage_changed(c2, at[17], Stage.ACTIVE, Stage.NEW)),
    ]


async def test_a_batch_at_once_equals_its_events_one_at_a_time(notification_api: ApiClient):
    async with notification_api.app.state.runtime.sessions() as session, session.begin():
        await apply_events(session, stream("batch"))
    await feed(notification_api, stream("single"))

    batch, single = (
        await stored_state(notification_api, "batch"),
        await stored_state(notification_api, "single"),
    )
    assert batch == single
    contacts = batch["contacts"]
    assert sorted(contacts) == ["c1", "c2"]  # c3 merged into c1, c4 erased
    assert contacts["c1"]["order_count"] == 1  # the redelivered order is not counted twice
    assert contacts["c1"]["email"] == "ada@example.org"
    assert contacts["c2"]["churn_risk"] == 0.4  # the newest scores, not the latest to arrive
    assert contacts["c2"]["stage"] == "active"
    assert batch["consents"] == [("c1", "email", "marketing", False)]
    assert batch["orders"] == [("o1", "c1", False), ("o2", "c2", True), ("o3", "c2", False)]
    queued = [(rule, customer_id) for rule, customer_id, _ in batch["notifications"]]
    assert queued.count(("welcome-first-order", "c1")) == 1
    assert queued.count(("welcome-first-order", "c2")) == 2  # o3 is a first order again
    assert ("warning-retention-offer", "c1") in queued


async def stored_state(api: ApiClient, prefix: str) -> dict[str, Any]:
    """The replica and the queue for ``prefix``'s customers, with the prefix taken off ids."""

    def bare(value: str) -> str:
        return value.removeprefix(f"{prefix}-")

    async with api.app.state.runtime.sessions() as session:
        contacts = {
            bare(row.customer_id): {
                "email": row.email,
                "stage": row.stage,
                "previous_stage": row.previous_stage,
                "churn_risk": row.churn_risk,
                "value_tier": row.value_tier,
                "order_count": row.order_count,
                "last_order_at": row.last_order_at,
                "known_from_profile": row.known_from_profile,
            }
            for row in await session.scalars(
                select(Contact).where(Contact.customer_id.startswith(prefix))
            )
        }
        consents = sorted(
            (bare(row.customer_id), row.channel, row.purpose, row.granted)
            for row in await session.scalars(
                select(ContactConsent).where(ContactConsent.customer_id.startswith(prefix))
            )
        )
        orders = sorted(
            (bare(row.order_id), bare(row.customer_id), row.cancelled)
            for row in await session.scalars(
                select(ContactOrder).where(ContactOrder.customer_id.startswith(prefix))
            )
        )
        notifications = sorted(
            (row.rule_id or "", bare(row.customer_id), bare(row.trigger_event_id or ""))
            for row in await session.scalars(
                select(Notification).where(Notification.customer_id.startswith(prefix))
            )
        )
    return {
        "contacts": contacts,
        "consents": consents,
        "orders": orders,
        "notifications": notifications,
    }
