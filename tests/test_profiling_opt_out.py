"""Profiling opt-out (GDPR art. 21/22) across the whole chain under real processes.

Two customers object to profiling before they buy: one whose spend then falls (the end-to-end
test's retention-offer customer) and one who places a first order now. Their orders flow:
neither is scored or fitted on, the first gets no churn warning and no retention offer, the
second still gets the welcome (a service message), and the first one's 360 says the scores and
warnings are withheld. Withdrawing the objection scores the first customer again, the warning
and the offer follow; objecting again deletes the score and withdraws the warning.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any, TypeVar

import httpx
import pytest

from crm_contracts import Money, OrderPlaced, Topic
from crm_devstack.launcher import Stack, start_stack
from crm_devstack.progress import event_counts, wait_for_processed, wait_until, wait_until_idle
from crm_devstack.shop import publish_orders_now
from crm_devstack.wiring import NO_SCHEDULED_JOBS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

WAIT_SECONDS = 180.0
CONSUMERS = ("scoring-service", "lifecycle-service", "notification-service")
OTHER_CUSTOMERS = 40  # BG/NBD needs 20 customers and Gamma-Gamma 10 repeat buyers
RETENTION_SUBJECT = "Something for you"  # the default retention-offer template
WELCOME_SUBJECT = "Thank you for your first order"  # the default welcome (a service message)
_T = TypeVar("_T")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(
        data_dir=tmp_path_factory.mktemp("stack"),
        free_ports=True,
        postgres=True,
        extra_env=NO_SCHEDULED_JOBS,  # fits and sweeps happen when the test says
    ) as running:
        yield running


def test_an_objecting_customer_is_not_scored_warned_or_offered_and_withdrawing_resumes(
    stack: Stack,
) -> None:
    now = datetime.now(UTC)
    key = {"X-API-Key": stack.api_key}
    clients = {
        name: httpx.Client(base_url=url, headers=key, timeout=30, trust_env=False)
        for name, url in stack.urls.items()
    }
    profile, scoring = clients["profile-service"], clients["scoring-service"]
    lifecycle, notification = clients["lifecycle-service"], clients["notification-service"]
    metrics = httpx.Client(timeout=10, trust_env=False)
    try:
        _hold_nobody_back(notification)
        falling = _objecting_customer(profile, "falling@example.com", now, marketing=True)
        newcomer = _objecting_customer(profile, "newcomer@example.com", now, marketing=False)
        # Every service has the objections before any order: no warning can come first.
        wait_until_idle(metrics, stack.urls, timeout=WAIT_SECONDS)
        profile_url = stack.urls["profile-service"]
        customer_events = event_counts(metrics, profile_url).published_to(str(Topic.CUSTOMERS))
        _read_by_every_consumer(metrics, stack, Topic.CUSTOMERS, customer_events)

        ours = [_order(falling, now - timedelta(days=d), "100.00") for d in (121, 91, 61, 31)]
        ours.append(_order(falling, now - timedelta(days=1), "30.00"))
        ours.append(_order(newcomer, now - timedelta(minutes=1), "25.00"))
        published = publish_orders_now(
            stack.bootstrap_servers, [*_other_customers_orders(now), *ours], source="/tests/shop"
        )
        _read_by_every_consumer(metrics, stack, Topic.ORDERS, published)
        wait_until_idle(
            metrics,
            stack.urls,
            published_from_outside={str(Topic.ORDERS): published},
            timeout=WAIT_SECONDS,
        )
        fitted = scoring.post("/v1/models/fit", json={"as_of": now.isoformat()})
        assert fitted.status_code == 201, fitted.text
        assert fitted.json()["customers"] == OTHER_CUSTOMERS  # neither objector is fitted on
        welcome = _poll(lambda: _mail_to(stack, "newcomer@example.com"), "the newcomer's welcome")
        wait_until_idle(metrics, stack.urls, timeout=WAIT_SECONDS, quiet=3.0)

        for customer_id in (falling, newcomer):
            assert scoring.get(f"/v1/scores/{customer_id}").status_code == 404
        stage = lifecycle.get(f"/v1/customers/{falling}/stage").json()
        assert stage["order_count"] == 5
        assert stage["open_warning"] is None
        assert _warnings(lifecycle, falling) == []
        assert [m["To"] for m in _mail(stack)] == ["newcomer@example.com"]
        assert welcome[0]["Subject"] == WELCOME_SUBJECT
        log = notification.get("/v1/notifications", params={"customer_id": falling}).json()
        assert "warning-retention-offer" not in {n["rule_id"] for n in log["items"]}
        view = profile.get(f"/v1/customers/{falling}/360").json()
        assert view["profiling"]["objected"] is True
        assert view["profiling"]["withheld"] == ["scores", "segments", "churn_warning"]
        assert view["scores"] is None
        assert view["churn_warning"] is None
        assert view["lifecycle"]["stage"] == "active"

        # Withdrawing: scored again at once, then warned and offered as anyone would be.
        _decide(profile, falling, objects=False)
        resumed = _poll(
            lambda: _json_if_found(scoring.get(f"/v1/scores/{falling}")),
            "the customer's scores after the withdrawal",
        )
        assert resumed["scores"]["order_count"] == 5
        warning = _poll(
            lambda: lifecycle.get(f"/v1/customers/{falling}/stage").json()["open_warning"],
            "a churn warning after the withdrawal",
        )
        assert "spend_dropped" in warning["reasons"], warning
        if warning["recommended_action"] == "retention_offer":
            offer = _poll(
                lambda: _mail_to(stack, "falling@example.com"),
                "the retention offer",
                last_seen=lambda: _decisions(notification, falling),
            )
            assert offer[0]["Subject"] == RETENTION_SUBJECT
        view = _poll(
            lambda: _view_if(profile, falling, lambda v: v["churn_warning"] is not None),
            "the 360 with scores and the warning again",
        )
        assert view["profiling"] == {"objected": False, "since": None, "withheld": []}
        assert view["scores"]["order_count"] == 5

        # Objecting again: the score goes, the open warning is withdrawn with its reason.
        _decide(profile, falling, objects=True)
        _poll(
            lambda: scoring.get(f"/v1/scores/{falling}").status_code == 404 or None,
            "the score deleted after the objection",
        )
        [withdrawn] = _poll(
            lambda: (
                [w for w in _warnings(lifecycle, falling) if w["status"] == "withdrawn"] or None
            ),
            "the warning withdrawn after the objection",
        )
        assert withdrawn["warning_id"] == warning["warning_id"]
        assert withdrawn["reasons"] == ["profiling_objection"]
        view = profile.get(f"/v1/customers/{falling}/360").json()
        assert view["scores"] is None
        assert view["churn_warning"] is None
    finally:
        metrics.close()
        for client in clients.values():
            client.close()


def _objecting_customer(
    profile: httpx.Client, email: str, now: datetime, *, marketing: bool
) -> str:
    """A customer reachable now (midday in their zone) who objects to profiling."""
    offset = max(-12, min(14, 12 - now.hour))
    zone = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT signs are inverted
    created = profile.post("/v1/customers", json={"email": email, "time_zone": zone})
    assert created.status_code == 201, created.text
    customer_id: str = created.json()["id"]
    if marketing:
        granted = profile.put(
            f"/v1/customers/{customer_id}/consents/email/marketing",
            json={"granted": True, "source": "checkout-form"},
        )
        assert granted.status_code == 200, granted.text
    _decide(profile, customer_id, objects=True)
    return customer_id


def _hold_nobody_back(notification: httpx.Client) -> None:
    """The retention offer treats everyone here: its 10% control group, chosen by a hash of the
    customer's random id, would otherwise keep the offer from this customer in one run of ten."""
    rule = notification.get("/v1/rules/warning-retention-offer")
    assert rule.status_code == 200, rule.text
    treat_all = notification.put(
        "/v1/rules/warning-retention-offer", json={**rule.json(), "holdout_share": 0}
    )
    assert treat_all.status_code == 200, treat_all.text


