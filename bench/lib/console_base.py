"""The console benchmark's base: 100,000 customers COPYed into three services' databases, and
the plans of the queries behind the console's slowest calls.

Customers come from `sweep_base`'s generator (stages, scores, open warnings as lifecycle-service
would have stored them); their scores go into scoring-service's ``scores`` and one decided
message each into notification-service's ``notifications``. Columns a given source tree's
schema does not have are left out, so a baseline tree is loaded with the same data.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from crm_contracts import Money, ScoreUpdated
from lib import sweep_base as base

SEGMENTS = ("Champions", "Loyal", "Potential Loyalist", "Need Attention", "About to Sleep", "Lost")
REASONS = ("no_consent", "capped", "quiet_hours", "no_contact")
RULES = ("warning-retention-offer", "welcome-first-order", "dormant-wake-up")

# The statements behind the calls the builder of the console found slowest, as the services
# issue them (same shape, statuses as literals): their plans are printed with --explain.
EXPLAINED = {
    "lifecycle": (
        "GET /v1/warnings/at-risk?limit=50",
        "SELECT w.*, l.stage FROM churn_warnings w LEFT OUTER JOIN customer_lifecycles l"
        " ON l.customer_id = w.customer_id WHERE w.status IN ('open', 'updated')"
        " ORDER BY (w.predicted_clv_12m * w.churn_risk) IS NULL,"
        " w.predicted_clv_12m * w.churn_risk DESC, w.raised_at DESC, w.warning_id LIMIT 50",
    ),
    "scoring": (
        "GET /v1/segments (every segment size, revenue per RFM segment)",
        "SELECT rfm_segment, total_spend_currency, value_tier, grade, cluster, count(*),"
        " sum(total_spend) FROM scores"
        " GROUP BY rfm_segment, total_spend_currency, value_tier, grade, cluster",
    ),
    "notification": (
        "GET /v1/notifications/outcomes",
        "SELECT rule_id, status, reason, count(*) FROM notifications"
        " GROUP BY rule_id, status, reason",
    ),
}
# The same revenue per segment read out of each payload's JSON (no spend columns yet).
REVENUE_FROM_PAYLOAD = (
    "SELECT rfm_segment, payload->'total_spend'->>'currency', count(*),"
    " sum(CAST(payload->'total_spend'->>'amount' AS NUMERIC)) FROM scores"
    " GROUP BY rfm_segment, payload->'total_spend'->>'currency'"
)


def score_row(customer: base.GeneratedCustomer, rng: random.Random) -> dict[str, Any]:
    """scoring-service's ``scores`` row for a generated customer, by column."""
    state = customer.state
    zero = Money(amount=Decimal("0"), currency="USD")
    spend = Decimal(f"{state.order_count * (state.average_order_value or 0):.2f}")
    clv = state.predicted_clv_12m
    segment = rng.choice(SEGMENTS)
    payload = ScoreUpdated(
        customer_id=state.customer_id,
        as_of=base.STATE_DATE,
        recency_score=rng.randint(1, 5),
        frequency_score=rng.randint(1, 5),
        monetary_score=rng.randint(1, 5),
        rfm_segment=segment,
        order_count=state.order_count,
        total_spend=Money(amount=spend, currency="USD"),
        spend_12m=zero,
        churn_risk=state.churn_risk,
        predicted_clv_12m=(
            Money(amount=Decimal(f"{clv:.2f}"), currency="USD") if clv is not None else None
        ),
        historic_clv=zero,
        value_tier=state.value_tier,
        grade=state.grade,
    ).model_dump(mode="json")
    return {
        "customer_id": state.customer_id,
        "as_of": base.STATE_DATE,
        "model_version": None,
        "rfm_segment": segment,
        "value_tier": payload["value_tier"],
        "grade": payload["grade"],
        "cluster": None,
        "churn_risk": state.churn_risk,
        "total_spend": spend,
        "total_spend_currency": "USD",
        "payload": json.dumps(payload),
        "explanation": json.dumps({"health": []}),
    }


