"""Feedback through the whole chain under real processes: broker, PostgreSQL, four services.

A customer of two orders (active: the first four months ago) complains twice through
profile-service's HTTP intake (the second complaint posted twice). Lifecycle must raise one
churn warning naming the complaint surge; notification must decide an apology per complaint
(not per post) and the warning's retention offer (sent, or suppressed for want of marketing
consent: a decision either way), each recorded in its delivery log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest

from crm_contracts import Money, OrderPlaced, Topic
from crm_devstack.launcher import Stack, start_stack
from crm_devstack.progress import wait_for_processed, wait_until
from crm_devstack.shop import publish_orders_now
from crm_devstack.wiring import NO_SCHEDULED_JOBS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

WAIT_SECONDS = 180.0  # a bound on waiting for a state, generous for a loaded machine
_T = TypeVar("_T")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(
        data_dir=tmp_path_factory.mktemp("feedback-stack"),
        free_ports=True,
        postgres=True,
        extra_env=NO_SCHEDULED_JOBS,
    ) as running:
        yield running


def test_complaints_posted_to_profile_raise_a_warning_and_notification_decisions(
    stack: Stack,
) -> None:
    now = datetime.now(UTC)
    key = {"X-API-Key": stack.api_key}
    clients = {
        name: httpx.Client(base_url=url, headers=key, timeout=30, trust_env=False)
        for name, url in stack.urls.items()
    }
    profile, lifecycle = clients["profile-service"], clients["lifecycle-service"]
    notification = clients["notification-service"]
    metrics = httpx.Client(timeout=10, trust_env=False)
    try:
        # At midday in the customer's zone, so quiet hours hold nothing back.
        offset = max(-12, min(14, 12 - now.hour))
        zone = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"
        created = profile.post("/v1/customers", json={"email": "fb@example.com", "time_zone": zone})
        assert created.status_code == 201, created.text
        customer_id: str = created.json()["id"]
        orders = [
            OrderPlaced(
                order_id=f"{customer_id}-{days}",
                customer_id=customer_id,
                placed_at=now - timedelta(days=days),
                total=Money(amount=Decimal("80.00"), currency="USD"),
            )
            for days in (130, 20)
        ]
        published = publish_orders_now(stack.bootstrap_servers, orders, source="/tests/shop")
        wait_for_processed(
            metrics,
            stack.urls["lifecycle-service"],
            Topic.ORDERS,
            published,
            timeout=WAIT_SECONDS,
            who="lifecycle-service",
        )
        started = time.monotonic()

        url = f"/v1/customers/{customer_id}/feedback"
        first = _complaint("fb-e2e-1", now - timedelta(hours=2))
        second = _complaint("fb-e2e-2", now - timedelta(hours=1))
        assert profile.post(url, json=first).status_code == 202
        accepted = profile.post(url, json=second)
        assert accepted.status_code == 202, accepted.text
        repeated = profile.post(url, json=second)
        assert repeated.status_code == 200
        assert repeated.json()["event_id"] == accepted.json()["event_id"]

        stage = _poll(
            lambda: _warned_once(lifecycle, customer_id),
            "the complaint surge's churn warning in lifecycle-service",
        )
        assert stage["stage"] == "active", stage["history"]
        assert stage["open_warning"]["reasons"] == ["complaint_surge"]

        decided = _poll(
            lambda: _decisions_once(notification, customer_id),
            "the apologies and the warning's offer in notification-service's log",
        )
        apologies = [n for n in decided if n["rule_id"] == "complaint-follow-up"]
        assert len(apologies) == 2, decided
        assert all(n["category"] == "service" for n in apologies)
        offers = [n for n in decided if n["rule_id"] == "warning-retention-offer"]
        assert len(offers) == 1, decided
        print(f"\nfeedback chain: warning and decisions {time.monotonic() - started:.1f} s")
    finally:
        metrics.close()
        for client in clients.values():
            client.close()


def _complaint(feedback_id: str, at: datetime) -> dict[str, Any]:
    return {
        "feedback_id": feedback_id,
        "kind": "complaint",
        "occurred_at": at.isoformat(),
        "about": "late_delivery",
    }


def _poll(probe: Callable[[], _T | None], what: str) -> _T:
    return wait_until(probe, timeout=WAIT_SECONDS, what=what)


def _warned_once(lifecycle: httpx.Client, customer_id: str) -> dict[str, Any] | None:
    response = lifecycle.get(f"/v1/customers/{customer_id}/stage")
    if response.status_code == 404:
        return None
    stage: dict[str, Any] = response.json()
    return stage if stage["open_warning"] is not None else None


def _decisions_once(notification: httpx.Client, customer_id: str) -> list[dict[str, Any]] | None:
    log = notification.get("/v1/notifications", params={"customer_id": customer_id})
    assert log.status_code == 200, log.text
    items: list[dict[str, Any]] = log.json()["items"]
    rules = [n["rule_id"] for n in items if n["status"] != "scheduled"]
    ready = rules.count("complaint-follow-up") == 2 and "warning-retention-offer" in rules
    return items if ready else None
