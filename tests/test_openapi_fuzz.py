"""Schemathesis over every service's OpenAPI, on the system as `make run` starts it.

The services run as processes on the embedded broker (the real Kafka protocol) and SQLite, as
`make run` starts them. For each service the Schemathesis CLI reads the service's own
``/openapi.json`` and sends a bounded, derandomized set of cases per operation (documented
examples, boundary values, generated data, then chains of calls), with an all-scope key, and
checks every answer: no 5xx, a documented status code, the documented content type and a body
matching the documented schema, and no 2xx without a key. The settings are in
``schemathesis.toml`` at the repository root, so the same command works by hand against
`make run`; a failing run shows each failing case with the curl line that reproduces it.

Some operations answer 2xx only to state random data does not make (two real customers to
merge, a fitted model, a delivered message, a signed unsubscribe link): one test drives each of
them there on purpose and checks the answers with the same Schemathesis checks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crm_devstack.launcher import Stack, start_stack
from crm_devstack.progress import wait_until
from crm_devstack.services import SERVICES, repo_root
from crm_shared import API_KEY_HEADER

pytestmark = [pytest.mark.kafka]

ROOT = repo_root()
# One service's run takes 5-60 s on a loaded 2-core machine; the bound is for a hung run.
RUN_TIMEOUT_SECONDS = 600
_PROBLEM_JSON = "application/problem+json"
# Where the Schemathesis report's failing cases and errors start.
_FIRST_REPORT_SECTION = re.compile(r"^=+ (ERRORS|FAILURES) =+$", re.MULTILINE)
# The checks schemathesis.toml enables, less ignored_auth (the key test below covers it).
_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# How long an effect may take to travel between services over Kafka, or to be delivered.
_WAIT_SECONDS = 180.0  # a bound on waiting for a state, generous for a loaded machine
_T = TypeVar("_T")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(data_dir=tmp_path_factory.mktemp("fuzzed-stack"), free_ports=True) as running:
        yield running


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 120)
@pytest.mark.parametrize("service", [spec.name for spec in SERVICES])
def test_schemathesis_finds_no_server_error_or_undocumented_answer(
    stack: Stack, service: str, tmp_path: Path
) -> None:
    report_path = tmp_path / "schemathesis.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{stack.urls[service]}/openapi.json",
        "--header",
        f"{API_KEY_HEADER}: {stack.api_key}",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
    ]
    started = time.monotonic()
    # The working directory holds schemathesis.toml and the hooks module it names.
    run = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS
    )
    seconds = time.monotonic() - started
    assert report_path.exists(), f"Schemathesis did not run:\n{run.stdout}\n{run.stderr}"
    report: dict[str, Any] = json.loads(report_path.read_text())
    operations, cases = report["operations"], report["test_cases"]
    print(
        f"\n{service}: {cases['generated']} cases over {operations['tested']} operations "
        f"in {seconds:.0f} s"
    )

    assert run.returncode == 0, _failing_cases(run.stdout, run.stderr)
    # Every operation was fuzzed: none skipped, filtered out or stopped by an error.
    assert operations["selected"] == operations["total"] == operations["tested"], operations
    assert operations["errored"] == operations["skipped"] == 0, operations
    assert cases["generated"] >= operations["total"], cases


@pytest.mark.parametrize("service", [spec.name for spec in SERVICES])
def test_every_operation_with_a_security_requirement_refuses_a_missing_or_wrong_key(
    stack: Stack, service: str
) -> None:
    with httpx.Client(base_url=stack.urls[service], timeout=30, trust_env=False) as client:
        document = client.get("/openapi.json").json()
        guarded = [
            (method.upper(), path)
            for path, operations in document["paths"].items()
            for method, operation in operations.items()
            if operation.get("security")
        ]
        assert guarded, f"{service} declares no operation that needs a key"
        for method, path in guarded:
            # Path parameters need only match their route: the key is checked first.
            url = re.sub(r"\{[^}]+\}", "x", path)
            for headers in ({}, {API_KEY_HEADER: "crm_not-a-key"}):
                response = client.request(method, url, headers=headers)
                what = f"{method} {path} with {'a wrong' if headers else 'no'} key"
                assert response.status_code == 401, f"{what}: {response.status_code}"
                assert response.headers["content-type"] == _PROBLEM_JSON, what
                assert response.json()["status"] == 401, what


def test_operations_random_data_cannot_bring_to_success_answer_as_documented(
    stack: Stack,
) -> None:
    check = _Checker(stack)
    now = datetime.now(UTC)
    run = f"fuzz-{uuid.uuid4().hex[:12]}"
    email = f"{run}@example.com"

    # profile-service: a merge needs two customers that exist.
    customer = _created(check, email, time_zone=_zone_at_midday(now))
    duplicate = _created(check, f"{run}-other@example.com")
    check(
        "profile-service",
        "POST",
        "/v1/customers/{customer_id}/merge",
        path_parameters={"customer_id": customer},
        body={"merged_customer_id": duplicate, "reason": "same person"},
    )

    # scoring-service: a model version, and scores once a fit has seen the customer's orders.
    for days in (90, 60, 30):
        check(
            "profile-service",
            "POST",
            "/v1/orders",
            body={
                "type": "order.placed",
                "order_id": f"{run}-{days}",
                "customer": {"customer_id": customer},
                "placed_at": (now - timedelta(days=days)).isoformat(),
                "total": {"amount": "40.00", "currency": "USD"},
            },
        )
    with _client(stack, "scoring-service") as scoring:
        version = _poll(
            lambda: _fitted_version_if_scored(check, scoring, customer),
            "a fit that scores the customer",
        )
    check("scoring-service", "GET", "/v1/models/{version}", path_parameters={"version": version})
    check(
        "scoring-service",
        "GET",
        "/v1/scores/{customer_id}",
        path_parameters={"customer_id": customer},
    )

    # notification-service: messages queued for a customer it knows, delivered in-app and by
    # email, whose email carries a signed unsubscribe link. The template is this test's own:
    # the fuzz run may have changed the shipped ones.
    for channel, parts in {
        "in_app": {"title": "Checked", "body": "Hello"},
        "email": {"subject": "Checked", "text_body": "Hello"},
    }.items():
        check(
            "notification-service",
            "PUT",
            "/v1/templates/{template_id}/{channel}",
            path_parameters={"template_id": run, "channel": channel},
            # A service text: the send takes the template's category, and this customer gave
            # no marketing consent.
            body={"parts": parts, "category": "service"},
        )
    with _client(stack, "notification-service") as notification:
        _poll(
            lambda: _knows_customer(notification, customer),
            "the customer in notification-service",
        )
        for channel in ("in_app", "email"):
            sent = check(
                "notification-service",
                "POST",
                "/v1/notifications/send",
                body={"customer_id": customer, "template_id": run, "channel": channel},
            )
            check(
                "notification-service",
                "GET",
                "/v1/notifications/{notification_id}",
                path_parameters={"notification_id": sent.json()["notification_id"]},
            )
        message = _poll(lambda: _first_inbox_message(notification, customer), "the in-app message")
    check(
        "notification-service",
        "POST",
        "/v1/customers/{customer_id}/inbox/{message_id}/read",
        path_parameters={"customer_id": customer, "message_id": message},
    )
    token = _poll(lambda: _unsubscribe_token(stack, email), "the email in the mail sink")
    for method in ("GET", "POST"):
        check(
            "notification-service",
            method,
            "/v1/unsubscribe/{token}",
            path_parameters={"token": token},
            keyless=True,
        )


class _Checker:
    """Sends one request as an operation of a service's OpenAPI and applies `_CHECKS`."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._schemas: dict[str, Any] = {}

    def __call__(
        self, service: str, method: str, path: str, *, keyless: bool = False, **case: Any
    ) -> Any:
        url = self._stack.urls[service]
        if service not in self._schemas:
            self._schemas[service] = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operation = self._schemas[service][path][method]
        headers = {} if keyless else {API_KEY_HEADER: self._stack.api_key}
        answer = operation.Case(headers=headers, **case).call_and_validate(
            base_url=url, checks=_CHECKS
        )
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer


