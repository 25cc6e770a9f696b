"""Consent per channel and purpose: the latest decision wins, whatever order updates arrive in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm_shared.contracts import Channel, Purpose


@dataclass(frozen=True)
class ConsentDecision:
    """A customer's yes or no for one channel and purpose, with where and when it was given."""

    channel: Channel
    purpose: Purpose
    granted: bool
    source: str
    changed_at: datetime


def supersedes(incoming: ConsentDecision, current: ConsentDecision | None) -> bool:
    """Whether `incoming` replaces `current`: it is newer and says something different."""
    if current is None:
        return True
    if incoming.changed_at < current.changed_at:
        return False  # a late-arriving older decision must not undo a newer one
    return (incoming.granted, incoming.source) != (current.granted, current.source)


def latest(decisions: list[ConsentDecision]) -> dict[tuple[Channel, Purpose], ConsentDecision]:
    """The newest decision per channel and purpose (used when two profiles merge)."""
    newest: dict[tuple[Channel, Purpose], ConsentDecision] = {}
    for decision in decisions:
        key = (decision.channel, decision.purpose)
        if key not in newest or decision.changed_at > newest[key].changed_at:
            newest[key] = decision
    return newest
