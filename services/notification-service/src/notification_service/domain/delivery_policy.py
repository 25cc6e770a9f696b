"""Delivery policy: whether, where and when a message the playbooks asked for may go out.

In the order a message meets them:

- **Channel and consent** (:func:`choose_channel`): the first of the rule's channels the
  customer can be reached on and allows. Marketing needs a granted marketing consent for that
  channel (never asked is ``no_consent``, withdrawn is ``unsubscribed``); service messages need
  no opt-in, but a withdrawn service consent for a channel blocks it. The webhook is internal
  (the account-management hook from the settings), so it asks no consent of the customer.
- **Quiet hours** (:func:`quiet_hours_release`): a message due at night in the customer's time
  zone waits for the morning; it is never dropped for it.
- **Frequency cap** (:func:`frequency_cap_decision`): at most ``marketing_cap_count`` marketing
  messages per customer per ``marketing_cap_window``, across channels; service is exempt.
  Customers in a *sliding* stage (at risk, dormant, churned) also meet a stricter cap, and
  because it is longer than ``max_deferral`` the runners-up are dropped, not queued: fewer
  messages, not more, for customers slipping away.
- **Arbitration** (:func:`arbitrate`): when several messages for one customer are due at once,
  service ones all go and marketing ones take the cap's slots by priority.
- **Retries** (:func:`retry_delay`, :func:`next_attempt_or_fail`): transient failures back off
  exponentially with full jitter, up to ``max_attempts``.

Internal channels (:data:`INTERNAL_CHANNELS`) reach staff, not the customer: their messages are
service messages, and the caller does not hold them for the customer's quiet hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_contracts import (
    Category,
    Channel,
    NotificationChannel,
    Purpose,
    Stage,
    SuppressionReason,
)
from notification_service.domain.playbooks import PlaybookRule

__all__ = [
    "INTERNAL_CHANNELS",
    "Candidate",
    "CapDecision",
    "ChannelChoice",
    "ContactState",
    "Decision",
    "PolicySettings",
    "Suppression",
    "SuppressionReason",
    "arbitrate",
    "choose_channel",
    "frequency_cap_decision",
    "next_attempt_or_fail",
    "quiet_hours_release",
    "retry_delay",
]

INTERNAL_CHANNELS: Final = frozenset({NotificationChannel.WEBHOOK})

# Consent is recorded per profile channel. The in-app inbox is the app's channel, which
# profile-service records as push.
_CONSENT_CHANNEL: Final = {
    NotificationChannel.EMAIL: Channel.EMAIL,
    NotificationChannel.SMS: Channel.SMS,
    NotificationChannel.IN_APP: Channel.PUSH,
    NotificationChannel.WEBHOOK: Channel.WEBHOOK,
}
# When no channel works, the reason that says most about the customer's wishes is reported.
_REFUSAL_PRECEDENCE: Final[tuple[SuppressionReason, ...]] = (
    "unsubscribed",
    "no_consent",
    "no_contact",
)


@dataclass(frozen=True)
class PolicySettings:
    """The numbers of the delivery policy (defaults: the product's shipped policy)."""

    marketing_cap_count: int = 1
    marketing_cap_window: timedelta = timedelta(hours=72)
    # Customers slipping away get fewer messages: this cap applies on top of the one above.
    sliding_stages: frozenset[Stage] = frozenset({Stage.AT_RISK, Stage.DORMANT, Stage.CHURNED})
    sliding_cap_count: int = 1
    sliding_cap_window: timedelta = timedelta(days=7)
    # A marketing message held back longer than this past its due time is no longer worth it.
    max_deferral: timedelta = timedelta(hours=72)
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(9, 0)  # equal to start: no quiet hours
    max_attempts: int = 5
    backoff_base: timedelta = timedelta(minutes=1)
    backoff_max: timedelta = timedelta(minutes=30)
    account_management_webhook_url: str | None = None

    def __post_init__(self) -> None:
        problems = [
            f"{name}: must be at least 1"
            for name in ("marketing_cap_count", "sliding_cap_count", "max_attempts")
            if getattr(self, name) < 1
        ]
        problems += [
            f"{name}: must be positive"
            for name in ("marketing_cap_window", "sliding_cap_window", "backoff_base")
            if getattr(self, name) <= timedelta(0)
        ]
        if self.max_deferral < timedelta(0):
            problems.append("max_deferral: must not be negative")
        if self.backoff_max < self.backoff_base:
            problems.append("backoff_max: must be at least backoff_base")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class ContactState:
    """The replica of one customer that delivery decisions read.

    ``consents`` holds the latest consent per (channel, purpose): ``True`` granted, ``False``
    withdrawn (the customer unsubscribed); a pair never recorded is absent.
    """

    customer_id: str
    time_zone: str | None = None
    email: str | None = None
    phone: str | None = None
    has_inbox: bool = True  # an account whose in-app inbox can hold messages
    consents: Mapping[tuple[Channel, Purpose], bool] = field(default_factory=dict)
    stage: Stage | None = None
    last_order_at: datetime | None = None
    # The customer's newest profiling decision is an objection (GDPR art. 21/22).
    objects_to_profiling: bool = False


@dataclass(frozen=True)
class ChannelChoice:
    """Where a message goes: the channel and its address (the customer id for the inbox)."""

    channel: NotificationChannel
    address: str


@dataclass(frozen=True)
class Suppression:
    """Why a message is held back for good; ``channel`` is None when none could be chosen."""

    reason: SuppressionReason
    detail: str | None = None
    channel: NotificationChannel | None = None


@dataclass(frozen=True)
class CapDecision:
    """The frequency cap's answer: allowed now, or not before ``not_before``."""

    allowed: bool
    not_before: datetime | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A message due for a customer, waiting for arbitration.

    ``due_at`` is when the rule first wanted it sent; it stays put across deferrals, so
    ``max_deferral`` counts from the rule's intent, not from the last postponement.
    """

    key: str  # the dedup key
    rule_id: str
    trigger_event_id: str
    category: Category
    priority: int
    due_at: datetime


@dataclass(frozen=True)
class Decision:
    """What happens to one candidate: sent or deferred ``at`` a moment, or suppressed."""

    candidate: Candidate
    outcome: Literal["send", "defer", "suppress"]
    at: datetime | None = None  # None when suppressed
    reason: SuppressionReason | None = None  # set when suppressed
    detail: str | None = None


def choose_channel(
    rule: PlaybookRule, contact: ContactState, settings: PolicySettings
) -> ChannelChoice | Suppression:
    """The first of ``rule.channels`` that can carry the message, or why none can."""
    refusals: list[tuple[NotificationChannel, SuppressionReason]] = []
    for channel in rule.channels:
        if channel in INTERNAL_CHANNELS:
            if settings.account_management_webhook_url:
                return ChannelChoice(channel, settings.account_management_webhook_url)
            refusals.append((channel, "no_contact"))
            continue
        # Consent first: when both fail, the customer's wish is the more telling reason.
        refusal = _consent_refusal(contact, channel, rule.category)
        address = _address(contact, channel)
        if refusal is None and address is not None:
            return ChannelChoice(channel, address)
        refusals.append((channel, refusal or "no_contact"))
    if not refusals:
        return Suppression("no_contact", "the rule names no channel")
    reason = min((r for _, r in refusals), key=_REFUSAL_PRECEDENCE.index)
    detail = "; ".join(f"{channel.value}: {why}" for channel, why in refusals)
    return Suppression(reason, detail)


def _consent_refusal(
    contact: ContactState, channel: NotificationChannel, category: Category
) -> SuppressionReason | None:
    purpose = Purpose.MARKETING if category is Category.MARKETING else Purpose.SERVICE
    granted = contact.consents.get((_CONSENT_CHANNEL[channel], purpose))
    if granted is False:
        return "unsubscribed"
    if granted is None and purpose is Purpose.MARKETING:
        return "no_consent"
    return None


def _address(contact: ContactState, channel: NotificationChannel) -> str | None:
    if channel is NotificationChannel.EMAIL:
        return contact.email or None
    if channel is NotificationChannel.SMS:
        return contact.phone or None
    if channel is NotificationChannel.IN_APP:
        return contact.customer_id if contact.has_inbox else None
    return None


def quiet_hours_release(
    moment: datetime, time_zone: str | None, settings: PolicySettings
) -> datetime:
    """``moment`` itself when it falls outside quiet hours in ``time_zone``; otherwise the end
    of those quiet hours (next local morning), in UTC. An unknown time zone counts as UTC."""
    if moment.utcoffset() is None:
        raise ValueError("moment must be timezone-aware")
    start, end = settings.quiet_hours_start, settings.quiet_hours_end
    if start == end:
        return moment
    zone = _zone(time_zone)
    local = moment.astimezone(zone)
    clock = local.time()
    if start < end:  # e.g. 13:00-15:00, within one day
        quiet = start <= clock < end
        release_day = local.date()
    else:  # e.g. 21:00-09:00, across midnight
        quiet = clock >= start or clock < end
        release_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not quiet:
        return moment
    return _local_instant(release_day, end, zone).astimezone(UTC)


def _zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # A bad time zone in a profile must not stop delivery; UTC is the neutral guess.
        return UTC


def _local_instant(day: date, clock: time, zone: tzinfo) -> datetime:
    # A wall time skipped by a DST jump (02:30 on a spring-forward night) resolves, with
    # fold=0, to the instant just after the gap; a repeated one to its first occurrence.
    return datetime.combine(day, clock, tzinfo=zone)


def frequency_cap_decision(
    category: Category,
    stage: Stage | None,
    recent_marketing_sends: Sequence[datetime],
    at: datetime,
    settings: PolicySettings,
) -> CapDecision:
    """Whether one more message of ``category`` may go at ``at``, given the customer's marketing
    sends (all channels); when not, the moment the cap frees a slot.

    A send exactly one window before ``at`` no longer counts. Sends after ``at`` are ignored.
    """
    if category is Category.SERVICE:
        return CapDecision(allowed=True)
    caps = [(settings.marketing_cap_count, settings.marketing_cap_window)]
    if stage is not None and stage in settings.sliding_stages:
        caps.append((settings.sliding_cap_count, settings.sliding_cap_window))
    blocked: list[tuple[datetime, str]] = []
    for count, window in caps:
        in_window = sorted(sent for sent in recent_marketing_sends if at - window < sent <= at)
        if len(in_window) >= count:
            # The slot frees when enough sends have aged out that one fewer than `count` remain.
            frees_at = in_window[len(in_window) - count] + window
            blocked.append((frees_at, f"{len(in_window)} marketing sent within {_span(window)}"))
    if not blocked:
        return CapDecision(allowed=True)
    frees_at, detail = max(blocked)
    return CapDecision(allowed=False, not_before=frees_at, detail=detail)


def _span(window: timedelta) -> str:
    hours = window / timedelta(hours=1)
    return f"{hours / 24:g} days" if hours % 24 == 0 else f"{hours:g} hours"


def arbitrate(
    candidates: Sequence[Candidate],
    recent_marketing_sends: Sequence[datetime],
    at: datetime,
    settings: PolicySettings,
    *,
    stage: Stage | None = None,
) -> list[Decision]:
    """Decide every message due for one customer at ``at``: service first, then marketing by rank.

    Service messages all go. Marketing ones are ranked by priority (then earlier due, then rule
    id) and each takes the earliest moment the cap allows, counting the sends of higher-ranked
    ones: ``at`` means send, later means defer. Suppressed instead:

    - ``lower_priority``: a higher-ranked message from the same triggering event was kept (one
      event, one marketing message), or the cap had room at ``at`` but higher-ranked messages
      of this round used it and waiting would exceed ``max_deferral``;
    - ``frequency_cap``: earlier sends had already used the cap and waiting would exceed
      ``max_deferral`` (measured from the candidate's ``due_at``).

    A deferred message comes back through quiet hours and arbitration when its moment comes.
    """
    early = [c.rule_id for c in candidates if c.due_at > at]
    if early:
        raise ValueError(f"not yet due at {at.isoformat()}: {', '.join(early)}")

    def rank(candidate: Candidate) -> tuple[int, datetime, str, str]:
        return (-candidate.priority, candidate.due_at, candidate.rule_id, candidate.key)

    ranked = sorted(candidates, key=rank)
    decisions = [Decision(c, "send", at) for c in ranked if c.category is Category.SERVICE]
    history = list(recent_marketing_sends)
    planned: list[datetime] = []
    kept_for_trigger: dict[str, Candidate] = {}
    for candidate in (c for c in ranked if c.category is Category.MARKETING):
        kept = kept_for_trigger.get(candidate.trigger_event_id)
        if kept is not None:
            detail = f"{kept.rule_id} was chosen for the same event"
            decisions.append(
                Decision(candidate, "suppress", reason="lower_priority", detail=detail)
            )
            continue
        slot = _earliest_slot(stage, history + planned, at, settings)
        if slot - candidate.due_at <= settings.max_deferral:
            planned.append(slot)
            kept_for_trigger[candidate.trigger_event_id] = candidate
            decisions.append(Decision(candidate, "send" if slot == at else "defer", slot))
            continue
        before_this_round = frequency_cap_decision(Category.MARKETING, stage, history, at, settings)
        if before_this_round.allowed:
            detail = f"higher-priority messages used the cap; next slot {slot.isoformat()}"
            decisions.append(
                Decision(candidate, "suppress", reason="lower_priority", detail=detail)
            )
        else:
            detail = f"{before_this_round.detail}; next slot {slot.isoformat()} is too late"
            decisions.append(Decision(candidate, "suppress", reason="frequency_cap", detail=detail))
    return decisions


def _earliest_slot(
    stage: Stage | None, sends: list[datetime], at: datetime, settings: PolicySettings
) -> datetime:
    moment = at
    while True:
        decision = frequency_cap_decision(Category.MARKETING, stage, sends, moment, settings)
        if decision.allowed or decision.not_before is None:
            return moment
        # Strictly later each time (a blocking send ages out after `moment`), so this ends.
        moment = decision.not_before


def retry_delay(attempt: int, settings: PolicySettings, jitter: float) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1-based): full jitter.

    The ceiling doubles from ``backoff_base`` up to ``backoff_max``; the wait is ``jitter``
    (drawn by the caller from [0, 1)) times the ceiling, which spreads retries of many
    messages failing together (AWS "exponential backoff and jitter").
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    # Capped exponent: 2**64 times any base is past any backoff_max and stays a finite float.
    growth = 2.0 ** min(attempt - 1, 64)
    ceiling = min(
        settings.backoff_max.total_seconds(), settings.backoff_base.total_seconds() * growth
    )
    return timedelta(seconds=ceiling * jitter)


def next_attempt_or_fail(attempt: int, settings: PolicySettings) -> int | None:
    """The number of the next attempt after failed attempt ``attempt``, or None: give up, failed."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return attempt + 1 if attempt < settings.max_attempts else None