NOTIFICATION_COLUMNS = [
    "notification_id",
    "dedup_key",
    "customer_id",
    "rule_id",
    "template_id",
    "channels",
    "channel",
    "category",
    "priority",
    "trigger_facts",
    "status",
    "intended_at",
    "due_at",
    "attempts",
    "created_at",
    "reason",
]


def notification_record(n: int, customer_id: str, rng: random.Random) -> tuple[Any, ...]:
    """One decided message: sent by email, or suppressed with a reason."""
    at = base.STATE_DATE - timedelta(minutes=n)
    suppressed = rng.random() < 0.4
    return (
        f"n{n:08d}",
        f"warning-retention-offer:{customer_id}:{n}",
        customer_id,
        rng.choice(RULES),
        "retention-offer",
        json.dumps(["email"]),
        None if suppressed else "email",
        "marketing",
        0,
        json.dumps({}),
        "suppressed" if suppressed else "sent",
        at,
        at,
        0 if suppressed else 1,
        at,
        rng.choice(REASONS) if suppressed else None,
    )


async def _columns(connection: asyncpg.Connection, table: str) -> set[str]:
    rows = await connection.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
    )
    return {row["column_name"] for row in rows}


async def load(dsn: dict[str, str], customers: int, seed: int) -> tuple[int, int, str]:
    """COPY the generated base into the three services' databases (asyncpg DSNs by service);
    (customers, open warnings, a customer with an open warning)."""
    lifecycle = await asyncpg.connect(dsn["lifecycle"])
    scoring = await asyncpg.connect(dsn["scoring"])
    notification = await asyncpg.connect(dsn["notification"])
    rng = random.Random(seed)
    warning_columns = [c.name for c in base.ChurnWarningRow.__table__.columns]
    score_columns = await _columns(scoring, "scores")
    loaded = warned = 0
    example = ""
    try:
        for chunk in base.generate_chunks(customers, seed, base.STATE_DATE):
            await lifecycle.copy_records_to_table(
                "customer_lifecycles",
                records=[base._customer_record(c) for c in chunk],
                columns=[column.name for column in base.CUSTOMERS.columns],
            )
            warnings = [
                base._warning_record(c.warning, warning_columns) for c in chunk if c.warning
            ]
            if warnings:
                await lifecycle.copy_records_to_table(
                    "churn_warnings", records=warnings, columns=warning_columns
                )
                example = example or next(c.state.customer_id for c in chunk if c.warning)
            rows = [score_row(c, rng) for c in chunk if c.state.order_count > 0]
            columns = [column for column in rows[0] if column in score_columns] if rows else []
            await scoring.copy_records_to_table(
                "scores", records=[tuple(r[c] for c in columns) for r in rows], columns=columns
            )
            await notification.copy_records_to_table(
                "notifications",
                records=[
                    notification_record(loaded + i, c.state.customer_id, rng)
                    for i, c in enumerate(chunk)
                ],
                columns=NOTIFICATION_COLUMNS,
            )
            loaded += len(chunk)
            warned += len(warnings)
        for connection, tables in (
            (lifecycle, ("customer_lifecycles", "churn_warnings")),
            (scoring, ("scores",)),
            (notification, ("notifications",)),
        ):
            for table in tables:
                await connection.execute(f"VACUUM ANALYZE {table}")
    finally:
        for connection in (lifecycle, scoring, notification):
            await connection.close()
    return loaded, warned, example


async def explain(dsn: dict[str, str]) -> list[str]:
    """EXPLAIN ANALYZE of the statements behind the slowest calls (second run: warm cache)."""
    lines = []
    for service, (call, statement) in EXPLAINED.items():
        connection = await asyncpg.connect(dsn[service])
        try:
            if service == "scoring" and "total_spend" not in await _columns(connection, "scores"):
                statement = REVENUE_FROM_PAYLOAD
            for _ in range(2):
                plan = await connection.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + statement)
        finally:
            await connection.close()
        lines += [f"-- {service} {call}", *(row[0] for row in plan), ""]
    return lines
