"""``make demo``: the CDNOW purchases through the running system, and what a retention team sees.

The replay, step by step (`replay_cdnow`):

1. publish every purchase of the calibration period (to 30 Sep 1997) as ``order.placed`` with
   its own time, keyed by customer, and wait until scoring- and lifecycle-service applied them;
2. fit scoring-service's models as of 30 Sep 1997, and wait until every customer's first
   scores reached lifecycle-service;
3. run lifecycle-service's aging sweep as of 30 Sep 1997, and wait until the stage changes and
   warnings went through notification-service's playbook and every message was decided;
4. publish *simulated* feedback for September 1997 (complaints, tickets, NPS and CSAT answers,
   return requests: CDNOW has none, see `simulated_feedback`) on crm.activities, as a help desk
   would, and wait until lifecycle-service applied it (complaint surges and valuable detractors
   warn; notification's playbook apologises for complaints).

Then `render_report` shows stages, RFM segments, value tiers, grades, clusters, warnings by
tier and what became of the messages. The stack runs with the settings in `DEMO_SETTINGS`:
the replay's clock is 1997, so nothing may run on today's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx

from crm_contracts import OrderPlaced, Topic
from crm_devstack.cdnow import CALIBRATION_END, cdnow_orders
from crm_devstack.databases import sqlite_file
from crm_devstack.launcher import Stack
from crm_devstack.progress import (
    EventCounts,
    event_counts,
    wait_for_processed,
    wait_until,
    wait_until_idle,
)
from crm_devstack.services import SERVICES
from crm_devstack.shop import publish_orders_now, publish_payloads
from crm_devstack.simulated_feedback import SOURCE as FEEDBACK_SOURCE
from crm_devstack.simulated_feedback import simulated_feedback
from crm_devstack.wiring import NO_SCHEDULED_JOBS
from crm_shared import API_KEY_HEADER

AS_OF: Final = datetime.combine(CALIBRATION_END, datetime.min.time(), tzinfo=UTC)
DEMO_SETTINGS: Final = {
    # Fits, re-scores and sweeps as of today would age every 1997 customer out: the demo runs
    # them itself, as of 30 Sep 1997.
    **NO_SCHEDULED_JOBS,
    # Messages for 1997 triggers are normally dropped as a replay (older than a week); here the
    # playbook runs on them, and today's quiet hours do not hold them back.
    "NOTIFICATION_MAX_TRIGGER_AGE_HOURS": "0",
    "NOTIFICATION_QUIET_HOURS_START": "00:00",
    "NOTIFICATION_QUIET_HOURS_END": "00:00",
    # A replay brings thousands of messages due at once; decide them in bigger rounds.
    "NOTIFICATION_DELIVERY_BATCH_SIZE": "2000",
}
STEP_TIMEOUT_SECONDS: Final = 600.0
_PAGE: Final = 500
_SIDE_FILES: Final = ("-wal", "-shm", "-journal")
_SERVICES: Final = (
    "profile-service",
    "scoring-service",
    "lifecycle-service",
    "notification-service",
)

_logger = logging.getLogger("crm_devstack.demo")


class DemoError(RuntimeError):
    """The stack answered the demo in a way it cannot go on from; the message says how."""


@dataclass
class DemoReport:
    """What the replay did, and what the services say afterwards."""

    orders: int = 0
    customers: int = 0
    customer_ids: list[str] = field(default_factory=list)
    feedback_events: int = 0  # simulated, on crm.activities
    feedback: dict[str, Any] = field(default_factory=dict)
    nps: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)
    segments: dict[str, Any] = field(default_factory=dict)
    # The published churn risk against who really stayed silent after the calibration end.
    churn_holdout: ChurnHoldout | None = None
    warnings: dict[str, Any] = field(default_factory=dict)
    # (rule, status, channel or suppression reason) -> messages
    messages: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    rule_order: list[str] = field(default_factory=list)  # the playbook's rules, as it lists them


def forget_previous_replay(data_dir: Path) -> None:
    """Delete the services' SQLite files in `data_dir`: a replay starts from empty databases
    (the same orders again would count twice in places that go by event, not order, id)."""
    for spec in SERVICES:
        database = sqlite_file(data_dir, spec)
        for path in (database, *(database.with_name(database.name + end) for end in _SIDE_FILES)):
            path.unlink(missing_ok=True)


def replay_cdnow(
    stack: Stack, purchases: Path, *, timeout: float = STEP_TIMEOUT_SECONDS
) -> DemoReport:
    """Replay the purchases in `purchases` through `stack` (started with `DEMO_SETTINGS`).

    `timeout` bounds each wait for the services to catch up.
    """
    missing = [name for name in _SERVICES if name not in stack.services]
    if missing:
        raise DemoError(f"the demo needs every service; not running: {', '.join(missing)}")
    report = DemoReport()
    headers = {API_KEY_HEADER: stack.api_key}
    with httpx.Client(headers=headers, timeout=timeout, trust_env=False) as client:
        chain = _Chain(client, stack.urls, timeout)
        with _timed(report, "orders"):
            _publish(stack, chain, report, list(cdnow_orders(purchases)))
        with _timed(report, "scores"):
            lifecycle_published = _fit(chain, report)
        with _timed(report, "sweep"):
            _sweep(chain, report, lifecycle_published)
        with _timed(report, "feedback"):
            _simulate_feedback(stack, chain, report)
        with _timed(report, "messages"):
            _logger.info("waiting for notification-service to decide every message")
            chain.wait_until_idle(report.orders, feedback=report.feedback_events)
            wait_until(
                lambda: _all_decided(client, chain.urls["notification-service"]),
                timeout=timeout,
                what="notification-service deciding every message",
            )
        with _timed(report, "report"):
            _collect(chain, report)
            report.churn_holdout = _churn_holdout(chain, report, purchases)
    return report


@dataclass(frozen=True)
class ChurnHoldout:
    """Published churn risks (and the model's own probabilities) beside who stayed silent."""

    horizon_days: int
    published: list[float]
    model: list[float]
    silent: list[bool]


def _churn_holdout(chain: _Chain, report: DemoReport, purchases: Path) -> ChurnHoldout | None:
    """Step 5: every customer's churn risk, and who bought within its horizon after the end."""
    calibration = report.model.get("churn_calibration") or {}
    horizon = int(calibration.get("churn_horizon_days") or 0)
    if not horizon:
        return None
    end = CALIBRATION_END + timedelta(days=horizon)
    bought = {
        order.customer_id
        for order in cdnow_orders(purchases, until=end)
        if order.placed_at.date() > CALIBRATION_END
    }
    published, model, silent = [], [], []
    for item in _pages(chain.client, chain.url("scoring-service", "/v1/scores")):
        risk = item["scores"]["churn_risk"]
        own = item["explanation"].get("churn_risk", {}).get("model_probability")
        if risk is None or own is None:
            continue
        published.append(float(risk))
        model.append(float(own))
        silent.append(item["customer_id"] not in bought)
    return ChurnHoldout(horizon, published, model, silent) if silent else None


def _pages(client: httpx.Client, url: str) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": _PAGE}
        if cursor:
            params["cursor"] = cursor
        page = _body(client.get(url, params=params))
        yield from page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return


@dataclass(frozen=True)
class _Chain:
    """The running services, as the replay talks to them."""

    client: httpx.Client
    urls: dict[str, str]
    timeout: float

    def url(self, service: str, path: str) -> str:
        return f"{self.urls[service]}{path}"

    def wait_for_processed(self, service: str, topic: str, expected: int) -> None:
        wait_for_processed(
            self.client, self.urls[service], topic, expected, timeout=self.timeout, who=service
        )

    def wait_until_idle(
        self, orders: int, *services: str, feedback: int = 0
    ) -> dict[str, EventCounts]:
        urls = {name: self.urls[name] for name in services} if services else self.urls
        outside: dict[str, int] = {Topic.ORDERS: orders}
        if feedback:
            outside[Topic.ACTIVITIES] = feedback
        return wait_until_idle(
            self.client, urls, published_from_outside=outside, timeout=self.timeout
        )


@contextlib.contextmanager
def _timed(report: DemoReport, step: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        report.seconds[step] = time.monotonic() - started


def _publish(stack: Stack, chain: _Chain, report: DemoReport, orders: list[OrderPlaced]) -> None:
    """Step 1: the purchases onto crm.orders, applied by scoring- and lifecycle-service."""
    report.customer_ids = sorted({order.customer_id for order in orders})
    report.customers = len(report.customer_ids)
    _logger.info(
        "publishing %d purchases of %d customers, up to %s",
        len(orders),
        report.customers,
        CALIBRATION_END,
    )
    report.orders = publish_orders_now(stack.bootstrap_servers, orders, source="/demo/cdnow")
    for service in ("scoring-service", "lifecycle-service"):
        chain.wait_for_processed(service, Topic.ORDERS, report.orders)


def _fit(chain: _Chain, report: DemoReport) -> int:
    """Step 2: fit and score as of the calibration end; the scores applied by lifecycle-service.

    Returns how many events lifecycle-service has published by then.
    """
    _logger.info("fitting scoring-service's models as of %s", CALIBRATION_END)
    fitted = chain.client.post(chain.url("scoring-service", "/v1/models/fit"), json=_as_of())
    report.model = _body(fitted, 201)
    # A customer's first scores are one score.updated each.
    chain.wait_for_processed("lifecycle-service", Topic.SCORES, int(report.model["customers"]))
    # notification- and profile-service may still be busy; lifecycle-service is done.
    settled = chain.wait_until_idle(report.orders, "scoring-service", "lifecycle-service")
    return settled["lifecycle-service"].published_to(Topic.LIFECYCLE)


def _sweep(chain: _Chain, report: DemoReport, published_before: int) -> None:
    """Step 3: the aging sweep as of the calibration end, its events on their way."""
    _logger.info("sweeping lifecycle-service as of %s", CALIBRATION_END)
    swept = chain.client.post(chain.url("lifecycle-service", "/v1/sweeps"), json=_as_of())
    report.sweep = _body(swept, 201)
    # One event per stage change and per warning opened, updated or closed.
    expected = published_before + sum(
        int(report.sweep[count]) for count in ("moved", "warnings_raised", "warnings_closed")
    )
    url = chain.urls["lifecycle-service"]
    wait_until(
        lambda: event_counts(chain.client, url).published_to(Topic.LIFECYCLE) >= expected or None,
        timeout=chain.timeout,
        what="lifecycle-service publishing the sweep's stage changes and warnings",
    )


def _simulate_feedback(stack: Stack, chain: _Chain, report: DemoReport) -> None:
    """Step 4: simulated feedback of September 1997 onto crm.activities, applied by lifecycle."""
    reports = simulated_feedback(report.customer_ids, AS_OF)
    _logger.info("publishing %d simulated feedback reports (not CDNOW data)", len(reports))
    report.feedback_events = asyncio.run(
        publish_payloads(
            stack.bootstrap_servers,
            reports,
            time_of=lambda feedback: feedback.occurred_at,
            source=FEEDBACK_SOURCE,
        )
    )
    chain.wait_for_processed("lifecycle-service", Topic.ACTIVITIES, report.feedback_events)


def _feedback_period() -> dict[str, str]:
    last = CALIBRATION_END
    first: date = last - timedelta(days=29)
    return {"from": first.isoformat(), "to": last.isoformat()}


def _collect(chain: _Chain, report: DemoReport) -> None:
    """Step 4: what the services say now."""
    get = chain.client.get
    at = {"at": CALIBRATION_END.isoformat()}
    report.stages = _body(get(chain.url("lifecycle-service", "/v1/analytics/stages"), params=at))
    report.segments = _body(get(chain.url("scoring-service", "/v1/segments")))
    report.warnings = _body(get(chain.url("lifecycle-service", "/v1/analytics/warnings")))
    period = _feedback_period()
    report.feedback = _body(
        get(chain.url("lifecycle-service", "/v1/analytics/feedback"), params=period)
    )
    report.nps = _body(
        get(
            chain.url("lifecycle-service", "/v1/analytics/nps"),
            params=period | {"segment_by": "value_tier"},
        )
    )
    rules = _body(get(chain.url("notification-service", "/v1/rules")))
    report.rule_order = [rule["rule_id"] for rule in rules]
    for message in _delivery_log(chain.client, chain.urls["notification-service"]):
        suppressed = message["status"] == "suppressed"
        outcome = message["reason"] if suppressed else message["channel"]
        key = (message["rule_id"] or "send-now", message["status"], outcome or "-")
        report.messages[key] += 1


def _as_of() -> dict[str, str]:
    return {"as_of": AS_OF.isoformat()}


def _body(response: httpx.Response, expected_status: int = 200) -> Any:
    if response.status_code != expected_status:
        raise DemoError(f"{response.request.url} answered {response.status_code}: {response.text}")
    return response.json()


def _all_decided(client: httpx.Client, url: str) -> bool | None:
    for status in ("scheduled", "sending"):
        page = _body(client.get(f"{url}/v1/notifications", params={"status": status, "limit": 1}))
        if page["items"]:
            return None
    return True


def _delivery_log(client: httpx.Client, url: str) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": _PAGE}
        if cursor:
            params["cursor"] = cursor
        page = _body(client.get(f"{url}/v1/notifications", params=params))
        yield from page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return
