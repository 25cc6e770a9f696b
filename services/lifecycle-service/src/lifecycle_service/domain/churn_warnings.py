"""Churn warnings: the signals that a customer is slipping, and the life of one open warning.

Signals (:func:`churn_signals`), as the reason codes a ``churn.warning`` carries:

- ``churn_risk_above_threshold``: the churn risk is at or above the threshold of the
  customer's value tier (valuable tiers are warned earlier);
- ``spend_dropped``: the latest order is at most ``warning_spend_drop_factor`` (a half) of the
  average of the customer's *earlier* orders (the latest is left out, or it would soften its
  own drop);
- ``silence_past_rhythm``: the silence exceeds ``warning_silence_factor`` times the customer's
  expected days between purchases (only when that rhythm is known).

Feedback signals (:func:`feedback_signals`), raised by the feedback event itself:

- ``complaint_surge``: at least ``warning_complaint_surge_count`` complaints within
  ``warning_complaint_window_days`` (counting the one just made);
- ``detractor_answer``: an NPS answer of 0-6 from a customer of a tier in
  ``warning_detractor_tiers`` (valuable customers: one unhappy answer is worth a call).

Feedback signals are events, not states: nothing recomputes them later, so once in an open
warning they stay there (:func:`raise_or_update` keeps them) until the warning is closed. A
warning names every signal that fired.

A customer has at most one open warning (:class:`ChurnWarningRecord`). :func:`raise_or_update`
opens one, or updates the open one when the signals change (repeating the same signals changes
nothing, so a sweep run twice does not publish twice); :func:`close_on_purchase` closes it as
``saved``; :func:`close_on_expiry` closes it as ``lost`` once ``warning_expiry_days`` have
passed since it was raised with no purchase. Counting saved against lost gives the save rate.
Which stages are warned at all is the caller's choice; this module only reads the numbers.

(This module is ``lifecycle_service.domain.churn_warnings``; it shadows the standard library only
for code that puts this directory itself on ``sys.path``, which nothing does.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from crm_contracts import NPS_DETRACTOR_MAX, Grade, ValueTier
from lifecycle_service.domain.rules import UNKNOWN_TIER, StageRules
from lifecycle_service.domain.stages import CustomerLifecycle, silence_days

__all__ = [
    "CHURN_RISK_ABOVE_THRESHOLD",
    "COMPLAINT_SURGE",
    "DETRACTOR_ANSWER",
    "FEEDBACK_SIGNALS",
    "SILENCE_PAST_RHYTHM",
    "SPEND_DROPPED",
    "ChurnWarningRecord",
    "RecommendedAction",
    "WarningStatus",
    "churn_signals",
    "close_on_expiry",
    "close_on_purchase",
    "feedback_signals",
    "raise_or_update",
    "recommended_action",
]

CHURN_RISK_ABOVE_THRESHOLD: Final = "churn_risk_above_threshold"
SPEND_DROPPED: Final = "spend_dropped"
SILENCE_PAST_RHYTHM: Final = "silence_past_rhythm"
COMPLAINT_SURGE: Final = "complaint_surge"
DETRACTOR_ANSWER: Final = "detractor_answer"
FEEDBACK_SIGNALS: Final = frozenset({COMPLAINT_SURGE, DETRACTOR_ANSWER})

RecommendedAction = Literal["account_manager_task", "retention_offer"]

# Who is worth a person's time: a strategic partner, or a VIP whatever the tier.
_ACCOUNT_MANAGER_TIERS: Final = frozenset({ValueTier.STRATEGIC_PARTNER})
_ACCOUNT_MANAGER_GRADES: Final = frozenset({Grade.VIP})


class WarningStatus(StrEnum):
    """Where a warning stands; ``open`` and ``updated`` are still open."""

    OPEN = "open"
    UPDATED = "updated"
    SAVED = "saved"
    LOST = "lost"
    # Closed because the customer objected to profiling (see domain.profiling).
    WITHDRAWN = "withdrawn"


_OPEN_STATUSES: Final = frozenset({WarningStatus.OPEN, WarningStatus.UPDATED})


@dataclass(frozen=True)
class ChurnWarningRecord:
    """One churn warning in its latest state, as stored and published as ``churn.warning``."""

    warning_id: str
    customer_id: str
    status: WarningStatus
    raised_at: datetime  # when it was first opened; expiry counts from here
    changed_at: datetime  # when this state was reached
    reasons: tuple[str, ...]
    churn_risk: float | None
    value_tier: ValueTier | None
    grade: Grade | None
    predicted_clv_12m: float | None
    recommended_action: RecommendedAction

    @property
    def is_open(self) -> bool:
        """True until the warning is closed as saved, lost or withdrawn."""
        return self.status in _OPEN_STATUSES


def churn_signals(state: CustomerLifecycle, rules: StageRules, now: datetime) -> list[str]:
    """The reason codes that call for a warning about ``state`` at ``now``; empty when none."""
    signals: list[str] = []
    tier_key = state.value_tier.value if state.value_tier is not None else UNKNOWN_TIER
    threshold = rules.warning_churn_risk_by_tier.get(tier_key)
    if state.churn_risk is not None and threshold is not None and state.churn_risk >= threshold:
        signals.append(CHURN_RISK_ABOVE_THRESHOLD)

    earlier_average = _average_before_latest(state)
    if (
        earlier_average is not None
        and earlier_average > 0
        and state.last_order_value is not None
        and state.last_order_value <= rules.warning_spend_drop_factor * earlier_average
    ):
        signals.append(SPEND_DROPPED)

    silent = silence_days(state, now)
    rhythm = state.expected_interpurchase_days
    if (
        silent is not None
        and rhythm is not None
        and rhythm > 0
        and silent > rules.warning_silence_factor * rhythm
    ):
        signals.append(SILENCE_PAST_RHYTHM)
    return signals


def feedback_signals(
    state: CustomerLifecycle,
    rules: StageRules,
    *,
    complaints_in_window: int,
    nps_answer: int | None,
) -> list[str]:
    """The feedback reason codes one feedback report raises about ``state``.

    ``complaints_in_window``: the customer's complaints within the rules' window ending at the
    report (the report included when it is one); ``nps_answer``: the report's NPS score, when
    it is an NPS answer.
    """
    signals: list[str] = []
    if complaints_in_window >= rules.warning_complaint_surge_count:
        signals.append(COMPLAINT_SURGE)
    tier = state.value_tier.value if state.value_tier is not None else None
    if (
        nps_answer is not None
        and nps_answer <= NPS_DETRACTOR_MAX
        and tier in rules.warning_detractor_tiers
    ):
        signals.append(DETRACTOR_ANSWER)
    return signals


def _average_before_latest(state: CustomerLifecycle) -> float | None:
    """The mean of all orders but the latest, recovered from the running mean."""
    if state.order_count < 2 or state.average_order_value is None:
        return None
    if state.last_order_value is None:
        return None
    total = state.average_order_value * state.order_count
    return (total - state.last_order_value) / (state.order_count - 1)


def recommended_action(tier: ValueTier | None, grade: Grade | None) -> RecommendedAction:
    """High-value customers get a task for an account manager; everyone else an automated offer."""
    if tier in _ACCOUNT_MANAGER_TIERS or grade in _ACCOUNT_MANAGER_GRADES:
        return "account_manager_task"
    return "retention_offer"


def raise_or_update(
    warning: ChurnWarningRecord | None,
    state: CustomerLifecycle,
    reasons: list[str],
    at: datetime,
    new_warning_id: str,
) -> ChurnWarningRecord | None:
    """The warning's new state when ``reasons`` call for a change, or None when nothing changes.

    No reasons: nothing (an open warning is closed by a purchase or by expiry, not by the
    signals fading). A warning lost (expired) to exactly these signals: nothing, or a customer
    who stays silent would be warned afresh every expiry period. No open warning: a new one,
    ``open``, with ``new_warning_id``. An open
    warning whose reasons, tier, grade or action differ: the same warning, ``updated``. The
    same signals again: nothing, so repeated sweeps and score updates do not publish again.
    A churn risk that merely drifts is not a change worth an event. Feedback signals of an
    open warning are kept: they were events, and no later review can see them again.
    """
    if not reasons:
        return None
    action = recommended_action(state.value_tier, state.grade)
    kept = FEEDBACK_SIGNALS.intersection(warning.reasons) if warning and warning.is_open else ()
    current = tuple(sorted(set(reasons).union(kept)))
    lost_to_the_same_signals = (
        warning is not None and warning.status is WarningStatus.LOST and warning.reasons == current
    )
    if lost_to_the_same_signals:
        return None
    if warning is None or not warning.is_open:
        return ChurnWarningRecord(
            warning_id=new_warning_id,
            customer_id=state.customer_id,
            status=WarningStatus.OPEN,
            raised_at=at,
            changed_at=at,
            reasons=current,
            churn_risk=state.churn_risk,
            value_tier=state.value_tier,
            grade=state.grade,
            predicted_clv_12m=state.predicted_clv_12m,
            recommended_action=action,
        )
    unchanged = (
        warning.reasons == current
        and warning.value_tier == state.value_tier
        and warning.grade == state.grade
        and warning.recommended_action == action
    )
    if unchanged:
        return None
    return replace(
        warning,
        status=WarningStatus.UPDATED,
        changed_at=at,
        reasons=current,
        churn_risk=state.churn_risk,
        value_tier=state.value_tier,
        grade=state.grade,
        predicted_clv_12m=state.predicted_clv_12m,
        recommended_action=action,
    )


def close_on_purchase(
    warning: ChurnWarningRecord | None, at: datetime
) -> ChurnWarningRecord | None:
    """An open warning closed as ``saved`` by a purchase at ``at``; None if none is open."""
    if warning is None or not warning.is_open:
        return None
    return replace(warning, status=WarningStatus.SAVED, changed_at=at)


def close_on_expiry(
    warning: ChurnWarningRecord | None, now: datetime, rules: StageRules
) -> ChurnWarningRecord | None:
    """An open warning closed as ``lost`` once its expiry has passed at ``now``; else None."""
    if warning is None or not warning.is_open:
        return None
    expires_at = warning.raised_at + timedelta(days=rules.warning_expiry_days)
    if now < expires_at:
        return None
    # Recorded at the expiry moment, not at the sweep that noticed it, so replays agree.
    return replace(warning, status=WarningStatus.LOST, changed_at=expires_at)


@dataclass(frozen=True)
class WarningsAfterMerge:
    """What a merge does to two customers' warnings, keeping one open warning per customer."""

    # The warning the survivor carries on (rekeyed to the survivor when it was the merged one's).
    carried: ChurnWarningRecord | None
    # True when the merged customer's open warning is discarded (the survivor's stands).
    drops_merged_open: bool


def warnings_after_merge(
    survivor: ChurnWarningRecord | None, merged: ChurnWarningRecord | None, survivor_id: str
) -> WarningsAfterMerge:
    """Decide which warning the survivor of a merge keeps: its own open one stands, else the
    merged customer's open one moves over; never two open warnings for one customer."""
    if merged is None or not merged.is_open:
        return WarningsAfterMerge(carried=survivor, drops_merged_open=False)
    if survivor is not None and survivor.is_open:
        return WarningsAfterMerge(carried=survivor, drops_merged_open=True)
    return WarningsAfterMerge(
        carried=replace(merged, customer_id=survivor_id), drops_merged_open=False
    )
