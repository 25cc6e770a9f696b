"""Free and refunded repeat orders, through real processes on PostgreSQL: the fit still succeeds.

A customer's repeat orders that are all free (0.00), refunded in full or cancelled used to make
every Gamma-Gamma fit fail for the whole base. Here such orders reach scoring-service over the
shop's HTTP intake (profile-service, its outbox, the embedded broker) among a base of paying
customers published straight to Kafka; the fit must succeed, say who was left out, score that
customer, and keep scoring their later orders.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from crm_contracts import Money, OrderPlaced, Topic
from crm_devstack.launcher import Stack, start_stack
from crm_devstack.progress import wait_for_processed, wait_until
from crm_devstack.services import SERVICES
from crm_devstack.shop import publish_orders_now
from crm_devstack.wiring import NO_SCHEDULED_JOBS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

WAIT_SECONDS = 180.0  # a bound on waiting for a state, generous for a loaded machine
PAYING_CUSTOMERS = 30  # BG/NBD needs 20 customers and Gamma-Gamma 10 repeat buyers


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    wanted = {"profile-service", "scoring-service"}
    with start_stack(
        data_dir=tmp_path_factory.mktemp("free-orders"),
        services=[spec for spec in SERVICES if spec.name in wanted],
        free_ports=True,
        postgres=True,
        # Fits happen when the test says, not on the service's own clock.
        extra_env=NO_SCHEDULED_JOBS,
    ) as running:
        yield running


def test_a_customer_whose_repeat_orders_are_free_or_refunded_does_not_stop_the_fit(
    stack: Stack,
) -> None:
    now = datetime.now(UTC)
    key = {"X-API-Key": stack.api_key}
    profile_url = stack.urls["profile-service"]
    scoring_url = stack.urls["scoring-service"]
    with (
        httpx.Client(base_url=profile_url, headers=key, timeout=30, trust_env=False) as profile,
        httpx.Client(base_url=scoring_url, headers=key, timeout=60, trust_env=False) as scoring,
        httpx.Client(timeout=10, trust_env=False) as metrics,
    ):
        published = publish_orders_now(
            stack.bootstrap_servers, _paying_customers_orders(now), source="/tests/shop"
        )
        intake = [
            _placed("free-1", now - timedelta(days=120), "25.00"),
            _placed("free-2", now - timedelta(days=90), "0.00"),
            _placed("free-3", now - timedelta(days=60), "40.00"),
            {
                "type": "order.refunded",
                "order_id": "free-3",
                "refund_id": "r1",
                "refunded_at": (now - timedelta(days=55)).isoformat(),
                "amount": {"amount": "40.00", "currency": "USD"},
            },
            _placed("free-4", now - timedelta(days=30), "15.00"),
            {
                "type": "order.cancelled",
                "order_id": "free-4",
                "cancelled_at": (now - timedelta(days=29)).isoformat(),
            },
            _placed("free-5", now - timedelta(days=10), "0.00"),
        ]
        customer_id = _post_orders(profile, intake)
        wait_for_processed(
            metrics,
            scoring_url,
            Topic.ORDERS,
            published + len(intake),
            timeout=WAIT_SECONDS,
            who="scoring-service",
        )

        fitted = scoring.post("/v1/models/fit", json={"as_of": now.isoformat()})

        assert fitted.status_code == 201, fitted.text
        model = fitted.json()
        assert model["customers"] == PAYING_CUSTOMERS + 1
        assert model["bg_nbd"], model["notes"]
        assert model["gamma_gamma"], model["notes"]
        assert any("1 repeat buyers left out" in note for note in model["notes"]), model["notes"]
        scores = scoring.get(f"/v1/scores/{customer_id}").json()["scores"]
        assert scores["order_count"] == 3  # the refunded and the cancelled order are gone
        assert scores["total_spend"]["amount"] == "25.00"
        assert Decimal(scores["predicted_clv_12m"]["amount"]) > 0

        # The flow keeps moving: one more free order is scored with the fitted models.
        _post_orders(profile, [_placed("free-6", now - timedelta(hours=1), "0.00")])
        rescored = wait_until(
            lambda: _scores_with_orders(scoring, customer_id, 4),
            timeout=WAIT_SECONDS,
            what="the customer's scores after a fourth free order",
        )
        assert rescored["model_version"] == model["version"]
        assert rescored["predicted_clv_12m"] is not None


def _placed(order_id: str, placed_at: datetime, amount: str) -> dict[str, Any]:
    return {
        "type": "order.placed",
        "order_id": order_id,
        "customer": {"external_id": "shop:free-buyer"},
        "placed_at": placed_at.isoformat(),
        "total": {"amount": amount, "currency": "USD"},
    }


def _post_orders(profile: httpx.Client, orders: list[dict[str, Any]]) -> str:
    """Post each order event to the HTTP intake; return the customer id they landed on."""
    customers = set()
    for order in orders:
        accepted = profile.post("/v1/orders", json=order)
        assert accepted.status_code == 202, accepted.text
        customers.add(accepted.json()["customer_id"])
    (customer_id,) = customers
    return str(customer_id)


def _paying_customers_orders(now: datetime) -> list[OrderPlaced]:
    draw = random.Random(20251206)
    orders = []
    for number in range(PAYING_CUSTOMERS):
        customer_id = f"paying-{number:02d}"
        day = draw.uniform(60, 300)
        for n in range(draw.randint(1, 6)):
            orders.append(
                OrderPlaced(
                    order_id=f"{customer_id}-{n}",
                    customer_id=customer_id,
                    placed_at=now - timedelta(days=day),
                    total=Money(amount=Decimal(draw.randint(500, 20_000)) / 100, currency="USD"),
                )
            )
            day -= draw.uniform(10, 50)
            if day < 2:
                break
    return orders


def _scores_with_orders(
    scoring: httpx.Client, customer_id: str, order_count: int
) -> dict[str, Any] | None:
    response = scoring.get(f"/v1/scores/{customer_id}")
    assert response.status_code == 200, response.text
    scores: dict[str, Any] = response.json()["scores"]
    return scores if scores["order_count"] >= order_count else None
