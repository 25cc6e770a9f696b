"""What happens to one customer's due messages now: the delivery rules in their order.

For each message: the rule still applies (``rule_checks.refusal``), the rule's hold-out group,
something known of the customer, a channel with consent and an address, quiet hours, a
channel configured to carry it; then the survivors are arbitrated under the frequency cap
and priorities (``delivery_policy.arbitrate``). Pure: the clock value is passed in, and the
caller applies the decisions to its rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from crm_contracts import NotificationChannel
from notification_service.domain.delivery_policy import (
    INTERNAL_CHANNELS,
    Candidate,
    ChannelChoice,
    ContactState,
    PolicySettings,
    Suppression,
    arbitrate,
    choose_channel,
    quiet_hours_release,
)
from notification_service.domain.holdout import Group
from notification_service.domain.playbooks import PlaybookRule
from notification_service.domain.rule_checks import DueMessage, holdout, refusal, rule_of

QUIET_HOURS = "quiet hours in the customer's time zone"
CAPPED = "deferred by the frequency cap"


class Verdict(StrEnum):
    """The kind of a delivery decision."""

    SEND = "send"  # render and send on ``channel`` now
    DEFER = "defer"  # come back at ``at``
    SUPPRESS = "suppress"  # held back for good, for ``suppression``'s reason
    FAIL = "fail"  # cannot be carried (no channel configured), for ``detail``


@dataclass(frozen=True)
class DeliveryDecision:
    """One message's decision and its reason; ``assignment`` is the hold-out group drawn."""

    notification_id: str
    verdict: Verdict
    choice: ChannelChoice | None = None  # SEND
    at: datetime | None = None  # DEFER
    suppression: Suppression | None = None  # SUPPRESS
    detail: str | None = None  # DEFER and FAIL
    assignment: Group | None = None


@dataclass(frozen=True)
class DecisionSettings:
    """The deployment's side of a decision."""

    policy: PolicySettings
    # Channels with a sender configured (the inbox needs none).
    configured: Collection[NotificationChannel]
    # Triggers older than this send nothing; None: no limit.
    max_trigger_age: timedelta | None = None


def decide_customer(
    messages: Sequence[DueMessage],
    rules: Mapping[str, PlaybookRule],
    contact: ContactState | None,
    recent_marketing_sends: Sequence[datetime],
    settings: DecisionSettings,
    now: datetime,
) -> list[DeliveryDecision]:
    """Decide every due message of one customer at ``now`` (``contact`` None: nothing known).

    The decisions come in the order they are applied: the messages refused before arbitration
    in their given order, then the arbitrated ones in rank order.
    """
    stranger = ContactState(
        customer_id=messages[0].customer_id if messages else "", has_inbox=False
    )
    state = contact or stranger
    decided: list[DeliveryDecision] = []
    ready: dict[str, tuple[DeliveryDecision, Candidate]] = {}
    for message in messages:
        outcome = _before_arbitration(message, rules, contact, state, settings, now)
        if isinstance(outcome, tuple):
            ready[message.notification_id] = outcome
        else:
            decided.append(outcome)
    for arbitrated in arbitrate(
        [candidate for _, candidate in ready.values()],
        recent_marketing_sends,
        now,
        settings.policy,
        stage=state.stage,
    ):
        send, _ = ready[arbitrated.candidate.key]
        if arbitrated.outcome == "suppress":
            why = Suppression(arbitrated.reason or "frequency_cap", arbitrated.detail)
            decided.append(replace(send, verdict=Verdict.SUPPRESS, choice=None, suppression=why))
        elif arbitrated.outcome == "defer" and arbitrated.at is not None:
            decided.append(
                replace(send, verdict=Verdict.DEFER, choice=None, at=arbitrated.at, detail=CAPPED)
            )
        else:
            decided.append(send)
    return decided


def _before_arbitration(
    message: DueMessage,
    rules: Mapping[str, PlaybookRule],
    contact: ContactState | None,
    state: ContactState,
    settings: DecisionSettings,
    now: datetime,
) -> DeliveryDecision | tuple[DeliveryDecision, Candidate]:
    """A message's checks up to arbitration: its final decision, or a send and its candidate."""
    # The channels and category it was queued with: its template was chosen for them, even
    # if the rule has been edited since.
    rule = rule_of(message, rules)
    if rule.channels != message.channels or rule.category != message.category:
        # Copied only when they differ: a copy validates the rule again, for every message.
        rule = replace(rule, channels=message.channels, category=message.category)
    why = refusal(
        message,
        rule,
        state.last_order_at,
        state.objects_to_profiling,
        settings.max_trigger_age,
        now,
    )
    group: Group | None = None
    if why is None:
        why, group = holdout(message, rule)
    if why is None and contact is None:
        why = Suppression("no_contact", "nothing is known of this customer here")
    choice = why or choose_channel(rule, state, settings.policy)
    decision = DeliveryDecision(message.notification_id, Verdict.SEND, assignment=group)
    if isinstance(choice, Suppression):
        return replace(decision, verdict=Verdict.SUPPRESS, suppression=choice)
    if choice.channel not in INTERNAL_CHANNELS:
        release = quiet_hours_release(now, state.time_zone, settings.policy)
        if release > now:
            return replace(decision, verdict=Verdict.DEFER, at=release, detail=QUIET_HOURS)
    if (
        choice.channel is not NotificationChannel.IN_APP
        and choice.channel not in settings.configured
    ):
        detail = f"no {choice.channel.value} channel configured"
        return replace(decision, verdict=Verdict.FAIL, detail=detail)
    candidate = Candidate(
        key=message.notification_id,
        rule_id=message.rule_id or "send-now",
        trigger_event_id=message.trigger_event_id or message.notification_id,
        category=message.category,
        priority=message.priority,
        due_at=min(message.intended_at, now),
    )
    return replace(decision, choice=choice), candidate
