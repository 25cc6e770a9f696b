"""The rule form's fields as notification-service's rule body, and the outcome counts per rule.

The console converts only what a form cannot carry (text to a list, a number, an object);
it judges nothing: every rule is validated by notification-service, whose messages are shown
next to the field they name.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RULE_FIELDS = (
    "name",
    "enabled",
    "event_type",
    "template_id",
    "channels",
    "category",
    "priority",
    "delay",
    "conditions",
)
EVENT_TYPES = ("churn.warning", "lifecycle.stage_changed", "customer.created", "order.placed")
CATEGORIES = ("marketing", "service")


@dataclass(frozen=True)
class RuleForm:
    """A rule as the edit form shows it: every field as text."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)


def form_of_rule(rule: Mapping[str, Any]) -> RuleForm:
    """The form filled with a stored rule."""
    return RuleForm(
        {
            "name": str(rule.get("name", "")),
            "enabled": "on" if rule.get("enabled", True) else "",
            "event_type": str(rule.get("event_type", "")),
            "template_id": str(rule.get("template_id", "")),
            "channels": ", ".join(rule.get("channels") or []),
            "category": str(rule.get("category", "")),
            "priority": str(rule.get("priority", 0)),
            "delay": str(rule.get("delay", "PT0S")),
            "conditions": json.dumps(rule.get("conditions") or {}, indent=2, sort_keys=True),
        }
    )


def rule_body(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The PUT body from the submitted form, and the fields the console could not read."""
    errors: dict[str, str] = {}
    priority_text = form.get("priority", "").strip()
    priority: int | str = priority_text  # not a number: sent as it is, the service says why
    with contextlib.suppress(ValueError):
        priority = int(priority_text)
    try:
        conditions = json.loads(form.get("conditions") or "{}")
    except json.JSONDecodeError as error:
        errors["conditions"] = f"not valid JSON: {error.msg} (line {error.lineno})"
        conditions = {}
    body = {
        "name": form.get("name", ""),
        "enabled": form.get("enabled") == "on",
        "event_type": form.get("event_type", ""),
        "template_id": form.get("template_id", ""),
        "channels": [c.strip() for c in form.get("channels", "").split(",") if c.strip()],
        "category": form.get("category", ""),
        "priority": priority,
        "delay": form.get("delay", "").strip(),
        "conditions": conditions,
    }
    return body, errors


@dataclass
class RuleOutcomes:
    """What one rule's messages became: sent, failed, waiting, and suppressed per reason."""

    sent: int = 0
    failed: int = 0
    waiting: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)

    @property
    def suppressed_total(self) -> int:
        """Every suppressed message, whatever the reason."""
        return sum(self.suppressed.values())


def outcomes_by_rule(counts: Iterable[Mapping[str, Any]]) -> dict[str, RuleOutcomes]:
    """The service's (rule, status, reason) counts, gathered per rule ('send-now': no rule)."""
    found: dict[str, RuleOutcomes] = defaultdict(RuleOutcomes)
    for count in counts:
        outcome = found[count.get("rule_id") or "send-now"]
        messages = int(count["messages"])
        status = count["status"]
        if status == "sent":
            outcome.sent += messages
        elif status == "failed":
            outcome.failed += messages
        elif status == "suppressed":
            outcome.suppressed[count.get("reason") or "unknown"] += messages
        else:
            outcome.waiting += messages
    return dict(found)
