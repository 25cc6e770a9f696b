"""Playbook rules: which event calls for which message, to whom, on which channel, and when.

A rule (:class:`PlaybookRule`) matches one event type and a set of :class:`Conditions`
(``conditions``) on a :class:`Trigger` (``triggers``), the normalised view of the incoming
event. Every trigger goes through the same consent, cap and quiet-hour policy as the others
(by the rule's category): an apology after a complaint, a reminder after an abandoned cart, a
call after a detractor's answer.

Rules are edited through the API, so they have a JSON round trip (:meth:`PlaybookRule.to_dict`,
:meth:`PlaybookRule.from_dict`, whose shape is ``rule_documents``) and checks that name every
problem by field path (``rule_validation``). The shipped defaults are ``default_playbook``;
how they keep customers sliding toward churn from getting more messages is the delivery
policy's stricter cap (see ``delivery_policy``).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from crm_contracts import Category, NotificationChannel
from crm_shared.rule_documents import parse_rule_document
from notification_service.domain.conditions import Conditions
from notification_service.domain.holdout import default_holdout_share
from notification_service.domain.rule_documents import RuleDocument, duration_text

# The event types and triggers are named here too, so the scheduling code needs one import.
from notification_service.domain.triggers import (
    ACTIVITY_RECORDED,
    CHURN_WARNING,
    CUSTOMER_CREATED,
    FEEDBACK_RECORDED,
    MATCHABLE_EVENT_TYPES,
    ORDER_PLACED,
    STAGE_CHANGED,
    Trigger,
)

__all__ = [
    "ACTIVITY_RECORDED",
    "CHURN_WARNING",
    "CUSTOMER_CREATED",
    "FEEDBACK_RECORDED",
    "MATCHABLE_EVENT_TYPES",
    "ORDER_PLACED",
    "STAGE_CHANGED",
    "Conditions",
    "PlaybookRule",
    "Trigger",
    "cancelled_by_purchase",
    "dedup_key",
    "due_at",
    "matching_rules",
]


@dataclass(frozen=True)
class PlaybookRule:
    """When an event of ``event_type`` meets ``conditions``, send ``template_id`` after ``delay``.

    ``channels`` are tried in order (the first one the customer can be reached on and, for
    marketing, has consented to); ``priority`` ranks marketing messages competing for the cap.
    """

    rule_id: str
    name: str
    event_type: str
    template_id: str
    channels: tuple[NotificationChannel, ...]
    category: Category
    priority: int = 0  # higher = more valuable
    delay: timedelta = timedelta(0)
    conditions: Conditions = field(default_factory=Conditions)
    enabled: bool = True
    # The share of matched customers held back as a control group; None (not given): the
    # category's default, filled in on construction (see domain.holdout).
    holdout_share: float | None = None

    def __post_init__(self) -> None:
        if self.holdout_share is None:
            # Resolved once, so a rule equals its own JSON round trip.
            object.__setattr__(self, "holdout_share", default_holdout_share(self.category))

    @property
    def effective_holdout_share(self) -> float:
        """The share held back: the rule's own, or its category's default."""
        if self.holdout_share is not None:
            return self.holdout_share
        return default_holdout_share(self.category)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the delay as an ISO 8601 duration) that :meth:`from_dict` reads."""
        return {
            "rule_id": self.rule_id,
            "name": self.name,
            "enabled": self.enabled,
            "event_type": self.event_type,
            "conditions": self.conditions.to_dict(),
            "template_id": self.template_id,
            "channels": [channel.value for channel in self.channels],
            "category": self.category.value,
            "priority": self.priority,
            "delay": duration_text(self.delay),
            "holdout_share": self.effective_holdout_share,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlaybookRule:
        """Read a rule from :meth:`to_dict` output, reporting every unreadable field at once.

        Unknown fields, missing required fields and values of the wrong shape raise
        ``InvalidRuleDocument``. Names and ranges are not checked here: call
        ``rule_validation.validate_rule``.
        """
        document = parse_rule_document(RuleDocument, data)
        return cls(
            rule_id=document.rule_id,
            name=document.name,
            event_type=document.event_type,
            template_id=document.template_id,
            channels=document.channels,
            category=document.category,
            priority=document.priority,
            delay=document.delay,
            conditions=document.conditions.to_conditions(),
            enabled=document.enabled,
            holdout_share=document.holdout_share,
        )


def matching_rules(rules: Iterable[PlaybookRule], trigger: Trigger) -> list[PlaybookRule]:
    """The enabled rules that fire for ``trigger``, most valuable first (then by rule id)."""
    matched = [
        rule
        for rule in rules
        if rule.enabled
        and rule.event_type == trigger.event_type
        and rule.conditions.matches(trigger)
    ]
    return sorted(matched, key=lambda rule: (-rule.priority, rule.rule_id))


def due_at(rule: PlaybookRule, trigger: Trigger) -> datetime:
    """When ``rule`` wants its message sent: the event's own time plus the rule's delay."""
    # From the event's time, not its arrival, so a replay or a lagging consumer keeps the schedule.
    return trigger.occurred_at + rule.delay


def dedup_key(rule: PlaybookRule | str, customer_id: str, trigger_event_id: str) -> str:
    """The key that makes one rule notify one customer once per triggering event."""
    rule_id = rule if isinstance(rule, str) else rule.rule_id
    # Escaped so no id containing the separator can collide with another triple.
    return "/".join(_escaped(part) for part in (rule_id, customer_id, trigger_event_id))


# What ``quote(part, safe="")`` leaves as it is (RFC 3986's unreserved characters).
_UNRESERVED = string.ascii_letters + string.digits + "_.-~"


def _escaped(part: str) -> str:
    # Ids are nearly always unreserved characters only, and quote() costs far more than the
    # check: it matters at four keys per order.
    return part if not part.strip(_UNRESERVED) else quote(part, safe="")


def cancelled_by_purchase(
    rule: PlaybookRule, triggered_at: datetime, last_order_at: datetime | None
) -> bool:
    """True when ``rule`` only speaks to customers who have not bought since its trigger, and
    this one has (the triggering order itself, at ``triggered_at``, does not count)."""
    return (
        rule.conditions.unless_ordered_since_trigger
        and last_order_at is not None
        and last_order_at > triggered_at
    )
