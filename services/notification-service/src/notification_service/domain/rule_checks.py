"""The checks a due message of a rule passes before the customer's channels are looked at.

In order: the rule still exists and is enabled, it does not rest on profiling a customer who
objects to it, the message still applies (not too old, the
customer has not bought since a trigger that asked for that), then the rule's hold-out group
(see ``domain.holdout``). A one-off send has no rule: it gets an ad-hoc one and no group.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from crm_contracts import Category, NotificationChannel
from crm_shared import as_utc
from notification_service.db.models import Contact, Notification
from notification_service.domain.delivery_policy import Suppression
from notification_service.domain.holdout import HOLDOUT, group_of
from notification_service.domain.playbooks import (
    CUSTOMER_CREATED,
    PlaybookRule,
    cancelled_by_purchase,
)
from notification_service.domain.profiling import rests_on_profiling


def rule_of(notification: Notification, rules: dict[str, PlaybookRule]) -> PlaybookRule:
    """The notification's rule as it stands now; a one-off send gets an ad-hoc rule."""
    if notification.rule_id is not None and notification.rule_id in rules:
        return rules[notification.rule_id]
    return PlaybookRule(
        rule_id=notification.rule_id or "send-now",
        name="one-off send",
        event_type=CUSTOMER_CREATED,
        template_id=notification.template_id,
        channels=tuple(NotificationChannel(c) for c in notification.channels),
        category=Category(notification.category),
        enabled=notification.rule_id is None,  # a deleted rule sends nothing more
    )


def refusal(
    notification: Notification,
    rule: PlaybookRule,
    contact: Contact | None,
    objects_to_profiling: bool,
    max_trigger_age: timedelta | None,
    now: datetime,
) -> Suppression | None:
    """Why the message no longer applies at all (before any customer is assigned a group)."""
    if not rule.enabled:
        return Suppression("rule_disabled", f"rule {rule.rule_id} is disabled or deleted")
    if objects_to_profiling and rests_on_profiling(rule, notification.trigger_type):
        return Suppression(
            "profiling_objection", "acts on scores or a churn warning; the customer objects"
        )
    overdue = now - as_utc(notification.intended_at)
    if max_trigger_age is not None and overdue > max_trigger_age:
        return Suppression("no_longer_applies", "due too long ago (a replay of old events?)")
    trigger_at = notification.trigger_at
    last_order = contact.last_order_at if contact is not None else None
    if trigger_at is not None and cancelled_by_purchase(rule, as_utc(trigger_at), last_order):
        return Suppression("no_longer_applies", "the customer bought again since the trigger")
    return None


def holdout(notification: Notification, rule: PlaybookRule) -> Suppression | None:
    """Record the rule's group for the customer; suppress the message of a held-out one.

    Checked after the rule still applies and before contact, consent, quiet hours and the cap,
    so both groups are the customers the rule fired for, whatever their reachability: the
    effect report compares them as assigned (intention to treat).
    """
    if notification.rule_id is None:
        return None  # a one-off send belongs to no rule's experiment
    share = rule.effective_holdout_share
    group = group_of(notification.rule_id, notification.customer_id, share)
    notification.assignment = group
    if group == HOLDOUT:
        return Suppression("holdout", f"in the control group of {rule.rule_id} ({share:.0%})")
    return None
