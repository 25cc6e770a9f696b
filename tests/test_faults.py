"""Faults injected mid-stream, then the input set compared with the effects (as Kafka tests
its own guarantees).

Sizing, measured on a 2-core machine: scoring-service alone consumes 50,000 orders in about
12 s and lifecycle-service about 400 a second, but notification-service decides only a few
orders a second while it is queueing welcome messages (about 600 orders in three minutes,
sharing the CPU with the others). So the SIGKILL test runs the 50,000-order stream through
the services that count orders (scoring for "counted exactly once", lifecycle for its stage
counters), and the "no second message" half runs a smaller stream through
notification-service with profile-service, where every customer has an email address and a
mobile number and is welcomed by email, SMS and webhook while the stream flows, and
notification-service is killed while it sends (after a known number of SMS reached the
gateway; what it asserts holds however far the sending had got).

The broker outage runs on a broker that keeps its log in a local S3 server (the embedded
broker's memory storage would lose every topic and committed offset in the restart, which a
real Kafka broker does not), so it shows what an operator would see: the broker stopped and
started again, and the services carry on by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from notification_servers import SmsGateway, WebhookReceiver, sms_gateway, webhook_receiver

from crm_contracts import Topic, dead_letter_topic
from crm_devstack.faults import (
    WELCOME_RULE,
    assert_no_second_message,
    count,
    create_mailable_customers,
    event_ids_on_topic,
    lifecycle_order_counts,
    order_counts,
    order_records,
    orders_for,
    outreach,
    publish,
    purchase_counts,
    query,
    read_topic,
    readiness,
    scored_order_counts,
    take_orders,
    unsent_outbox_rows,
    wait_for_count,
    wait_for_equal,
)
from crm_devstack.launcher import Stack, start_stack
from crm_devstack.progress import event_counts, wait_until
from crm_devstack.services import SERVICES
from crm_devstack.wiring import NO_SCHEDULED_JOBS
from notification_service.domain.signing import webhook_secret

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

STREAM_ORDERS = 50_000
STREAM_CUSTOMERS = 5_000
MAILED_CUSTOMERS = 30
# The SIGKILL test: the welcome rules (the shipped email and the SMS and webhook it adds), a
# provider answering each send after a moment, the kill after this many SMS reached it.
WELCOME_RULES = (WELCOME_RULE, "welcome-sms", "new-customer-task")
PROVIDER_DELAY_SECONDS = 0.2
KILL_AFTER_SMS = 5
PARALLEL_SENDS = 10
SMS_TOKEN = "fault-test-gateway-token"
WEBHOOK_SECRET = webhook_secret(b"fault-test-webhook-key-of-32-bytes!")
WAIT_SECONDS = 120.0
# After everything settled: how long nothing more may happen before "no double effect" holds.
SETTLE_SECONDS = 3.0
PURCHASES = "SELECT count(*) FROM purchases"
LIFECYCLE_ORDERS = "SELECT count(*) FROM lifecycle_orders"
# Longer than the producer's request timeout and the consumers' session timeout.
OUTAGE_SECONDS = 20.0
OUTAGE_STEPS = 5


@contextlib.contextmanager
def _stack(
    tmp_path: Path,
    names: tuple[str, ...],
    *,
    env: dict[str, str] | None = None,
    **options: Any,
) -> Iterator[Stack]:
    specs = [spec for spec in SERVICES if spec.name in names]
    with start_stack(
        data_dir=tmp_path,
        services=specs,
        free_ports=True,
        postgres=True,
        extra_env={**NO_SCHEDULED_JOBS, **(env or {})},
        **options,
    ) as stack:
        yield stack


def _processed(stack: Stack, service: str, topic: str) -> int:
    with httpx.Client(timeout=10, trust_env=False) as client:
        return event_counts(client, stack.urls[service]).processed_of(topic)


def _fit(stack: Stack) -> None:
    """Scores exist once models are fitted: fit now, so every customer is scored."""
    with httpx.Client(
        base_url=stack.urls["scoring-service"],
        headers={"X-API-Key": stack.api_key},
        timeout=120,
        trust_env=False,
    ) as scoring:
        fitted = scoring.post("/v1/models/fit", json={})
    assert fitted.status_code == 201, fitted.text


def _customers(count: int, prefix: str) -> list[str]:
    return [f"{prefix}-{number:05d}" for number in range(count)]


def test_sigkill_mid_stream_counts_every_order_exactly_once(tmp_path: Path) -> None:
    stack_names = ("scoring-service", "lifecycle-service")
    with _stack(tmp_path, stack_names) as stack:
        orders = orders_for(
            _customers(STREAM_CUSTOMERS, "kill"), STREAM_ORDERS, now=datetime.now(UTC)
        )
        started = time.monotonic()
        publish(stack, Topic.ORDERS, order_records(orders))

        # Killed while the stream is in flight: a batch stored but not yet committed to Kafka
        # (or half-applied) is what a SIGKILL leaves behind.
        wait_until(
            lambda: _processed(stack, "scoring-service", Topic.ORDERS) >= 10_000 or None,
            timeout=WAIT_SECONDS,
            what="scoring-service well into the stream",
        )
        for service in stack_names:
            assert stack.kill(service, signal.SIGKILL) == -signal.SIGKILL
        stored = {
            "scoring": count(stack, "scoring-service", PURCHASES),
            "lifecycle": count(stack, "lifecycle-service", LIFECYCLE_ORDERS),
        }
        assert 0 < stored["scoring"] < STREAM_ORDERS, f"not killed mid-stream: {stored}"
        for service in stack_names:
            stack.restart(service)

        wait_for_count(
            stack,
            "scoring-service",
            PURCHASES,
            STREAM_ORDERS,
            timeout=WAIT_SECONDS,
            what="scoring's purchase ledger",
        )
        wait_for_count(
            stack,
            "lifecycle-service",
            LIFECYCLE_ORDERS,
            STREAM_ORDERS,
            timeout=WAIT_SECONDS,
            what="lifecycle's orders",
        )
        expected = order_counts(orders)
        _fit(stack)
        wait_for_equal(
            lambda: scored_order_counts(stack),
            expected,
            timeout=WAIT_SECONDS,
            what="every customer's order_count in scoring-service's scores",
        )
        wait_for_equal(
            lambda: lifecycle_order_counts(stack),
            expected,
            timeout=WAIT_SECONDS,
            what="every customer's order_count in lifecycle-service",
        )
        print(
            f"\nkilled at {stored}; all {STREAM_ORDERS} counted once after "
            f"{time.monotonic() - started:.1f} s"
        )


@contextlib.contextmanager
def _providers() -> Iterator[tuple[SmsGateway, WebhookReceiver]]:
    """The SMS gateway and webhook receiver the services send to, each a real local server
    (notification_servers) on an event loop of its own in a thread; each answer takes a
    moment, so sends are in flight when the service is killed."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="providers", daemon=True)
    thread.start()
    servers = contextlib.AsyncExitStack()

    async def start() -> tuple[SmsGateway, WebhookReceiver]:
        gateway = await servers.enter_async_context(
            sms_gateway(api_token=SMS_TOKEN, delay_seconds=PROVIDER_DELAY_SECONDS)
        )
        receiver = await servers.enter_async_context(
            webhook_receiver(WEBHOOK_SECRET, delay_seconds=PROVIDER_DELAY_SECONDS)
        )
        return gateway, receiver

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    finally:
        asyncio.run_coroutine_threadsafe(servers.aclose(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _add_welcome_rules(stack: Stack) -> None:
    """A welcome SMS and an account-manager webhook beside the shipped welcome email, for
    every first order: each customer gets one message on each channel."""
    with httpx.Client(
        base_url=stack.urls["notification-service"],
        headers={"X-API-Key": stack.api_key},
        timeout=30,
        trust_env=False,
    ) as notification:
        texts = {
            ("welcome-sms", "sms"): {"text": "Welcome, {{ customer.first_name }}!"},
            ("new-customer-task", "webhook"): {
                "json_body": '{"task": "welcome_call", "customer_id": "{{ customer.id }}"}'
            },
        }
        for (template_id, channel), parts in texts.items():
            saved = notification.put(
                f"/v1/templates/{template_id}/{channel}",
                json={"parts": parts, "category": "service"},
            )
            assert saved.status_code in (200, 201), saved.text
            rule = {
                "rule_id": template_id,
                "name": template_id,
                "event_type": "order.placed",
                "conditions": {"first_order_only": True},
                "template_id": template_id,
                "channels": [channel],
                "category": "service",
            }
            created = notification.post("/v1/rules", json=rule)
            assert created.status_code == 201, created.text


def test_sigkill_of_notification_mid_stream_sends_no_second_message(tmp_path: Path) -> None:
    """notification-service is killed while welcomes go out by email, SMS and webhook, after a
    known number of SMS reached the gateway, and started again. Then, whatever had left
    before the kill: every SMS and webhook arrives (once per key, the receivers de-duplicate
    by it), no email arrives twice, and an email is lost or unknown only if it was handed to
    SMTP when the process died, at most one chunk (``parallel_sends``)."""
    with _providers() as (gateway, receiver):
        env = {
            "NOTIFICATION_SMS_GATEWAY_URL": gateway.url,
            "NOTIFICATION_SMS_GATEWAY_TOKEN": SMS_TOKEN,
            "NOTIFICATION_ACCOUNT_MANAGER_WEBHOOK_URL": receiver.url,
            "NOTIFICATION_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "NOTIFICATION_PARALLEL_SENDS": str(PARALLEL_SENDS),
        }
        with _stack(tmp_path, ("profile-service", "notification-service"), env=env) as stack:
            _add_welcome_rules(stack)
            now = datetime.now(UTC)
            with httpx.Client(
                base_url=stack.urls["profile-service"],
                headers={"X-API-Key": stack.api_key},
                timeout=30,
                trust_env=False,
            ) as profile:
                mailed = create_mailable_customers(
                    stack, profile, MAILED_CUSTOMERS, now=now, timeout=WAIT_SECONDS, with_phone=True
                )
            orders = orders_for(mailed, MAILED_CUSTOMERS * 4, now=now)
            publish(stack, Topic.ORDERS, order_records(orders))
            # Killed once a known number of SMS reached the gateway: sends are in flight.
            wait_until(
                lambda: len(gateway.requests) >= KILL_AFTER_SMS or None,
                timeout=WAIT_SECONDS,
                what=f"{KILL_AFTER_SMS} SMS at the gateway",
            )
            assert stack.kill("notification-service", signal.SIGKILL) == -signal.SIGKILL
            stack.restart("notification-service")

            welcomes = len(WELCOME_RULES) * MAILED_CUSTOMERS
            final = "status IN ('sent', 'failed', 'suppressed')"
            rules = ", ".join(f"'{rule}'" for rule in WELCOME_RULES)
            wait_for_count(
                stack,
                "notification-service",
                f"SELECT count(*) FROM notifications WHERE rule_id IN ({rules}) AND {final}",
                welcomes,
                timeout=WAIT_SECONDS,
                what="every welcome (email, SMS, webhook) in a final state",
            )
            time.sleep(SETTLE_SECONDS)
            found = outreach(stack)
            rows = query(
                stack,
                "notification-service",
                f"SELECT notification_id, rule_id, customer_id, status, channel, detail"
                f" FROM notifications WHERE rule_id IN ({rules})",
            )
        sms_keys = [request.headers.get("idempotency-key") for request in gateway.requests]
        webhook_ids = [delivery.message_id for delivery in receiver.deliveries]
        sms_by_key = gateway.unique_messages()
        webhooks_by_id = receiver.unique_deliveries()

    assert_no_second_message(found, mailed)
    by_rule: dict[str, list[Any]] = {rule: [] for rule in WELCOME_RULES}
    for row in rows:
        by_rule[row["rule_id"]].append(row)
    for rule, channel, received in (
        ("welcome-sms", "sms", set(sms_by_key)),
        ("new-customer-task", "webhook", set(webhooks_by_id)),
    ):
        # At least once, de-duplicated by key: each customer's one message arrived, none lost.
        assert {r["customer_id"] for r in by_rule[rule]} == set(mailed), rule
        assert all((r["status"], r["channel"]) == ("sent", channel) for r in by_rule[rule]), [
            (r["status"], r["detail"]) for r in by_rule[rule] if r["status"] != "sent"
        ]
        assert received == {r["notification_id"] for r in by_rule[rule]}, rule
    assert len(sms_by_key) == len(set(sms_keys)) == MAILED_CUSTOMERS
    assert len(webhooks_by_id) == len(set(webhook_ids)) == MAILED_CUSTOMERS
    # At most once by email: each welcome email sent once, or failed as interrupted (it was
    # handed to SMTP when the process died), and those are at most one chunk.
    emails = by_rule[WELCOME_RULE]
    unknown = [r for r in emails if r["status"] == "failed"]
    assert all("interrupted" in (r["detail"] or "") for r in unknown), unknown
    assert len(unknown) <= PARALLEL_SENDS, unknown
    assert all(r["status"] in ("sent", "failed") for r in emails), emails
    print(
        f"\nkilled after {KILL_AFTER_SMS}+ SMS; {len(sms_keys)} SMS requests for"
        f" {len(sms_by_key)} keys, {len(webhook_ids)} webhooks for {len(webhooks_by_id)} ids,"
        f" {len(unknown)} emails left unknown by the kill"
    )


def test_postgres_down_for_ten_seconds_under_load_skips_nothing(tmp_path: Path) -> None:
    names = ("scoring-service", "lifecycle-service")
    with _stack(tmp_path, names) as stack:
        orders = orders_for(_customers(2_000, "pg"), 20_000, now=datetime.now(UTC))
        records = order_records(orders)
        publish(stack, Topic.ORDERS, records[:5_000])
        wait_until(
            lambda: _processed(stack, "scoring-service", Topic.ORDERS) >= 1_000 or None,
            timeout=WAIT_SECONDS,
            what="scoring-service consuming",
        )
        stack.stop_postgres()
        # The rest of the stream arrives while the database is down.
        publish(stack, Topic.ORDERS, records[5_000:])
        time.sleep(10)
        stack.start_postgres()
        wait_for_count(
            stack,
            "scoring-service",
            PURCHASES,
            len(orders),
            timeout=WAIT_SECONDS,
            what="scoring's purchase ledger after the outage",
        )
        wait_for_count(
            stack,
            "lifecycle-service",
            LIFECYCLE_ORDERS,
            len(orders),
            timeout=WAIT_SECONDS,
            what="lifecycle's orders after the outage",
        )
        expected = order_counts(orders)
        _fit(stack)
        wait_for_equal(
            lambda: lifecycle_order_counts(stack),
            expected,
            timeout=WAIT_SECONDS,
            what="lifecycle order counts",
        )
        wait_for_equal(
            lambda: scored_order_counts(stack),
            expected,
            timeout=WAIT_SECONDS,
            what="scoring order counts",
        )
        assert not stack.exited_services(), "a service died of the outage"


MALFORMED: list[tuple[bytes, bytes]] = [
    (b"bad-1", b"{not json"),
    (b"bad-2", json.dumps({"specversion": "1.0", "type": "order.placed"}).encode()),
    (b"bad-3", b""),
]


def test_duplicate_reordered_and_malformed_events_take_effect_once(tmp_path: Path) -> None:
    with _stack(tmp_path, ("profile-service", "scoring-service", "notification-service")) as stack:
        now = datetime.now(UTC)
        with httpx.Client(
            base_url=stack.urls["profile-service"],
            headers={"X-API-Key": stack.api_key},
            timeout=30,
            trust_env=False,
        ) as profile:
            mailed = create_mailable_customers(stack, profile, 10, now=now, timeout=WAIT_SECONDS)
        orders = orders_for(mailed, 40, now=now)
        records = order_records(orders)
        # Every event twice, each customer's orders newest first, malformed ones in between,
        # and more valid orders behind the malformed ones.
        reordered = list(reversed(records[:20]))
        stream = [*reordered, *MALFORMED, *reordered, *records[20:], *records[20:]]
        publish(stack, Topic.ORDERS, stream)

        wait_for_count(
            stack,
            "scoring-service",
            PURCHASES,
            len(orders),
            timeout=WAIT_SECONDS,
            what="scoring's purchases",
        )
        wait_until(
            lambda: _processed(stack, "scoring-service", Topic.ORDERS) >= len(stream) or None,
            timeout=WAIT_SECONDS,
            what="scoring consuming the whole stream",
        )
        _fit(stack)
        wait_for_equal(
            lambda: scored_order_counts(stack),
            order_counts(orders),
            timeout=WAIT_SECONDS,
            what="order counts in scoring",
        )
        for consumer in ("scoring-service", "notification-service"):
            dead = read_topic(stack, dead_letter_topic(Topic.ORDERS, consumer), len(MALFORMED))
            assert sorted(r.key for r in dead) == sorted(k for k, _ in MALFORMED), consumer
            assert all(dict(r.headers).get("error") for r in dead), [r.headers for r in dead]
        wait_until(
            lambda: _processed(stack, "notification-service", Topic.ORDERS) >= len(stream) or None,
            timeout=WAIT_SECONDS,
            what="notification consuming the whole stream",
        )
        wait_until(
            lambda: len(outreach(stack).mail) >= len(mailed) or None,
            timeout=WAIT_SECONDS,
            what="a welcome mail for every customer",
        )
        time.sleep(SETTLE_SECONDS)
        assert_no_second_message(outreach(stack), mailed)


def test_two_replicas_share_partitions_and_match_the_single_run(tmp_path: Path) -> None:
    names = ("scoring-service", "lifecycle-service")
    with _stack(tmp_path, names, replicas=2) as stack:
        orders = orders_for(_customers(1_000, "rep"), 10_000, now=datetime.now(UTC))
        publish(stack, Topic.ORDERS, order_records(orders))
        wait_for_count(
            stack,
            "scoring-service",
            PURCHASES,
            len(orders),
            timeout=WAIT_SECONDS,
            what="scoring's purchases",
        )
        wait_for_count(
            stack,
            "lifecycle-service",
            LIFECYCLE_ORDERS,
            len(orders),
            timeout=WAIT_SECONDS,
            what="lifecycle's orders",
        )
        expected = order_counts(orders)
        _fit(stack)
        wait_for_equal(
            lambda: scored_order_counts(stack),
            expected,
            timeout=WAIT_SECONDS,
            what="scoring order counts",
        )
        wait_for_equal(
            lambda: lifecycle_order_counts(stack),
            expected,
            timeout=WAIT_SECONDS,
            what="lifecycle order counts",
        )
        for name in names:
            with httpx.Client(timeout=10, trust_env=False) as client:
                shares = [
                    event_counts(client, replica.base_url).processed_of(Topic.ORDERS)
                    for replica in stack.replicas_of(name)
                ]
            assert len(shares) == 2, shares
            assert all(shares), f"{name}: partitions not shared: {shares}"
            assert sum(shares) >= len(orders), shares


def test_broker_restart_while_profile_takes_orders_loses_none(tmp_path: Path) -> None:
    """The broker stops while shops keep posting orders to profile-service, then starts
    again: every order accepted (before, during and after the outage) is counted exactly
    once by scoring-service and lifecycle-service, with no service restarted by hand.

    The broker keeps its log in a local S3 server, which stays up while the broker process
    is stopped and started, so topics, records and the consumer groups' committed offsets
    survive the restart as they do on a Kafka broker's disk.
    """
    names = ("profile-service", "scoring-service", "lifecycle-service")
    with _stack(tmp_path, names, broker_storage="s3") as stack:
        now = datetime.now(UTC)
        regulars = _customers(10, "outage")
        before = orders_for(regulars, 20, now=now)
        # During the outage the regulars order again and new customers place their first.
        during = [
            *orders_for(regulars, 20, now=now),
            *orders_for(_customers(10, "outage-new"), 20, now=now),
        ]
        after = orders_for(regulars, 10, now=now)
        # Distinct order ids per phase: the intake treats a repeated order id as the same order.
        during = [o.model_copy(update={"order_id": f"{o.order_id}-down"}) for o in during]
        after = [o.model_copy(update={"order_id": f"{o.order_id}-up"}) for o in after]
        with httpx.Client(
            base_url=stack.urls["profile-service"],
            headers={"X-API-Key": stack.api_key},
            timeout=30,
            trust_env=False,
        ) as profile:
            accepted = take_orders(profile, before)
            wait_for_count(
                stack,
                "scoring-service",
                PURCHASES,
                len(accepted),
                timeout=WAIT_SECONDS,
                what="scoring's purchases before the outage",
            )

            stack.stop_broker()
            wait_until(
                lambda: readiness(stack, "profile-service")[0] == 503 or None,
                timeout=WAIT_SECONDS,
                what="profile-service reporting the broker down on /readyz",
            )
            status, body = readiness(stack, "profile-service")
            checks = body["checks"]
            assert (checks["database"], checks["broker"]) == (True, False), (status, body)
            # Orders keep coming for the whole outage, which outlasts the producer's request
            # timeout (15 s: the relay's sends fail and it backs off) and the consumers'
            # session timeout (10 s: the broker forgets the groups' members).
            accepted_during: list[dict[str, Any]] = []
            step = -(-len(during) // OUTAGE_STEPS)
            for start in range(0, len(during), step):
                accepted_during += take_orders(profile, during[start : start + step])
                time.sleep(OUTAGE_SECONDS / OUTAGE_STEPS)
            # Nothing can leave while the broker is down: every one waits in the outbox.
            assert unsent_outbox_rows(stack, "profile-service", Topic.ORDERS) == len(during)
            stack.start_broker()

            wait_until(
                lambda: readiness(stack, "profile-service")[0] == 200 or None,
                timeout=WAIT_SECONDS,
                what="profile-service ready again",
            )
            accepted += accepted_during + take_orders(profile, after)

        wait_until(
            lambda: unsent_outbox_rows(stack, "profile-service") == 0 or None,
            timeout=WAIT_SECONDS,
            what="profile-service's outbox drained",
        )
        for service, sql in (
            ("scoring-service", PURCHASES),
            ("lifecycle-service", LIFECYCLE_ORDERS),
        ):
            wait_for_count(
                stack,
                service,
                sql,
                len(accepted),
                timeout=WAIT_SECONDS,
                what=f"{service}'s orders after the outage",
            )
        expected = dict(Counter(order["customer_id"] for order in accepted))
        wait_for_equal(
            lambda: purchase_counts(stack),
            expected,
            timeout=WAIT_SECONDS,
            what="every customer's purchases in scoring-service",
        )
        wait_for_equal(
            lambda: lifecycle_order_counts(stack),
            expected,
            timeout=WAIT_SECONDS,
            what="every customer's order_count in lifecycle-service",
        )
        # The orders published before the outage are still on the topic: the broker's log
        # survived its restart (on memory storage they would be gone).
        accepted_ids = {order["event_id"] for order in accepted}
        on_topic = event_ids_on_topic(stack, Topic.ORDERS, accepted_ids)
        assert accepted_ids <= on_topic, f"{len(accepted_ids - on_topic)} orders not on the topic"
        assert not stack.exited_services(), "a service died of the outage"
        for service in names:
            assert readiness(stack, service)[0] == 200, service