def _client(stack: Stack, service: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.urls[service],
        headers={API_KEY_HEADER: stack.api_key},
        timeout=30,
        trust_env=False,
    )


def _created(check: _Checker, email: str, **fields: str) -> str:
    created = check("profile-service", "POST", "/v1/customers", body={"email": email, **fields})
    customer_id: str = created.json()["id"]
    return customer_id


def _zone_at_midday(now: datetime) -> str:
    """An ``Etc/GMT`` zone where it is about noon at `now`, away from quiet hours (their signs
    are inverted)."""
    offset = max(-12, min(14, 12 - now.hour))
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def _fitted_version_if_scored(
    check: _Checker, scoring: httpx.Client, customer_id: str
) -> str | None:
    """Fit now; the new version if it scored the customer (the orders may still travel, and
    until the first one arrives a fit has nothing to fit: 422)."""
    if scoring.post("/v1/models/fit", json={}).status_code == 422:
        return None
    version: str = check("scoring-service", "POST", "/v1/models/fit", body={}).json()["version"]
    return version if scoring.get(f"/v1/scores/{customer_id}").status_code == 200 else None


def _knows_customer(notification: httpx.Client, customer_id: str) -> bool | None:
    """Whether `customer.created` has reached notification-service (a preview for a customer
    unknown there is a 404)."""
    preview = notification.post(
        "/v1/templates/preview",
        json={
            "channel": "in_app",
            "parts": {"title": "known?", "body": "yes"},
            "customer_id": customer_id,
        },
    )
    return preview.status_code == 200 or None


def _first_inbox_message(notification: httpx.Client, customer_id: str) -> int | None:
    items = notification.get(f"/v1/customers/{customer_id}/inbox").json()["items"]
    return int(items[0]["message_id"]) if items else None


def _unsubscribe_token(stack: Stack, email: str) -> str | None:
    """The token of the unsubscribe link in the email to `email`, once the sink has it."""
    sink = stack.mail_sink
    assert sink is not None
    parser = BytesParser(policy=policy.default)
    for path in sink.messages():
        message = parser.parsebytes(path.read_bytes())
        if message["To"] == email:
            link = re.search(r"/v1/unsubscribe/([^>]+)>", str(message["List-Unsubscribe"]))
            assert link, message["List-Unsubscribe"]
            return link.group(1)
    return None


def _poll(probe: Callable[[], _T | None], what: str) -> _T:
    return wait_until(probe, timeout=_WAIT_SECONDS, what=what)


def _failing_cases(stdout: str, stderr: str) -> str:
    """The part of the Schemathesis output that names each failing case and how to repeat it."""
    found = _FIRST_REPORT_SECTION.search(stdout)
    shown = stdout[found.start() :] if found else stdout
    return (
        "Schemathesis found failures (each with a curl line; put the key back for "
        f"[Filtered] and the service's address for this run's):\n{shown}\n{stderr}"
    )
