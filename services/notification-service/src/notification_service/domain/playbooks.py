"""Playbook rules: which event calls for which message, to whom, on which channel, and when.

A rule (:class:`PlaybookRule`) matches one event type and a set of :class:`Conditions` on a
:class:`Trigger`, the normalised view of the incoming event. Conditions left as ``None`` match
anything; a condition on a fact the trigger does not carry does not match (a rule for
``tiers={"growth"}`` never fires for a customer whose tier is unknown). ``churn.warning``
triggers match only newly ``open`` warnings by default, so an ``updated`` warning does not
message the customer again. ``activity.recorded`` and ``feedback.recorded`` triggers carry the
activity type, or the feedback kind, survey and score: an apology after a complaint, a
reminder after an abandoned cart, a call after a detractor's answer. Every trigger goes
through the same consent, cap and quiet-hour policy as the others (by the rule's category).

Rules are edited through the API, so they have a JSON round trip (:meth:`PlaybookRule.to_dict`,
:meth:`PlaybookRule.from_dict`) and validators that name every problem by field path
(:func:`validate_rule`, :func:`validate_playbook`). :data:`DEFAULT_RULES` are the shipped
defaults; how they keep customers sliding toward churn from getting more messages is the
delivery policy's stricter cap (see ``delivery_policy``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

from pydantic import TypeAdapter, ValidationError

from crm_contracts import (
    ActivityRecorded,
    Category,
    ChurnWarning,
    CustomerCreated,
    FeedbackKind,
    FeedbackRecorded,
    Grade,
    NotificationChannel,
    OrderPlaced,
    Stage,
    StageChanged,
    Survey,
    ValueTier,
)
from notification_service.domain.holdout import MAX_HOLDOUT_SHARE, default_holdout_share

__all__ = [
    "ACTIVITY_RECORDED",
    "CHURN_WARNING",
    "CUSTOMER_CREATED",
    "FEEDBACK_RECORDED",
    "MATCHABLE_EVENT_TYPES",
    "ORDER_PLACED",
    "STAGE_CHANGED",
    "Conditions",
    "InvalidPlaybookRule",
    "PlaybookRule",
    "RuleProblem",
    "Trigger",
    "cancelled_by_purchase",
    "dedup_key",
    "due_at",
    "matching_rules",
    "validate_playbook",
    "validate_rule",
]

CHURN_WARNING: Final = ChurnWarning.event_type
STAGE_CHANGED: Final = StageChanged.event_type
CUSTOMER_CREATED: Final = CustomerCreated.event_type
ORDER_PLACED: Final = OrderPlaced.event_type
ACTIVITY_RECORDED: Final = ActivityRecorded.event_type
FEEDBACK_RECORDED: Final = FeedbackRecorded.event_type
MATCHABLE_EVENT_TYPES: Final = frozenset(
    {
        CHURN_WARNING,
        STAGE_CHANGED,
        CUSTOMER_CREATED,
        ORDER_PLACED,
        ACTIVITY_RECORDED,
        FEEDBACK_RECORDED,
    }
)

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
_DURATION: Final = TypeAdapter(timedelta)


class InvalidPlaybookRule(ValueError):
    """A rule document that cannot be read; ``problems`` lists every field at fault."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with a rule: the field path (``"conditions.churn_risk_min"``) and why."""

    field: str
    message: str


