"""``make demo``'s last part: the shipped playbook's hold-out effect, on a simulated response.

After the replay (see ``demo``) every playbook rule has held back its share of the customers it
fired for (``suppressed``, reason ``holdout``). In 1997 nobody was messaged, so the CDNOW data
cannot say what an offer would have done; the demo's shop therefore simulates the response,
and the report is labelled as simulated:

1. the real CDNOW purchases of the 30 days after the calibration end are published (they
   happened without any message, so they are every group's baseline);
2. each customer the churn-warning retention offer treated (``SIMULATED_RULE``, assignment
   ``treatment``) who did not really buy within the window after the trigger buys with
   probability ``SIMULATED_LIFT`` (seeded): one order at a random time in the window after
   the message was due (the report's window), worth
   the mean of their own past purchases; held-out customers get nothing extra.

So the retention offer's true uplift is known (``SIMULATED_LIFT`` times the share of treated
customers without a real repurchase), and every other rule's is 0: notification-service's
``GET /v1/analytics/effects`` should find an interval covering each.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import httpx

from crm_contracts import Money, OrderPlaced, Topic
from crm_devstack.cdnow import CALIBRATION_END, cdnow_orders
from crm_devstack.demo import DemoError
from crm_devstack.launcher import Stack
from crm_devstack.progress import wait_until_idle
from crm_devstack.shop import publish_orders_now
from crm_shared import API_KEY_HEADER

SIMULATED_RULE: Final = "warning-retention-offer"
SIMULATED_LIFT: Final = 0.10
WINDOW_DAYS: Final = 30
SEED: Final = 1997
_FIRST_TRIGGER_DAY: Final = date(1997, 1, 1)
_CENT: Final = Decimal("0.01")
_PAGE: Final = 500


@dataclass(frozen=True)
class Assignment:
    """One customer a rule fired for, in its group, from when its message was due (the
    trigger plus the rule's delay: where the effect report's window starts)."""

    customer_id: str
    group: str
    due_at: datetime


@dataclass(frozen=True)
class SimulatedResponse:
    """The orders the demo's shop publishes after the replay, and the truth they encode."""

    real_follow_up: list[OrderPlaced]
    simulated: list[OrderPlaced]
    treated: int
    treated_without_real_repurchase: int

    @property
    def true_uplift(self) -> float:
        """The expected repurchase-rate uplift of ``SIMULATED_RULE`` built into the simulation."""
        if not self.treated:
            return 0.0
        return SIMULATED_LIFT * self.treated_without_real_repurchase / self.treated


@dataclass(frozen=True)
class EffectDemo:
    """What the effect step published and what notification-service measured."""

    response: SimulatedResponse
    report: dict[str, Any]


def simulate_response(
    purchases: Path, treated: Sequence[Assignment], seed: int = SEED
) -> SimulatedResponse:
    """The real purchases of the window after the calibration end, and the simulated extra
    purchases of the customers ``SIMULATED_RULE`` treated (see the module's description)."""
    window = timedelta(days=WINDOW_DAYS)
    end = CALIBRATION_END + window
    history = list(cdnow_orders(purchases, until=end))
    follow_up = [order for order in history if order.placed_at.date() > CALIBRATION_END]
    by_customer: dict[str, list[OrderPlaced]] = defaultdict(list)
    for order in history:
        by_customer[order.customer_id].append(order)
    rng = random.Random(seed)
    simulated: list[OrderPlaced] = []
    without = 0
    for assignment in sorted(treated, key=lambda a: a.customer_id):
        orders = by_customer.get(assignment.customer_id, [])
        start = assignment.due_at
        if any(start < order.placed_at <= start + window for order in orders):
            continue
        without += 1
        if rng.random() >= SIMULATED_LIFT:
            continue
        past = [o.total.amount for o in orders if o.placed_at <= start] or [Decimal("10")]
        mean = max(_CENT, (sum(past, Decimal(0)) / len(past)).quantize(_CENT))
        simulated.append(
            OrderPlaced(
                order_id=f"sim-{assignment.customer_id}",
                customer_id=assignment.customer_id,
                placed_at=start + timedelta(hours=rng.uniform(1, 24 * WINDOW_DAYS - 1)),
                total=Money(amount=mean, currency="USD"),
            )
        )
    return SimulatedResponse(follow_up, simulated, len(treated), without)


