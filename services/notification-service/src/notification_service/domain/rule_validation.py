"""Cross-field checks of a playbook rule: names known, ranges kept, facts the event carries.

A rule document of the right shape (``rule_documents``) can still be unusable: an unknown
stage, a churn-risk range upside down, a condition on a fact its event type never carries.
:func:`validate_rule` and :func:`validate_playbook` name every problem by field path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from datetime import timedelta
from typing import Final

from crm_contracts import (
    Category,
    FeedbackKind,
    Grade,
    NotificationChannel,
    Stage,
    Survey,
    ValueTier,
)
from crm_shared.rule_documents import RuleProblem
from notification_service.domain.conditions import NAME_SET_FIELDS, Conditions
from notification_service.domain.holdout import MAX_HOLDOUT_SHARE
from notification_service.domain.playbooks import PlaybookRule
from notification_service.domain.triggers import (
    ACTIVITY_RECORDED,
    CHURN_WARNING,
    FEEDBACK_RECORDED,
    MATCHABLE_EVENT_TYPES,
    ORDER_PLACED,
    STAGE_CHANGED,
)

__all__ = ["MAX_PRIORITY", "validate_playbook", "validate_rule"]

_WARNING_STATUSES: Final = frozenset({"open", "updated", "saved", "lost"})
_RECOMMENDED_ACTIONS: Final = frozenset({"account_manager_task", "retention_offer"})
# Lower-case slugs: rule ids appear in URLs, dedup keys and published events.
_RULE_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
# A rank among a few dozen rules; bounded so every message's priority fits a 32-bit column.
MAX_PRIORITY: Final = 1_000_000
# Facts only one event type carries; a condition on them under another event never matches.
_FACT_SOURCES: Final = {
    "previous_stages": STAGE_CHANGED,
    "recommended_actions": CHURN_WARNING,
    "first_order_only": ORDER_PLACED,
    "activity_types": ACTIVITY_RECORDED,
    "feedback_kinds": FEEDBACK_RECORDED,
    "surveys": FEEDBACK_RECORDED,
    "survey_score_min": FEEDBACK_RECORDED,
    "survey_score_max": FEEDBACK_RECORDED,
}


def validate_rule(
    rule: PlaybookRule, known_template_ids: Collection[str] | None = None
) -> list[RuleProblem]:
    """Every problem with ``rule``; an empty list means it can go live.

    ``known_template_ids``: when given, the template must be one of them.
    """
    problems: list[RuleProblem] = []

    def problem(path: str, message: str) -> None:
        problems.append(RuleProblem(path, message))

    if not _RULE_ID.fullmatch(rule.rule_id):
        problem("rule_id", "must be a lower-case slug of letters, digits, '.', '_' or '-'")
    if not rule.name.strip():
        problem("name", "must not be empty")
    if rule.event_type not in MATCHABLE_EVENT_TYPES:
        problem("event_type", f"unknown event type; one of {sorted(MATCHABLE_EVENT_TYPES)}")
    if not rule.template_id.strip():
        problem("template_id", "must not be empty")
    elif known_template_ids is not None and rule.template_id not in known_template_ids:
        problem("template_id", f"unknown template {rule.template_id!r}")
    if not rule.channels:
        problem("channels", "needs at least one channel")
    seen: set[NotificationChannel] = set()
    for index, channel in enumerate(rule.channels):
        if channel in seen:
            problem(f"channels.{index}", f"{channel.value} is listed twice")
        seen.add(channel)
        if channel is NotificationChannel.WEBHOOK and rule.category is Category.MARKETING:
            problem(
                f"channels.{index}",
                "webhook posts to the internal account-management hook; "
                "a marketing rule must reach the customer",
            )
    if rule.priority < 0:
        problem("priority", "must not be negative")
    elif rule.priority > MAX_PRIORITY:
        problem("priority", f"must be at most {MAX_PRIORITY:,}")
    if rule.delay < timedelta(0):
        problem("delay", "must not be negative")
    if rule.holdout_share is not None and not 0.0 <= rule.holdout_share <= MAX_HOLDOUT_SHARE:
        problem("holdout_share", f"must be between 0 and {MAX_HOLDOUT_SHARE}")
    _validate_conditions(rule.conditions, rule.event_type, problem)
    return problems


def _validate_conditions(
    conditions: Conditions, event_type: str, problem: Callable[[str, str], None]
) -> None:
    known_names = {
        "stages": {s.value for s in Stage},
        "previous_stages": {s.value for s in Stage},
        "tiers": {t.value for t in ValueTier},
        "grades": {g.value for g in Grade},
        "recommended_actions": _RECOMMENDED_ACTIONS,
        "feedback_kinds": {kind.value for kind in FeedbackKind},
        "surveys": {survey.value for survey in Survey},
    }
    for name in NAME_SET_FIELDS:
        values: frozenset[str] | None = getattr(conditions, name)
        if values is None:
            continue
        if not values:
            problem(f"conditions.{name}", "an empty list matches nothing; use null for any")
        allowed = known_names.get(name)
        for unknown in sorted(values - allowed) if allowed is not None else ():
            problem(f"conditions.{name}", f"unknown name {unknown!r}")
    if not conditions.warning_statuses:
        problem("conditions.warning_statuses", "an empty list matches no warning")
    for unknown in sorted(conditions.warning_statuses - _WARNING_STATUSES):
        problem("conditions.warning_statuses", f"unknown status {unknown!r}")
    for name in ("churn_risk_min", "churn_risk_max"):
        value = getattr(conditions, name)
        if value is not None and not 0.0 <= value <= 1.0:
            problem(f"conditions.{name}", "must be between 0 and 1")
    low, high = conditions.churn_risk_min, conditions.churn_risk_max
    if low is not None and high is not None and low > high:
        problem("conditions.churn_risk_max", "must be at least churn_risk_min")
    for name in ("survey_score_min", "survey_score_max"):
        score = getattr(conditions, name)
        if score is not None and not 0 <= score <= 10:
            problem(f"conditions.{name}", "must be between 0 and 10")
    lowest, highest = conditions.survey_score_min, conditions.survey_score_max
    if lowest is not None and highest is not None and lowest > highest:
        problem("conditions.survey_score_max", "must be at least survey_score_min")
    for name, source in _FACT_SOURCES.items():
        if getattr(conditions, name) not in (None, False) and event_type != source:
            problem(f"conditions.{name}", f"only {source} events carry it, so the rule never fires")


def validate_playbook(
    rules: Sequence[PlaybookRule], known_template_ids: Collection[str] | None = None
) -> list[RuleProblem]:
    """Every problem with a rule set: each rule's (as ``rules.<i>.<field>``) and duplicate ids."""
    problems: list[RuleProblem] = []
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        problems.extend(
            RuleProblem(f"rules.{index}.{p.field}", p.message)
            for p in validate_rule(rule, known_template_ids)
        )
        if rule.rule_id in seen:
            problems.append(RuleProblem(f"rules.{index}.rule_id", f"duplicate id {rule.rule_id!r}"))
        seen.add(rule.rule_id)
    return problems
