"""The checks a due message of a rule passes before the customer's channels are looked at.

In order: the rule still exists and is enabled, it does not rest on profiling a customer who
objects to it, the message still applies (not too old, the
customer has not bought since a trigger that asked for that), then the rule's hold-out group
(see ``domain.holdout``). A one-off send has no rule: it gets an ad-hoc one and no group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_contracts import Category, NotificationChannel
from notification_service.domain.delivery_policy import Suppression
from notification_service.domain.holdout import HOLDOUT, Group, group_of
from notification_service.domain.playbooks import (
    CUSTOMER_CREATED,
    PlaybookRule,
    cancelled_by_purchase,
)
from notification_service.domain.profiling import rests_on_profiling


@dataclass(frozen=True)
class DueMessage:
    """The fields of a due notification row that decide its delivery (times in UTC)."""

    notification_id: str
    customer_id: str
    rule_id: str | None
    template_id: str
    channels: tuple[NotificationChannel, ...]
    category: Category
    priority: int
    intended_at: datetime
    trigger_event_id: str | None = None
    trigger_type: str | None = None
    trigger_at: datetime | None = None


def rule_of(message: DueMessage, rules: Mapping[str, PlaybookRule]) -> PlaybookRule:
    """The message's rule as it stands now; a one-off send gets an ad-hoc rule."""
    if message.rule_id is not None and message.rule_id in rules:
        return rules[message.rule_id]
    return PlaybookRule(
        rule_id=message.rule_id or "send-now",
        name="one-off send",
        event_type=CUSTOMER_CREATED,
        template_id=message.template_id,
        channels=message.channels,
        category=message.category,
        enabled=message.rule_id is None,  # a deleted rule sends nothing more
    )


def refusal(
    message: DueMessage,
    rule: PlaybookRule,
    last_order_at: datetime | None,
    objects_to_profiling: bool,
    max_trigger_age: timedelta | None,
    now: datetime,
) -> Suppression | None:
    """Why the message no longer applies at all (before any customer is assigned a group)."""
    if not rule.enabled:
        return Suppression("rule_disabled", f"rule {rule.rule_id} is disabled or deleted")
    if objects_to_profiling and rests_on_profiling(rule, message.trigger_type):
        return Suppression(
            "profiling_objection", "acts on scores or a churn warning; the customer objects"
        )
    overdue = now - message.intended_at
    if max_trigger_age is not None and overdue > max_trigger_age:
        return Suppression("no_longer_applies", "due too long ago (a replay of old events?)")
    trigger_at = message.trigger_at
    if trigger_at is not None and cancelled_by_purchase(rule, trigger_at, last_order_at):
        return Suppression("no_longer_applies", "the customer bought again since the trigger")
    return None


def holdout(message: DueMessage, rule: PlaybookRule) -> tuple[Suppression | None, Group | None]:
    """The rule's group for the customer, and the suppression of a held-out one's message.

    Checked after the rule still applies and before contact, consent, quiet hours and the cap,
    so both groups are the customers the rule fired for, whatever their reachability: the
    effect report compares them as assigned (intention to treat).
    """
    if message.rule_id is None:
        return None, None  # a one-off send belongs to no rule's experiment
    share = rule.effective_holdout_share
    group = group_of(message.rule_id, message.customer_id, share)
    if group == HOLDOUT:
        return Suppression(
            "holdout", f"in the control group of {rule.rule_id} ({share:.0%})"
        ), group
    return None, group
