"""Hold-out groups on the delivery path, and the effect report measured through the service."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from notification_servers import SmtpSink
from sqlalchemy import select

from crm_contracts import (
    CloudEvent,
    CustomerMerged,
    Money,
    OrderCancelled,
    OrderRefunded,
)
from crm_shared import Scope
from crm_shared.testing import ApiClient
from notification_service.db.models import PLUMBING, Notification
from notification_service.domain.holdout import is_held_out
from notification_service.events.handlers import apply_events
from notification_testing import (
    app_settings,
    churn_warning,
    customer,
    deliver,
    event,
    order,
    running_api,
)

RULE = "warning-retention-offer"
# 10:00 in Berlin: outside quiet hours.
MORNING = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.postgres


@pytest.fixture
async def api(postgres_url: str, mail: SmtpSink) -> AsyncIterator[ApiClient]:
    """notification-service on a fresh PostgreSQL database, mailing to ``mail``."""
    settings = app_settings(postgres_url, smtp_host=mail.host, smtp_port=mail.port)
    async with running_api(settings) as running:
        yield running


async def apply(api: ApiClient, events: Sequence[CloudEvent], batch: int = 200) -> None:
    """Apply ``events`` as consumed batches of ``batch``, in order."""
    for start in range(0, len(events), batch):
        async with api.app.state.runtime.sessions() as session, session.begin():
            await apply_events(session, list(events[start : start + batch]))


async def set_holdout_share(api: ApiClient, share: float) -> None:
    rule = (await api.get(f"/v1/rules/{RULE}")).json()
    saved = await api.put(f"/v1/rules/{RULE}", Scope.ADMIN, json={**rule, "holdout_share": share})
    assert saved.status_code == 200, saved.text
    assert saved.json()["holdout_share"] == share


async def warn_everyone(api: ApiClient, customers: Sequence[str], at: datetime) -> None:
    """Each customer reachable by email with consent, then one churn warning each, delivered."""
    await apply(
        api,
        [customer(c, at - timedelta(days=60), email=f"{c}@example.com") for c in customers]
        + [churn_warning(c, at, warning_id=f"w-{c}") for c in customers],
    )
    while await deliver(api, at + timedelta(minutes=1)):
        pass


async def rule_rows(api: ApiClient) -> list[Notification]:
    async with api.app.state.runtime.sessions() as session:
        return list(await session.scalars(select(Notification).where(Notification.rule_id == RULE)))


async def test_no_held_out_customer_ever_receives_the_rules_message(
    api: ApiClient, mail: SmtpSink
) -> None:
    await set_holdout_share(api, 0.5)
    customers = [f"hold-{n}" for n in range(40)]
    held = {c for c in customers if is_held_out(RULE, c, 0.5)}
    assert 5 < len(held) < 35  # both groups are there to check

    await warn_everyone(api, customers, MORNING)
    # The same warnings again (a redelivery with new event ids): still nothing for them.
    await apply(api, [churn_warning(c, MORNING, warning_id=f"w-{c}") for c in sorted(held)])
    while await deliver(api, MORNING + timedelta(minutes=2)):
        pass

    mailed = {to.split("@")[0] for message in mail.messages for to in message.rcpt_tos}
    assert mailed == set(customers) - held
    rows = await rule_rows(api)
    for row in rows:
        group = "holdout" if row.customer_id in held else "treatment"
        assert row.assignment == group
        if group == "holdout":
            assert (row.status, row.reason, row.channel) == ("suppressed", "holdout", None)
    async with api.app.state.runtime.sessions() as session:
        payloads = list(await session.scalars(select(PLUMBING.outbox.c.payload)))
    held_events = [p for p in payloads if '"reason":"holdout"' in p]
    assert len(held_events) == len([r for r in rows if r.reason == "holdout"]) >= len(held)


async def test_a_service_rule_holds_nobody_back_by_default(api: ApiClient, mail: SmtpSink) -> None:
    rules = {r["rule_id"]: r for r in (await api.get("/v1/rules")).json()}
    assert rules["warning-retention-offer"]["holdout_share"] == 0.1
    assert rules["high-value-warning-task"]["holdout_share"] == 0.0
    refused = await api.put(
        f"/v1/rules/{RULE}", Scope.ADMIN, json={**rules[RULE], "holdout_share": 0.7}
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in refused.json()["errors"]] == ["holdout_share"]


def _simulated_orders(
    customers: Sequence[str], share: float, base_rate: float, lift: float, seed: int
) -> list[CloudEvent]:
    """Treated customers buy again within 30 days with ``base_rate + lift``, held-out ones
    with ``base_rate``; each repurchase is 40.00."""
    rng = random.Random(seed)
    events = []
    for c in customers:
        rate = base_rate + (0.0 if is_held_out(RULE, c, share) else lift)
        if rng.random() < rate:
            at = MORNING + timedelta(days=rng.uniform(1, 29))
            events.append(order(c, f"o-{c}", at, total="40.00"))
    return events


async def effects(api: ApiClient, **params: Any) -> dict[str, Any]:
    response = await api.get("/v1/analytics/effects", params={"rule_id": RULE, **params})
    assert response.status_code == 200, response.text
    [rule] = response.json()["rules"]
    return dict(rule)


@pytest.mark.parametrize(("lift", "label"), [(0.25, "the offer works"), (0.0, "no effect")])
async def test_the_effect_report_covers_the_true_uplift_of_a_simulated_population(
    api: ApiClient, lift: float, label: str
) -> None:
    share, base_rate = 0.5, 0.2
    customers = [f"pop-{n}" for n in range(300)]
    await set_holdout_share(api, share)
    await warn_everyone(api, customers, MORNING)
    await apply(api, _simulated_orders(customers, share, base_rate, lift, seed=11))

    rule = await effects(api, **{"from": "2025-03-01", "to": "2025-03-31"})

    held = sum(is_held_out(RULE, c, share) for c in customers)
    assert (rule["treated"]["customers"], rule["held_out"]["customers"]) == (300 - held, held)
    assert rule["pending_customers"] == 0
    rate = rule["repurchase_uplift"]["absolute"]
    assert rate["low"] <= lift <= rate["high"], label
    revenue = rule["revenue_per_customer_uplift"]["absolute"]
    assert Decimal(revenue["low"]) <= Decimal(str(lift * 40)) <= Decimal(revenue["high"])
    warnings = rule["treated"]["churn_warnings"]
    assert warnings["saved"] == rule["treated"]["repurchased"]
    assert warnings["saved"] + warnings["lost"] == rule["treated"]["customers"]
    if lift:
        assert rate["low"] > 0, "300 customers and a 0.25 lift: the interval excludes 0"


async def test_revenue_is_net_of_refunds_and_cancellations_and_follows_merges(
    api: ApiClient,
) -> None:
    await set_holdout_share(api, 0.0)
    await warn_everyone(api, ["buyer", "other", "twin"], MORNING)
    later = MORNING + timedelta(days=3)
    refund = OrderRefunded(
        order_id="o-kept",
        customer_id="buyer",
        refund_id="r-1",
        refunded_at=later + timedelta(days=1),
        amount=Money(amount=Decimal("15.00"), currency="USD"),
    )
    cancelled = OrderCancelled(
        order_id="o-gone", customer_id="other", cancelled_at=later + timedelta(hours=1)
    )
    merged = CustomerMerged(
        customer_id="buyer", merged_customer_id="twin", merged_at=later + timedelta(days=2)
    )
    await apply(
        api,
        [
            order("buyer", "o-kept", later, total="100.00"),
            order("other", "o-gone", later, total="70.00"),
            event(refund, refund.refunded_at),
            event(refund, refund.refunded_at),  # the same refund re-sent: counted once
            event(cancelled, cancelled.cancelled_at),
            order("twin", "o-twin", later, total="20.00"),
            event(merged, merged.merged_at),
        ],
        batch=1,
    )

    rule = await effects(api, **{"from": "2025-03-14", "to": "2025-03-14", "window_days": 10})

    treated = rule["treated"]
    # buyer (85.00 net, plus the twin's 20.00 now theirs) and other (cancelled: nothing).
    assert (treated["customers"], treated["repurchased"]) == (2, 1)
    assert treated["revenue"] == {"amount": "105.00", "currency": "USD"}
    assert rule["held_out"]["customers"] == 0
    assert rule["repurchase_uplift"] is None


async def test_a_delayed_rules_window_starts_when_its_message_was_due(api: ApiClient) -> None:
    rule = (await api.get(f"/v1/rules/{RULE}")).json()
    delayed = {**rule, "holdout_share": 0.0, "delay": "P10D"}
    assert (await api.put(f"/v1/rules/{RULE}", Scope.ADMIN, json=delayed)).status_code == 200
    await apply(
        api,
        [customer(c, MORNING - timedelta(days=60)) for c in ("early", "late")]
        + [churn_warning(c, MORNING, warning_id=f"w-{c}") for c in ("early", "late")],
    )
    while await deliver(api, MORNING + timedelta(days=10, minutes=1)):
        pass
    # Bought before the offer could have reached them, and after it was due.
    await apply(
        api,
        [
            order("early", "o-early", MORNING + timedelta(days=5)),
            order("late", "o-late", MORNING + timedelta(days=12)),
        ],
    )

    effect = await effects(api, **{"from": "2025-03-14", "to": "2025-03-14", "window_days": 5})

    assert (effect["treated"]["customers"], effect["treated"]["repurchased"]) == (2, 1)
    assert effect["treated"]["revenue"] == {"amount": "50.00", "currency": "USD"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window_days": 0}, "window_days"),
        ({"window_days": 366}, "window_days"),
        ({"from": "2025-03-02", "to": "2025-03-01"}, "from"),
        ({"from": "2020-01-01", "to": "2025-01-01"}, "from"),
        ({"rule_id": "Not A Slug"}, "rule_id"),
    ],
)
async def test_out_of_bounds_queries_are_problems_naming_the_field(
    api: ApiClient, params: dict[str, Any], field: str
) -> None:
    response = await api.get("/v1/analytics/effects", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"].split(".")[-1] for e in response.json()["errors"]}
