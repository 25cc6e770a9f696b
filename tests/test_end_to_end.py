"""The whole chain under real processes: broker, PostgreSQL, SMTP sink and the four services.

A shop publishes the orders of a regular customer whose spend then falls, among a few dozen
other customers (enough for scoring-service to fit its models); the customer then goes silent.
The chain must raise one churn warning, send exactly one email (the retention offer: the
welcome for a first order four months ago is too old to send), and the customer's 360 view in
profile-service must show the scores, the stage and the message.
"""

from __future__ import annotations

import random
import time
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
from crm_devstack.progress import wait_for_processed, wait_until
from crm_devstack.shop import publish_orders_now
from crm_devstack.wiring import NO_SCHEDULED_JOBS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

EMAIL = "grace@example.com"
RETENTION_SUBJECT = "Something for you"  # the default retention-offer template
WAIT_SECONDS = 180.0  # a bound on waiting for a state, generous for a loaded machine
# After the email: how long nothing more may arrive before "exactly one" is believed.
SECOND_EMAIL_GRACE_SECONDS = 4.0
OTHER_CUSTOMERS = 40  # BG/NBD needs 20 customers and Gamma-Gamma 10 repeat buyers
_T = TypeVar("_T")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = time.monotonic()
    with start_stack(
        data_dir=tmp_path_factory.mktemp("stack"),
        free_ports=True,
        postgres=True,
        # Fits and sweeps happen when the test says, not on the services' own clocks.
        extra_env=NO_SCHEDULED_JOBS,
    ) as running:
        startup = time.monotonic() - started
        print(f"\nstack on PostgreSQL started in {startup:.1f} s")
        yield running


