"""Customer 360 reads per second and latency: ``GET /v1/customers/{id}/360`` next to a bare app.

Goal (the issue "The whole chain under load and faults"): at least half the throughput of a
bare FastAPI endpoint measured in the same run. profile-service runs as a uvicorn process on
the embedded PostgreSQL with Kafka on (the embedded broker), so its 360 read model is filled
the way production fills it: customers are seeded through the import endpoint, then for every
customer a `score.updated`, a `lifecycle.stage_changed`, for `--warning-share` (0.3) of them a
`churn.warning`, and `--notifications` (5) `notification.sent` / `notification.suppressed`
events are published to `crm.scores`, `crm.lifecycle` and `crm.notifications`; the benchmark
waits until the service's consumer has processed them all (its ``events_processed_total``).

The baseline is a FastAPI app with one route of the same path (``create_bare_app`` below) that
returns, as a plain dict, the body profile-service answered for one of these customers: same
client, same paths, same concurrency, same response size, no middleware, auth or database.
Load, timing, table and ratios are profile_http.py's (``measure``, ``summary``).

    python bench/customer_360.py [--customers 1000] [--requests 20000] [--concurrency 32]
        [--notifications 5] [--warning-share 0.3] [--rounds 1] [--clients 1] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from _support import (
    BENCH_DIR,
    PROFILE_APP,
    ServerProcess,
    cache_missing_sniffio,
    format_table,
    install_termination_handlers,
    make_api_key,
    percentile,
    print_header,
    run_async,
    run_main,
    run_migrations,
    start_profile_backends,
    tail,
)
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from profile_http import HEADERS, Measurement, Target, measure, seed, summary

from crm_devstack.progress import event_counts
from crm_shared import ensure_topics
from crm_shared.contracts import (
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

BARE_APP = "customer_360:create_bare_app"
BARE_BODY_ENV = "BENCH_BARE_360_BODY"  # a JSON file: the body the bare route returns
SEED_TIMEOUT = 600.0
FILL_TIMEOUT = 600.0
PARTITIONS = 6
SOURCE = "/bench/customer-360"
VIEW_TOPICS = (Topic.SCORES, Topic.LIFECYCLE, Topic.NOTIFICATIONS)


def create_bare_app() -> FastAPI:
    """The baseline: one route, the 360 path, a fixed body of the real view's size."""
    body: dict[str, Any] = json.loads(Path(os.environ[BARE_BODY_ENV]).read_text())
    app = FastAPI(title="bare-360", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/v1/customers/{customer_id}/360")
    async def read(customer_id: str) -> dict[str, Any]:
        return body

    return app


# --------------------------------------------------------------------------------------------
# Filling the read model


def view_events(
    customer_ids: list[str], notifications: int, warning_share: float, seed: int
) -> list[EventPayload]:
    """What scoring-, lifecycle- and notification-service would have said about each customer."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    tiers, grades = list(ValueTier), list(Grade)
    payloads: list[EventPayload] = []
    for cid in customer_ids:
        spend = Money(amount=Decimal(f"{rng.uniform(20, 2_000):.2f}"), currency="USD")
        orders = rng.randint(1, 12)
        first = now - timedelta(days=rng.uniform(30, 700))
        last = now - timedelta(days=rng.uniform(0, 30))
        payloads.append(
            ScoreUpdated(
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
                predicted_clv_12m=Money(
                    amount=Decimal(f"{rng.uniform(0, 900):.2f}"), currency="USD"
                ),
                historic_clv=spend,
                health_index=round(rng.uniform(0, 100), 1),
                value_tier=rng.choice(tiers),
                grade=rng.choice(grades),
                cluster=rng.choice(("bargain_hunters", "loyalists", "newcomers")),
            )
        )
        payloads.append(
            StageChanged(
                customer_id=cid,
                previous_stage=Stage.NEW,
                stage=Stage.ACTIVE,
                changed_at=last,
                cause=f"evt-{cid}",
                reason="2nd order",
            )
        )
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


# --------------------------------------------------------------------------------------------
# Main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000, help="customers to seed")
    parser.add_argument("--notifications", type=int, default=5, help="messages per customer")
    parser.add_argument("--warning-share", type=float, default=0.3)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per target")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured requests first")
    parser.add_argument("--rounds", type=int, default=1, help="alternate targets this often")
    parser.add_argument("--phase-timeout", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--clients", type=int, default=1, help="AsyncClients (see profile_http)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    install_termination_handlers()
    sniffio_missing = cache_missing_sniffio()
    print_header("profile-service HTTP reads: GET /v1/customers/{id}/360 on PostgreSQL")
    print(
        f"customers={args.customers} notifications/customer={args.notifications} "
        f"warning_share={args.warning_share} requests={args.requests} "
        f"concurrency={args.concurrency} warmup={args.warmup} rounds={args.rounds} "
        f"client=httpx {httpx.__version__} AsyncClient x{args.clients}, in this process",
        flush=True,
    )
    if sniffio_missing:
        print("sniffio is not installed: its failed import is cached in the client")
    rng = random.Random(args.seed)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-360-")))
        key, records = make_api_key()
        backends = start_profile_backends(stack, work, records)
        env, bootstrap, postgres = backends.env, backends.bootstrap, backends.postgres
        log = work / "profile.log"
        started = time.perf_counter()
        run_migrations(env, log)
        profile = stack.enter_context(ServerProcess("profile-postgres", PROFILE_APP, env, log))
        ids = seed(profile.base_url, key, args.customers, args.seed, SEED_TIMEOUT)
        seeded = time.perf_counter() - started
        payloads = view_events(ids, args.notifications, args.warning_share, args.seed)
        asyncio.run(publish_view_events(bootstrap, payloads))
        filled = wait_until_consumed(profile, len(payloads), FILL_TIMEOUT)
        print(
            f"profile-postgres: seeded {len(ids)} customers in {seeded:.1f} s; "
            f"{len(payloads):,} view events consumed {filled:.1f} s after publishing",
            flush=True,
        )
        with httpx.Client(base_url=profile.base_url, headers={"X-API-Key": key}) as client:
            sample = client.get(f"/v1/customers/{ids[0]}/360")
            sample.raise_for_status()
            metrics = client.get("/metrics").text
        view = sample.json()
        outcomes = [
            line for line in metrics.splitlines() if line.startswith("events_processed_total")
        ]
        print("profile-service consumed: " + "; ".join(outcomes), flush=True)
        if any('outcome="dead_lettered"' in line for line in outcomes):
            print("warning: some view events were dead-lettered; the read model is incomplete")
        body_path = work / "bare-360.json"
        body_path.write_bytes(sample.content)
        print(
            f"a 360 body: {len(sample.content):,} bytes; scores={view['scores'] is not None} "
            f"lifecycle={view['lifecycle'] is not None} "
            f"notifications={len(view['recent_notifications'])}",
            flush=True,
        )
        bare = stack.enter_context(
            ServerProcess(
                "bare",
                BARE_APP,
                {**os.environ, BARE_BODY_ENV: str(body_path)},
                work / "bare.log",
                ready_path="/v1/customers/ready/360",
                app_dir=BENCH_DIR,
            )
        )
        paths = [f"/v1/customers/{rng.choice(ids)}/360" for _ in range(args.requests)]
        targets = [
            Target("bare", bare, paths),
            Target("profile-postgres", profile, paths, postgres.pid()),
        ]
        measurements: list[Measurement] = []
        for round_number in range(1, args.rounds + 1):
            for target in targets:
                measurement: Measurement = run_async(
                    partial(measure, target, key, args, round_number)
                )
                measurements.append(measurement)
                if measurement.errors:
                    print(f"  {target.name} log (last lines):\n{tail(target.server.log_path)}")
                print(
                    f"  {target.name} round {round_number}: {measurement.rate:,.0f} req/s, "
                    f"p99 {percentile(measurement.latencies, 0.99) * 1000:.1f} ms",
                    flush=True,
                )

    print()
    print(format_table(HEADERS, [m.row(args.rounds) for m in measurements]))
    print()
    print(summary(measurements))
    print("goal: profile / bare throughput of at least x0.50")
    failed = [m for m in measurements if m.errors]
    for m in failed:
        kinds = ", ".join(f"{kind} x{count}" for kind, count in m.errors.most_common())
        print(f"{m.target} round {m.round}: failed requests: {kinds}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
