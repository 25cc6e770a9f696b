"""The system as `make run` starts it: broker and services as processes, over HTTP and Kafka."""

from __future__ import annotations

import asyncio
import smtplib
import time
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx

from crm_contracts import CustomerCreated, decode_event
from crm_devstack.launcher import Stack, start_stack
from crm_shared.testing import read_topic
from notification_service.domain.default_playbook import DEFAULT_RULES

# How long a customer created in profile-service may take to reach lifecycle-service over Kafka.
_PROPAGATION_SECONDS = 120.0


def test_make_run_stack_serves_customers_and_tracks_their_stage(tmp_path: Path) -> None:
    with start_stack(data_dir=tmp_path, free_ports=True) as stack:
        profile = stack.services["profile-service"].base_url
        key = {"X-API-Key": stack.api_key}
        with httpx.Client(base_url=profile, timeout=10) as client:
            assert client.get("/v1/customers").status_code == 401
            created = client.post(
                "/v1/customers", json={"email": "ada@example.com", "first_name": "Ada"}, headers=key
            )
            assert created.status_code == 201
            customer_id = created.json()["id"]
            read = client.get(f"/v1/customers/{customer_id}", headers=key)
            assert read.json()["first_name"] == "Ada"
            assert client.get("/readyz").json()["checks"] == {
                "database": True,
                "broker": True,
                "outbox": True,
            }

        lifecycle = stack.services["lifecycle-service"].base_url
        with httpx.Client(base_url=lifecycle, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").json()["checks"] == {
                "database": True,
                "broker": True,
                "outbox": True,
            }
            assert client.get("/docs").status_code == 200
            assert client.get(f"/v1/customers/{customer_id}/stage").status_code == 401
            stage = _stage_once_known(client, customer_id, headers=key)
            assert stage["stage"] == "prospect"

        # An order taken over HTTP reaches lifecycle through Kafka, and its stage change comes
        # back to profile-service's 360 view.
        with httpx.Client(base_url=profile, timeout=10) as client:
            order = {
                "type": "order.placed",
                "order_id": "embedded-1",
                "customer": {"email": "ada@example.com"},
                "placed_at": datetime.now(UTC).isoformat(),
                "total": {"amount": "42.00", "currency": "USD"},
            }
            assert client.post("/v1/orders", json=order, headers=key).status_code == 202
            view = _view_once(client, customer_id, headers=key, stage="new")
            assert view["lifecycle"]["stage"] == "new"

        records = asyncio.run(
            read_topic(stack.bootstrap_servers, "crm.customers", expect=1, settle=0.2)
        )
        events = [decode_event(record.value or b"") for record in records]
        assert [e.subject for e in events if isinstance(e.data, CustomerCreated)] == [customer_id]

        _assert_notification_service_serves_its_playbook(stack, key)
        _assert_mail_sink_keeps_each_message(stack)


def _assert_notification_service_serves_its_playbook(stack: Stack, key: dict[str, str]) -> None:
    notification = stack.services["notification-service"].base_url
    with httpx.Client(base_url=notification, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").json()["checks"] == {
            "database": True,
            "broker": True,
            "outbox": True,
        }
        assert client.get("/docs").status_code == 200
        assert client.get("/v1/rules").status_code == 401
        response = client.get("/v1/rules", headers=key)
        assert response.status_code == 200, response.text
        # The shipped playbook (ten rules), seeded when the service starts.
        rule_ids = {rule["rule_id"] for rule in response.json()}
        assert rule_ids == {rule.rule_id for rule in DEFAULT_RULES}
        assert len(rule_ids) == 10


def _assert_mail_sink_keeps_each_message(stack: Stack) -> None:
    sink = stack.mail_sink
    assert sink is not None
    assert sink.directory == stack.data_dir / "mail"
    message = EmailMessage()
    message["From"] = "Devstack check <check@example.com>"
    message["To"] = "grace@example.com"
    message["Subject"] = "Sent by hand to the mail sink"
    message.set_content("One file per message.")
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.send_message(message)
    # The sink may also hold notification-service's welcome to Ada (outside quiet hours).
    kept = [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in sink.messages()]
    (by_hand,) = [m for m in kept if m["Subject"] == "Sent by hand to the mail sink"]
    assert by_hand["To"] == "grace@example.com"


def _view_once(
    client: httpx.Client, customer_id: str, *, headers: dict[str, str], stage: str
) -> dict[str, Any]:
    """The customer's 360 view, polled until it shows the lifecycle ``stage``."""
    deadline = time.monotonic() + _PROPAGATION_SECONDS
    while True:
        view: dict[str, Any] = client.get(
            f"/v1/customers/{customer_id}/360", headers=headers
        ).json()
        lifecycle = view.get("lifecycle") or {}
        if lifecycle.get("stage") == stage or time.monotonic() > deadline:
            return view
        time.sleep(0.1)


def _stage_once_known(
    client: httpx.Client, customer_id: str, *, headers: dict[str, str]
) -> dict[str, object]:
    """The customer's lifecycle stage, polled until `customer.created` has been consumed."""
    deadline = time.monotonic() + _PROPAGATION_SECONDS
    while True:
        response = client.get(f"/v1/customers/{customer_id}/stage", headers=headers)
        if response.status_code != 404 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            body: dict[str, object] = response.json()
            return body
        time.sleep(0.1)