def test_falling_spend_then_silence_sends_one_retention_email_and_shows_in_the_360(
    stack: Stack,
) -> None:
    now = datetime.now(UTC)
    key = {"X-API-Key": stack.api_key}
    urls = stack.urls
    clients = {
        name: httpx.Client(base_url=url, headers=key, timeout=30, trust_env=False)
        for name, url in urls.items()
    }
    profile, scoring = clients["profile-service"], clients["scoring-service"]
    lifecycle, notification = clients["lifecycle-service"], clients["notification-service"]
    metrics = httpx.Client(timeout=10, trust_env=False)
    try:
        customer_id = _customer_who_may_be_mailed_now(profile, notification, now)

        # Four orders of 100.00 a month apart, then one of 30.00: the spend has fallen.
        ours = [
            _order(customer_id, now - timedelta(days=days), "100.00") for days in (121, 91, 61, 31)
        ]
        ours.append(_order(customer_id, now - timedelta(days=1), "30.00"))
        orders = [*_other_customers_orders(now), *ours]
        chain_started = time.monotonic()
        published = publish_orders_now(stack.bootstrap_servers, orders, source="/tests/shop")
        for service in ("scoring-service", "lifecycle-service"):
            wait_for_processed(
                metrics, urls[service], Topic.ORDERS, published, timeout=WAIT_SECONDS, who=service
            )

        fitted = scoring.post("/v1/models/fit", json={"as_of": now.isoformat()})
        assert fitted.status_code == 201, fitted.text
        assert fitted.json()["customers"] == OTHER_CUSTOMERS + 1
        assert fitted.json()["bg_nbd"], f"BG/NBD was not fitted: {fitted.json()['notes']}"
        scores = _poll(
            lambda: _json_if_found(scoring.get(f"/v1/scores/{customer_id}")),
            "the customer's scores in scoring-service",
        )
        tier = scores["scores"]["value_tier"]

        # The warning for the fallen spend, with the scores in lifecycle-service by now.
        stage = _poll(
            lambda: _stage_once(
                lifecycle,
                customer_id,
                lambda s: s["value_tier"] is not None and s["open_warning"] is not None,
            ),
            "the customer's scores and churn warning in lifecycle-service",
        )
        warning = stage["open_warning"]
        assert stage["order_count"] == 5
        assert stage["stage"] == "active", stage["history"]
        assert stage["value_tier"] == tier
        assert "spend_dropped" in warning["reasons"], warning
        assert warning["recommended_action"] == "retention_offer", (
            f"a {tier} customer graded {stage['grade']} would get an account manager instead"
        )

        mail = _poll(lambda: stack_mail(stack) or None, "the retention email in the sink")
        assert len(mail) == 1, [(m["To"], m["Subject"]) for m in mail]
        email = mail[0]
        assert email["To"] == EMAIL
        assert email["Subject"] == RETENTION_SUBJECT

        # Silence: past 1.5 times the customer's own rhythm (the warning's silence signal), yet
        # within the warning's 90 days, so the open warning is updated rather than a new one raised.
        rhythm = stage["expected_interpurchase_days"]
        last_purchase = datetime.fromisoformat(stage["last_purchase_at"])
        silent_until = last_purchase + timedelta(days=1.75 * rhythm)
        raised_at = datetime.fromisoformat(warning["raised_at"])
        assert silent_until < raised_at + timedelta(days=90), (
            f"a rhythm of {rhythm:.0f} days is too slow for silence to show within the warning"
        )
        swept = lifecycle.post("/v1/sweeps", json={"as_of": silent_until.isoformat()})
        assert swept.status_code == 201, swept.text
        silent = lifecycle.get(f"/v1/customers/{customer_id}/stage").json()
        updated = silent["open_warning"]
        assert updated["warning_id"] == warning["warning_id"]
        assert updated["status"] == "updated"
        assert {"spend_dropped", "silence_past_rhythm"} <= set(updated["reasons"]), updated

        view = _poll(
            lambda: _view_once(profile, customer_id, silent["stage"]),
            f"the 360 view with scores, stage {silent['stage']!r}, the warning and the email",
        )
        assert view["scores"]["value_tier"] == tier
        assert view["lifecycle"]["stage"] == silent["stage"]
        assert view["churn_warning"]["warning_id"] == warning["warning_id"]
        (sent,) = [n for n in view["recent_notifications"] if n["outcome"] == "sent"]
        assert sent["rule_id"] == "warning-retention-offer"
        assert sent["channel"] == "email"

        log = notification.get("/v1/notifications", params={"customer_id": customer_id}).json()
        by_rule = {n["rule_id"]: n for n in log["items"]}
        assert by_rule["warning-retention-offer"]["status"] == "sent"
        assert by_rule["warning-retention-offer"]["recipient"] == EMAIL
        # The first order is four months old: its welcome is no longer worth sending.
        assert by_rule["welcome-first-order"]["status"] == "suppressed"
        assert by_rule["welcome-first-order"]["reason"] == "no_longer_applies"

        time.sleep(SECOND_EMAIL_GRACE_SECONDS)
        mail = stack_mail(stack)
        assert len(mail) == 1, [(m["To"], m["Subject"]) for m in mail]
        print(
            f"customer: tier {tier}, grade {stage['grade']}, churn risk {stage['churn_risk']},"
            f" rhythm {rhythm:.1f} days; warning {warning['reasons']} -> {updated['reasons']};"
            f" stage after {silent_until - last_purchase} of silence: {silent['stage']};"
            f" chain done {time.monotonic() - chain_started:.1f} s after the orders"
        )
    finally:
        metrics.close()
        for client in clients.values():
            client.close()


def stack_mail(stack: Stack) -> list[Message]:
    """Every message the stack's SMTP sink has kept, oldest first."""
    sink = stack.mail_sink
    assert sink is not None
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(path.read_bytes()) for path in sink.messages()]