def _decide(profile: httpx.Client, customer_id: str, *, objects: bool) -> None:
    answer = profile.put(
        f"/v1/customers/{customer_id}/consents/email/profiling",
        json={"granted": not objects, "source": "account-settings"},
    )
    assert answer.status_code == 200, answer.text


def _order(customer_id: str, placed_at: datetime, amount: str) -> OrderPlaced:
    return OrderPlaced(
        order_id=f"{customer_id}-{placed_at:%Y%m%d%H%M}",
        customer_id=customer_id,
        placed_at=placed_at,
        total=Money(amount=Decimal(amount), currency="USD"),
    )


def _other_customers_orders(now: datetime) -> list[OrderPlaced]:
    """Regular buyers without an email address, every first order older than a week."""
    draw = random.Random(20250301)
    orders = []
    for number in range(OTHER_CUSTOMERS):
        day = draw.uniform(150, 400)
        for _ in range(draw.randint(2, 8)):
            amount = str(Decimal(draw.randint(8_000, 40_000)) / 100)
            orders.append(_order(f"shop-regular-{number:02d}", now - timedelta(days=day), amount))
            day -= draw.uniform(15, 60)
            if day < 2:
                break
    return orders


def _mail(stack: Stack) -> list[Message]:
    sink = stack.mail_sink
    assert sink is not None
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(path.read_bytes()) for path in sink.messages()]


def _mail_to(stack: Stack, address: str) -> list[Message] | None:
    return [m for m in _mail(stack) if m["To"] == address] or None


def _warnings(lifecycle: httpx.Client, customer_id: str) -> list[dict[str, Any]]:
    response = lifecycle.get("/v1/warnings", params={"customer_id": customer_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _json_if_found(response: httpx.Response) -> dict[str, Any] | None:
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _view_if(
    profile: httpx.Client, customer_id: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    view = _json_if_found(profile.get(f"/v1/customers/{customer_id}/360"))
    return view if view is not None and ready(view) else None


def _read_by_every_consumer(
    metrics: httpx.Client, stack: Stack, topic: Topic, expected: int
) -> None:
    """Wait until scoring, lifecycle and notification each consumed `expected` events of
    `topic`: to `wait_until_idle` a consumer that has not joined its group yet looks idle."""
    for name in CONSUMERS:
        wait_for_processed(
            metrics, stack.urls[name], str(topic), expected, timeout=WAIT_SECONDS, who=name
        )


def _poll(
    probe: Callable[[], _T | None], what: str, last_seen: Callable[[], str] | None = None
) -> _T:
    return wait_until(probe, timeout=WAIT_SECONDS, what=what, last_seen=last_seen)


def _decisions(notification: httpx.Client, customer_id: str) -> str:
    """The customer's notification decisions, to name what happened instead of a message."""
    log = notification.get("/v1/notifications", params={"customer_id": customer_id}).json()
    return repr([(n["rule_id"], n["status"], n.get("reason")) for n in log["items"]])