@dataclass(frozen=True)
class Trigger:
    """An incoming event as rules see it: who, what, when, and the facts conditions read."""

    event_id: str
    event_type: str
    customer_id: str
    occurred_at: datetime
    stage: Stage | None = None
    previous_stage: Stage | None = None
    value_tier: ValueTier | None = None
    grade: Grade | None = None
    churn_risk: float | None = None
    rfm_segment: str | None = None
    cluster: str | None = None
    warning_status: str | None = None
    recommended_action: str | None = None
    is_first_order: bool | None = None
    activity_type: str | None = None
    feedback_kind: str | None = None
    survey: str | None = None
    survey_score: int | None = None

    def __post_init__(self) -> None:
        # Delays and quiet hours are arithmetic on instants; a naive time would shift silently.
        if self.occurred_at.utcoffset() is None:
            raise ValueError("occurred_at must be timezone-aware")

    @classmethod
    def from_churn_warning(cls, event_id: str, warning: ChurnWarning) -> Trigger:
        """A trigger for a ``churn.warning`` event with envelope id ``event_id``."""
        return cls(
            event_id=event_id,
            event_type=CHURN_WARNING,
            customer_id=warning.customer_id,
            occurred_at=warning.raised_at,
            value_tier=warning.value_tier,
            grade=warning.grade,
            churn_risk=warning.churn_risk,
            warning_status=warning.status,
            recommended_action=warning.recommended_action,
        )

    @classmethod
    def from_stage_changed(cls, event_id: str, change: StageChanged) -> Trigger:
        """A trigger for a ``lifecycle.stage_changed`` event with envelope id ``event_id``."""
        return cls(
            event_id=event_id,
            event_type=STAGE_CHANGED,
            customer_id=change.customer_id,
            occurred_at=change.changed_at,
            stage=change.stage,
            previous_stage=change.previous_stage,
        )

    @classmethod
    def from_customer_created(cls, event_id: str, created: CustomerCreated) -> Trigger:
        """A trigger for a ``customer.created`` event with envelope id ``event_id``."""
        return cls(
            event_id=event_id,
            event_type=CUSTOMER_CREATED,
            customer_id=created.customer.customer_id,
            occurred_at=created.customer.created_at,
        )

    @classmethod
    def from_order_placed(
        cls, event_id: str, order: OrderPlaced, *, is_first_order: bool
    ) -> Trigger:
        """A trigger for ``order.placed``; whether it is the first order comes from the replica."""
        return cls(
            event_id=event_id,
            event_type=ORDER_PLACED,
            customer_id=order.customer_id,
            occurred_at=order.placed_at,
            is_first_order=is_first_order,
        )

    @classmethod
    def from_activity(cls, event_id: str, activity: ActivityRecorded) -> Trigger:
        """A trigger for ``activity.recorded`` (a page view, an abandoned cart ...)."""
        return cls(
            event_id=event_id,
            event_type=ACTIVITY_RECORDED,
            customer_id=activity.customer_id,
            occurred_at=activity.occurred_at,
            activity_type=activity.activity_type,
        )

    @classmethod
    def from_feedback(cls, event_id: str, feedback: FeedbackRecorded) -> Trigger:
        """A trigger for ``feedback.recorded`` (a complaint, a ticket, a survey answer ...)."""
        return cls(
            event_id=event_id,
            event_type=FEEDBACK_RECORDED,
            customer_id=feedback.customer_id,
            occurred_at=feedback.occurred_at,
            feedback_kind=feedback.kind.value,
            survey=feedback.survey.value if feedback.survey else None,
            survey_score=feedback.score,
        )