def _customer_who_may_be_mailed_now(
    profile: httpx.Client, notification: httpx.Client, now: datetime
) -> str:
    """A customer with an email address, marketing consent, and a time zone where it is
    midday (quiet hours, 21:00-09:00 local, would hold the email until the morning); the
    retention offer holds nobody back here, so the random id never lands in its control group."""
    rule = notification.get("/v1/rules/warning-retention-offer")
    assert rule.status_code == 200, rule.text
    treat_all = notification.put(
        "/v1/rules/warning-retention-offer", json={**rule.json(), "holdout_share": 0}
    )
    assert treat_all.status_code == 200, treat_all.text
    created = profile.post(
        "/v1/customers",
        json={"email": EMAIL, "first_name": "Grace", "time_zone": _zone_at_midday(now)},
    )
    assert created.status_code == 201, created.text
    customer_id: str = created.json()["id"]
    consent = profile.put(
        f"/v1/customers/{customer_id}/consents/email/marketing",
        json={"granted": True, "source": "checkout-form"},
    )
    assert consent.status_code == 200, consent.text
    # The consent must be in notification-service's replica before the warning is: a tag set
    # after it travels behind it on the customer's partition, so once the tag is there, so is
    # the consent.
    tagged = profile.patch(f"/v1/customers/{customer_id}", json={"tags": ["consented"]})
    assert tagged.status_code == 200, tagged.text
    _poll(
        lambda: _tags_in_notification_service(notification, customer_id) == "consented" or None,
        "the customer's consent in notification-service",
    )
    return customer_id


def _zone_at_midday(now: datetime) -> str:
    """An ``Etc/GMT`` zone where it is about noon at `now` (their signs are inverted)."""
    offset = max(-12, min(14, 12 - now.hour))
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def _tags_in_notification_service(notification: httpx.Client, customer_id: str) -> str | None:
    preview = notification.post(
        "/v1/templates/preview",
        json={
            "channel": "in_app",
            "parts": {"title": "tags", "body": "{{ customer.tags | join(',') }}"},
            "customer_id": customer_id,
        },
    )
    if preview.status_code == 404:
        return None  # customer.created has not arrived yet
    assert preview.status_code == 200, preview.text
    body: str = preview.json()["parts"]["body"]
    return body


def _order(customer_id: str, placed_at: datetime, amount: str) -> OrderPlaced:
    return OrderPlaced(
        order_id=f"{customer_id}-{placed_at:%Y%m%d}",
        customer_id=customer_id,
        placed_at=placed_at,
        total=Money(amount=Decimal(amount), currency="USD"),
    )


def _other_customers_orders(now: datetime) -> list[OrderPlaced]:
    """The shop's other customers: regular buyers who all spend more than ours, every first
    order older than a week (so none is welcomed now), none with an email address."""
    draw = random.Random(20250301)
    orders = []
    for number in range(OTHER_CUSTOMERS):
        customer_id = f"shop-regular-{number:02d}"
        day = draw.uniform(150, 400)
        for _ in range(draw.randint(2, 8)):
            amount = Decimal(draw.randint(8_000, 40_000)) / 100
            orders.append(_order(customer_id, now - timedelta(days=day), str(amount)))
            day -= draw.uniform(15, 60)
            if day < 2:
                break
    return orders


def _json_if_found(response: httpx.Response) -> dict[str, Any] | None:
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _stage_once(
    lifecycle: httpx.Client, customer_id: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    stage = _json_if_found(lifecycle.get(f"/v1/customers/{customer_id}/stage"))
    return stage if stage is not None and ready(stage) else None


def _view_once(profile: httpx.Client, customer_id: str, stage: str) -> dict[str, Any] | None:
    view = _json_if_found(profile.get(f"/v1/customers/{customer_id}/360"))
    if view is None or view["scores"] is None or view["lifecycle"] is None:
        return None
    warning = view["churn_warning"] or {}
    complete = (
        view["lifecycle"]["stage"] == stage
        and "silence_past_rhythm" in warning.get("reasons", [])
        and any(n["outcome"] == "sent" for n in view["recent_notifications"])
    )
    return view if complete else None


def _poll(probe: Callable[[], _T | None], what: str) -> _T:
    return wait_until(probe, timeout=WAIT_SECONDS, what=what)