def measure_playbook_effect(
    stack: Stack, purchases: Path, orders_so_far: int, timeout: float
) -> EffectDemo:
    """Publish the simulated response, wait until every service applied it, and read the
    effect report of every rule triggered in 1997 up to the calibration end."""
    notification = stack.urls["notification-service"]
    with httpx.Client(
        headers={API_KEY_HEADER: stack.api_key}, timeout=timeout, trust_env=False
    ) as client:
        treated = _first_assignments(client, notification, SIMULATED_RULE, only_group="treatment")
        response = simulate_response(purchases, treated)
        published = publish_orders_now(
            stack.bootstrap_servers,
            [*response.real_follow_up, *response.simulated],
            source="/demo/simulated-response",
        )
        wait_until_idle(
            client,
            stack.urls,
            published_from_outside={Topic.ORDERS: orders_so_far + published},
            timeout=timeout,
        )
        params: dict[str, str | int] = {
            "from": _FIRST_TRIGGER_DAY.isoformat(),
            "to": CALIBRATION_END.isoformat(),
            "window_days": WINDOW_DAYS,
        }
        answer = client.get(f"{notification}/v1/analytics/effects", params=params)
    return EffectDemo(response, _body(answer))


def _first_assignments(
    client: httpx.Client, url: str, rule_id: str, *, only_group: str
) -> list[Assignment]:
    first: dict[str, Assignment] = {}
    for item in _delivery_log(client, url, rule_id):
        if item.get("assignment") is None:
            continue
        at = datetime.fromisoformat(item["intended_at"]).astimezone(UTC)
        known = first.get(item["customer_id"])
        if known is None or at < known.due_at:
            first[item["customer_id"]] = Assignment(item["customer_id"], item["assignment"], at)
    return [a for a in first.values() if a.group == only_group]


def _delivery_log(client: httpx.Client, url: str, rule_id: str) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": _PAGE, "rule_id": rule_id}
        if cursor:
            params["cursor"] = cursor
        page = _body(client.get(f"{url}/v1/notifications", params=params))
        yield from page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return


def _body(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise DemoError(f"{response.request.url} answered {response.status_code}: {response.text}")
    return response.json()


def render_effects(demo: EffectDemo) -> str:
    """The effect report as the demo prints it, with the simulation spelled out."""
    response = demo.response
    lines = [
        "Hold-out effect of the shipped playbook (notification-service /v1/analytics/effects)",
        f"  SIMULATED RESPONSE: the {len(response.real_follow_up):,} real CDNOW purchases of the"
        f" {WINDOW_DAYS} days after {CALIBRATION_END} (made without any message: everyone's"
        " baseline), plus",
        f"  {len(response.simulated):,} simulated ones: each of the"
        f" {response.treated_without_real_repurchase:,} customers {SIMULATED_RULE} treated who"
        f" did not really buy in the window buys with probability {SIMULATED_LIFT:.0%}",
        f"  (seed {SEED}, worth their mean past purchase). True repurchase uplift built in:"
        f" {SIMULATED_RULE} {100 * response.true_uplift:+.1f} percentage points, every other"
        " rule 0.",
        f"  Triggers {_FIRST_TRIGGER_DAY} to {CALIBRATION_END}, window {WINDOW_DAYS} days;"
        " groups compared as assigned; 95% intervals.",
        f"  {'rule':<24} {'treated':>7} {'held':>5} {'rebuy T':>7} {'rebuy H':>7}"
        f"  {'uplift (95% CI)':<26} {'$/cust T':>8} {'$/cust H':>8}  saved/lost T | H",
    ]
    for rule in demo.report["rules"]:
        lines.append("  " + _rule_line(rule))
    if not demo.report["rules"]:
        lines.append("  (no rule assigned any customer)")
    return "\n".join(lines)


def _rule_line(rule: dict[str, Any]) -> str:
    treated, held = rule["treated"], rule["held_out"]
    uplift = rule["repurchase_uplift"]
    interval = (
        "-"
        if uplift is None
        else f"{uplift['absolute']['estimate']:+.1%} ({uplift['absolute']['low']:+.1%},"
        f" {uplift['absolute']['high']:+.1%})"
    )
    warnings = "-"
    if treated["churn_warnings"] is not None:
        t, h = treated["churn_warnings"], held["churn_warnings"]
        warnings = f"{t['saved']}/{t['lost']} | {h['saved']}/{h['lost']}"
    return (
        f"{rule['rule_id']:<24} {treated['customers']:>7,} {held['customers']:>5,}"
        f" {_rate(treated):>7} {_rate(held):>7}  {interval:<26}"
        f" {_money(treated):>8} {_money(held):>8}  {warnings}"
    )


def _rate(group: dict[str, Any]) -> str:
    rate = group["repurchase_rate"]
    return "-" if rate is None else f"{rate:.1%}"


def _money(group: dict[str, Any]) -> str:
    per = group["revenue_per_customer"]
    return "-" if per is None else f"${Decimal(per['amount']):,.2f}"