@dataclass(frozen=True)
class Conditions:
    """What a trigger must show for a rule to fire; ``None`` means "any"."""

    stages: frozenset[str] | None = None
    previous_stages: frozenset[str] | None = None
    tiers: frozenset[str] | None = None
    grades: frozenset[str] | None = None
    churn_risk_min: float | None = None  # inclusive
    churn_risk_max: float | None = None  # inclusive
    segments: frozenset[str] | None = None  # RFM segment names
    clusters: frozenset[str] | None = None  # K-means segment labels
    recommended_actions: frozenset[str] | None = None
    first_order_only: bool = False
    activity_types: frozenset[str] | None = None  # activity.recorded: e.g. cart_abandoned
    feedback_kinds: frozenset[str] | None = None  # feedback.recorded: complaint ...
    surveys: frozenset[str] | None = None  # feedback.recorded answers: nps, csat
    survey_score_min: int | None = None  # inclusive, 0-10
    survey_score_max: int | None = None  # inclusive, 0-10
    # Applies to churn.warning only. "open" alone: a warning messages once, not on every update.
    warning_statuses: frozenset[str] = frozenset({"open"})
    # Checked when the message is due, not here: see cancelled_by_purchase.
    unless_ordered_since_trigger: bool = False

    def matches(self, trigger: Trigger) -> bool:
        """True when ``trigger`` satisfies every condition that is set."""
        risk = trigger.churn_risk
        return (
            _allows(self.stages, trigger.stage)
            and _allows(self.previous_stages, trigger.previous_stage)
            and _allows(self.tiers, trigger.value_tier)
            and _allows(self.grades, trigger.grade)
            and (self.churn_risk_min is None or (risk is not None and risk >= self.churn_risk_min))
            and (self.churn_risk_max is None or (risk is not None and risk <= self.churn_risk_max))
            and _allows(self.segments, trigger.rfm_segment)
            and _allows(self.clusters, trigger.cluster)
            and _allows(self.recommended_actions, trigger.recommended_action)
            and (not self.first_order_only or trigger.is_first_order is True)
            and _allows(self.activity_types, trigger.activity_type)
            and _allows(self.feedback_kinds, trigger.feedback_kind)
            and _allows(self.surveys, trigger.survey)
            and _within(trigger.survey_score, self.survey_score_min, self.survey_score_max)
            and (
                trigger.event_type != CHURN_WARNING
                or trigger.warning_status in self.warning_statuses
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (sets become sorted lists) that :meth:`from_dict` reads back."""
        data: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            data[spec.name] = sorted(value) if isinstance(value, frozenset) else value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conditions:
        """Read conditions from :meth:`to_dict` output; missing fields keep their defaults."""
        parsers: dict[str, Callable[[Any], Any]] = dict.fromkeys(_NAME_SET_FIELDS, _optional_names)
        parsers.update(
            churn_risk_min=_optional_number,
            churn_risk_max=_optional_number,
            survey_score_min=_optional_whole_number,
            survey_score_max=_optional_whole_number,
            first_order_only=_boolean,
            warning_statuses=_names,
            unless_ordered_since_trigger=_boolean,
        )
        values, problems = _parse(data, parsers, "conditions")
        if problems:
            raise InvalidPlaybookRule(problems)
        return cls(**values)


_NAME_SET_FIELDS: Final = (
    "stages",
    "previous_stages",
    "tiers",
    "grades",
    "segments",
    "clusters",
    "recommended_actions",
    "activity_types",
    "feedback_kinds",
    "surveys",
)


def _within(value: int | None, low: int | None, high: int | None) -> bool:
    # A bound set on a fact the trigger does not carry does not match, as for _allows.
    if low is None and high is None:
        return True
    return value is not None and (low is None or value >= low) and (high is None or value <= high)


def _allows(allowed: frozenset[str] | None, fact: str | None) -> bool:
    if allowed is None:
        return True
    return fact is not None and str(fact) in allowed


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
            "delay": _DURATION.dump_python(self.delay, mode="json"),
            "holdout_share": self.effective_holdout_share,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlaybookRule:
        """Read a rule from :meth:`to_dict` output, reporting every unreadable field at once.

        Unknown fields, missing required fields and values of the wrong shape raise
        :class:`InvalidPlaybookRule`. Names and ranges are not checked here: call
        :func:`validate_rule`.
        """
        parsers: dict[str, Callable[[Any], Any]] = {
            "rule_id": _text,
            "name": _text,
            "enabled": _boolean,
            "event_type": _text,
            "template_id": _text,
            "channels": _channels,
            "category": Category,
            "priority": _whole_number,
            "delay": _duration,
            "holdout_share": _optional_number,
        }
        values, problems = _parse({k: v for k, v in data.items() if k != "conditions"}, parsers)
        for required in ("rule_id", "name", "event_type", "template_id", "channels", "category"):
            if required not in data:
                problems.append(RuleProblem(required, "missing"))
        raw_conditions = data.get("conditions", {})
        if not isinstance(raw_conditions, Mapping):
            problems.append(RuleProblem("conditions", "expected an object"))
        else:
            try:
                values["conditions"] = Conditions.from_dict(raw_conditions)
            except InvalidPlaybookRule as error:
                problems.extend(error.problems)
        if problems:
            raise InvalidPlaybookRule(problems)
        return cls(**values)


def _parse(
    data: Mapping[str, Any], parsers: Mapping[str, Callable[[Any], Any]], path: str = ""
) -> tuple[dict[str, Any], list[RuleProblem]]:
    prefix = f"{path}." if path else ""
    values: dict[str, Any] = {}
    problems: list[RuleProblem] = []
    for name, raw in data.items():
        parser = parsers.get(name)
        if parser is None:
            problems.append(RuleProblem(f"{prefix}{name}", "unknown field"))
            continue
        try:
            values[name] = parser(raw)
        except (TypeError, ValueError) as error:
            problems.append(RuleProblem(f"{prefix}{name}", f"unreadable value {raw!r}: {error}"))
    return values, problems


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError("expected a string")
    return raw


def _boolean(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise TypeError("expected true or false")
    return raw


def _whole_number(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise TypeError("expected a whole number")
    return raw


def _optional_whole_number(raw: Any) -> int | None:
    return None if raw is None else _whole_number(raw)


def _optional_number(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise TypeError("expected a number or null")
    return float(raw)


def _names(raw: Any) -> frozenset[str]:
    if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple):
        raise TypeError("expected a list of names")
    if not all(isinstance(item, str) for item in raw):
        raise TypeError("every name must be a string")
    return frozenset(raw)


def _optional_names(raw: Any) -> frozenset[str] | None:
    return None if raw is None else _names(raw)


def _channels(raw: Any) -> tuple[NotificationChannel, ...]:
    if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple):
        raise TypeError("expected a list of channels")
    return tuple(NotificationChannel(item) for item in raw)


def _duration(raw: Any) -> timedelta:
    # ISO 8601 only: pydantic also reads "15 days" and "15:00", and one spelling is enough.
    if not isinstance(raw, str) or not raw.removeprefix("-").startswith("P"):
        raise TypeError("expected an ISO 8601 duration such as 'P15D'")
    try:
        return _DURATION.validate_python(raw)
    except ValidationError as error:
        raise ValueError("expected an ISO 8601 duration such as 'P15D'") from error


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
    for name in _NAME_SET_FIELDS:
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
