"""Issue 11, items 1 and 10, on the whole stack (embedded broker, PostgreSQL, four services).

An oversized customer is refused at the edge (413 for the body, 422 for a field). A customer
that passes the edge but whose event the producer still cannot send (profile-service's producer
limit is set below the body limit here, as a misconfigured broker limit would be) is parked in
the outbox, and the orders accepted after it still flow through to a stage change.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from crm_devstack.launcher import Stack, start_stack
from crm_devstack.progress import wait_until
from crm_devstack.wiring import NO_SCHEDULED_JOBS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

WAIT_SECONDS = 180.0  # a bound on waiting for a state, generous for a loaded machine
PRODUCER_LIMIT = 16 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(
        data_dir=tmp_path_factory.mktemp("stack"),
        free_ports=True,
        postgres=True,
        extra_env={
            "PROFILE_KAFKA_MAX_MESSAGE_BYTES": str(PRODUCER_LIMIT),
            **NO_SCHEDULED_JOBS,
        },
    ) as running:
        yield running


@pytest.fixture(scope="module")
def clients(stack: Stack) -> Iterator[dict[str, httpx.Client]]:
    key = {"X-API-Key": stack.api_key}
    made = {
        name: httpx.Client(base_url=url, headers=key, timeout=30, trust_env=False)
        for name, url in stack.urls.items()
    }
    yield made
    for client in made.values():
        client.close()


def test_an_oversized_customer_is_refused_at_the_edge(clients: dict[str, httpx.Client]) -> None:
    profile = clients["profile-service"]
    # The example: two 600 KB attribute values.
    huge = {"email": "huge@example.com", "attributes": {"a": "x" * 600_000, "b": "y" * 600_000}}
    refused = profile.post("/v1/customers", json=huge)
    assert refused.status_code == 413, refused.text
    assert refused.headers["content-type"] == "application/problem+json"

    long_note = {"email": "note@example.com", "attributes": {"note": "x" * 1_001}}
    invalid = profile.post("/v1/customers", json=long_note)
    assert invalid.status_code == 422, invalid.text
    assert invalid.json()["errors"][0]["field"] == "attributes.note"

    tags = {"email": "tags@example.com", "tags": [f"t{n}" for n in range(5_000)]}
    too_many = profile.post("/v1/customers", json=tags)
    assert too_many.status_code == 422, too_many.text
    assert too_many.json()["errors"][0]["field"] == "tags"


def test_an_unpublishable_customer_is_parked_and_later_orders_reach_a_stage_change(
    stack: Stack, clients: dict[str, httpx.Client]
) -> None:
    profile, lifecycle = clients["profile-service"], clients["lifecycle-service"]
    # Within every field limit, yet above the producer limit configured for this stack.
    notes = {f"note{n}": "x" * 1_000 for n in range(30)}
    created = profile.post("/v1/customers", json={"email": "big@example.com", "attributes": notes})
    assert created.status_code == 201, created.text
    big_id = created.json()["id"]

    def parked_count() -> int | None:
        body = profile.get("/readyz").json()
        parked: int = body["details"]["outbox"]["parked"]
        return parked or None

    assert wait_until(parked_count, timeout=WAIT_SECONDS, what="the customer event parked") == 1

    started = time.monotonic()
    placed_at = datetime.now(UTC) - timedelta(hours=2)
    for customer in ({"customer_id": big_id}, {"email": "small@example.com"}):
        order = profile.post("/v1/orders", json=_order(customer, placed_at))
        assert order.status_code == 202, order.text
    small_id = order.json()["customer_id"]

    for customer_id in (big_id, small_id):
        stage = wait_until(
            lambda customer_id=customer_id: _stage_after_an_order(lifecycle, customer_id),
            timeout=WAIT_SECONDS,
            what=f"lifecycle's stage of {customer_id} after its order",
        )
        assert stage["order_count"] == 1
        assert stage["stage"] != "prospect"
    print(f"\norders through to a stage change {time.monotonic() - started:.1f} s after intake")

    ready = profile.get("/readyz")
    assert ready.status_code == 200, ready.text  # parked rows need an operator, not a restart
    assert ready.json()["checks"]["outbox"] is True
    assert ready.json()["details"]["outbox"]["parked"] == 1
    metrics = httpx.get(f"{stack.urls['profile-service']}/metrics", timeout=10, trust_env=False)
    exported = metrics.text
    assert 'outbox_parked_total{topic="crm.customers"} 1.0' in exported
    assert "outbox_parked_rows 1.0" in exported
    assert "outbox_pending 0.0" in exported


def _order(customer: dict[str, str], placed_at: datetime) -> dict[str, Any]:
    return {
        "type": "order.placed",
        "order_id": f"ord-{next(iter(customer.values()))}",
        "customer": customer,
        "placed_at": placed_at.isoformat(),
        "total": {"amount": "42.00", "currency": "USD"},
    }


def _stage_after_an_order(lifecycle: httpx.Client, customer_id: str) -> dict[str, Any] | None:
    response = lifecycle.get(f"/v1/customers/{customer_id}/stage")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    stage: dict[str, Any] = response.json()
    return stage if stage["order_count"] >= 1 else None
