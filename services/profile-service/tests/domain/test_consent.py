"""Consent decisions: profiling is one decision per customer, allowed until objected to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_contracts import Channel, Purpose
from profile_service.domain.consent import ConsentDecision, latest, objects_to_profiling

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def decision(channel: Channel, purpose: Purpose, granted: bool, hours: int) -> ConsentDecision:
    return ConsentDecision(channel, purpose, granted, "test", T0 + timedelta(hours=hours))


def test_never_asked_means_profiling_is_allowed() -> None:
    assert not objects_to_profiling([decision(Channel.EMAIL, Purpose.MARKETING, False, 0)])


def test_the_newest_profiling_decision_on_any_channel_decides() -> None:
    objected = decision(Channel.EMAIL, Purpose.PROFILING, False, 1)
    withdrawn = decision(Channel.SMS, Purpose.PROFILING, True, 2)
    assert objects_to_profiling([objected])
    assert not objects_to_profiling([withdrawn, objected])
    assert objects_to_profiling([decision(Channel.PUSH, Purpose.PROFILING, False, 3), withdrawn])


def test_a_merge_keeps_only_the_newest_profiling_decision() -> None:
    marketing = decision(Channel.EMAIL, Purpose.MARKETING, True, 0)
    older = decision(Channel.EMAIL, Purpose.PROFILING, True, 1)
    newer = decision(Channel.SMS, Purpose.PROFILING, False, 2)

    kept = latest([marketing, older, newer])

    assert kept == {
        (Channel.EMAIL, Purpose.MARKETING): marketing,
        (Channel.SMS, Purpose.PROFILING): newer,
    }
