"""Consent per channel and purpose: the latest decision wins, whatever order updates arrive in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from crm_contracts import Channel, Purpose
from crm_shared.errors import UnprocessableContent

# What an objection to profiling stops: every automated evaluation of the customer. Orders,
# lifecycle stages counted from them and service messages carry on (they serve the contract).
PROFILING_WITHHOLDS: Final = ("scores", "segments", "churn_warning")


@dataclass(frozen=True)
class ConsentDecision:
    """A customer's yes or no for one channel and purpose, with where and when it was given."""

    channel: Channel
    purpose: Purpose
    granted: bool
    source: str
    changed_at: datetime


def check_not_in_future(decision: ConsentDecision, *, now: datetime, max_skew: timedelta) -> None:
    """Refuse a decision dated later than `now` plus the clock skew allowed.

    The newest decision wins, so one dated in the future would outrank every real one after it
    (the customer's own unsubscribe included) until that date.
    """
    if decision.changed_at > now + max_skew:
        raise UnprocessableContent(
            f"changed_at {decision.changed_at.isoformat()} lies in the future: more than"
            f" {max_skew.total_seconds():g} s after {now.isoformat()}",
            field="changed_at",
        )


def supersedes(incoming: ConsentDecision, current: ConsentDecision | None) -> bool:
    """Whether `incoming` replaces `current`: it is newer and says something different."""
    if current is None:
        return True
    if incoming.changed_at < current.changed_at:
        return False  # a late-arriving older decision must not undo a newer one
    return (incoming.granted, incoming.source) != (current.granted, current.source)


def latest(decisions: list[ConsentDecision]) -> dict[tuple[Channel, Purpose], ConsentDecision]:
    """The newest decision per channel and purpose (used when two profiles merge).

    Profiling is about the customer, not a channel: only its newest decision is kept, on the
    channel it came through.
    """
    newest: dict[tuple[Channel, Purpose], ConsentDecision] = {}
    for decision in decisions:
        key = (decision.channel, decision.purpose)
        if key not in newest or decision.changed_at > newest[key].changed_at:
            newest[key] = decision
    profiling = newest_profiling(list(newest.values()))
    return {
        key: decision
        for key, decision in newest.items()
        if decision.purpose is not Purpose.PROFILING or decision is profiling
    }


def newest_profiling(decisions: list[ConsentDecision]) -> ConsentDecision | None:
    """The customer's newest profiling decision on any channel, or None when never asked."""
    profiling = [d for d in decisions if d.purpose is Purpose.PROFILING]
    return max(profiling, key=lambda d: d.changed_at, default=None)


def objects_to_profiling(decisions: list[ConsentDecision]) -> bool:
    """Whether the customer objects to profiling (GDPR art. 21): their newest profiling
    decision is a refusal. Never asked means allowed: art. 21 is a right to object, not an
    opt-in, so scoring runs until the customer says no."""
    newest = newest_profiling(decisions)
    return newest is not None and not newest.granted
