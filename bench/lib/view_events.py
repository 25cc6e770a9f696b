"""customer_360.py's events: score, lifecycle and notification events for the 360 read model,
their publishing, and the bare app serving a 360 body of the same size.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from crm_contracts import (
    ChurnWarning,
    EventPayload,
    Grade,
    Money,
    NotificationSent,
    NotificationSuppressed,
    ScoreUpdated,
    Stage,
    StageChanged,
    Topic,
    ValueTier,
    build_event,
    encode_event,
)
from crm_devstack.progress import event_counts
from crm_shared import ensure_topics
from lib.processes import (
    ServerProcess,
)

BARE_BODY_ENV = "BENCH_BARE_360_BODY"  # a JSON file: the body the bare route returns


SEED_TIMEOUT = 600.0


FILL_TIMEOUT = 600.0


SOURCE = "/bench/customer-360"


VIEW_TOPICS = (Topic.SCORES, Topic.LIFECYCLE, Topic.NOTIFICATIONS)


BARE_APP = "lib.view_events:create_bare_app"


def create_bare_app() -> FastAPI:
    """The baseline: one route, the 360 path, a fixed body of the real view's size."""
    body: dict[str, Any] = json.loads(Path(os.environ[BARE_BODY_ENV]).read_text())
    app = FastAPI(title="bare-360", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/v1/customers/{customer_id}/360")
    async def read(customer_id: str) -> dict[str, Any]:
        return body

    return app


def view_events(
    customer_ids: list[str], notifications: int, warning_share: float, seed: int
) -> list[EventPayload]:
    """What scoring-, lifecycle- and notification-service would have said about each customer."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    tiers, grades = list(ValueTier), list(Grade)
    payloads: list[EventPayload] = []
    for cid in customer_ids:
        payloads += order_effects(cid, rng, now)
        if rng.random() < warning_share:
            payloads.append(
                ChurnWarning(
                    warning_id=_uuid(rng),
                    customer_id=cid,
                    raised_at=now,
                    status="open",
                    reasons=["churn_risk_above_threshold", "spend_dropped"],
                    churn_risk=0.8,
                    value_tier=rng.choice(tiers),
                    grade=rng.choice(grades),
                    recommended_action="retention_offer",
                )
            )
        for n in range(notifications):
            at = now - timedelta(hours=n)
            if rng.random() < 0.6:
                payloads.append(
                    NotificationSent(
                        notification_id=_uuid(rng),
                        customer_id=cid,
                        rule_id="welcome-first-order",
                        template_id="welcome-first-order",
                        channel="email",
                        category="service",
                        sent_at=at,
                    )
                )
            else:
                payloads.append(
                    NotificationSuppressed(
                        notification_id=_uuid(rng),
                        customer_id=cid,
                        rule_id="winback-vip",
                        channel="email",
                        category="marketing",
                        suppressed_at=at,
                        reason="no_consent",
                    )
                )
    return payloads


def order_effects(cid: str, rng: random.Random, now: datetime) -> list[EventPayload]:
    """What an order of `cid` makes scoring- and lifecycle-service publish for the 360: new
    scores and a stage change (random values, drawn from `rng`)."""
    tiers, grades = list(ValueTier), list(Grade)
    spend = Money(amount=Decimal(f"{rng.uniform(20, 2_000):.2f}"), currency="USD")
    orders = rng.randint(1, 12)
    first = now - timedelta(days=rng.uniform(30, 700))
    last = now - timedelta(days=rng.uniform(0, 30))
    score = ScoreUpdated(
        customer_id=cid,
        as_of=now,
        model_version="clv-bench",
        recency_score=rng.randint(1, 5),
        frequency_score=rng.randint(1, 5),
        monetary_score=rng.randint(1, 5),
        rfm_segment=rng.choice(("champions", "loyal", "at_risk", "hibernating")),
        order_count=orders,
        first_purchase_at=first,
        last_purchase_at=last,
        total_spend=spend,
        spend_12m=spend,
        average_order_value=Money(
            amount=(spend.amount / orders).quantize(Decimal("0.01")), currency="USD"
        ),
        p_alive=round(rng.random(), 3),
        expected_purchases_30d=round(rng.uniform(0, 1), 3),
        expected_purchases_90d=round(rng.uniform(0, 3), 3),
        expected_purchases_365d=round(rng.uniform(0, 10), 3),
        churn_risk=round(rng.random(), 3),
        expected_interpurchase_days=round(rng.uniform(10, 120), 1),
        predicted_clv_12m=Money(amount=Decimal(f"{rng.uniform(0, 900):.2f}"), currency="USD"),
        historic_clv=spend,
        health_index=round(rng.uniform(0, 100), 1),
        value_tier=rng.choice(tiers),
        grade=rng.choice(grades),
        cluster=rng.choice(("bargain_hunters", "loyalists", "newcomers")),
    )
    stage = StageChanged(
        customer_id=cid,
        previous_stage=Stage.NEW,
        stage=Stage.ACTIVE,
        changed_at=last,
        cause=f"evt-{cid}",
        reason="2nd order",
    )
    return [score, stage]


def _uuid(rng: random.Random) -> str:
    # Ids as the services make them: profile-service keeps notification ids in 36 characters.
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


async def publish_view_events(bootstrap: str, payloads: list[EventPayload]) -> None:
    await ensure_topics(bootstrap, VIEW_TOPICS, partitions=PARTITIONS)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    await producer.start()
    try:
        sent = []
        for payload in payloads:
            event = build_event(payload, source=SOURCE, time=datetime.now(UTC))
            sent.append(
                await producer.send(payload.topic, encode_event(event), key=event.subject.encode())
            )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def wait_until_consumed(server: ServerProcess, expected: int, timeout: float) -> float:
    """Poll profile-service's /metrics until it processed `expected` view events; seconds."""
    started = time.perf_counter()
    with httpx.Client(timeout=10, trust_env=False) as client:
        while True:
            counts = event_counts(client, server.base_url)
            done = sum(counts.processed_of(topic) for topic in VIEW_TOPICS)
            if done >= expected:
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"profile-service consumed {done} of {expected} view events")
            time.sleep(0.25)


PARTITIONS = 6
