"""The sweep's review of a whole chunk at once: the domain functions on arrays.

A sweep after a rules change reviews every customer, and one Python call per customer
(``on_sweep``, ``warning_changes``, ``next_review_at``) costs tens of microseconds each. This
module answers the same three questions for a chunk's columns with numpy:

- the stage :func:`~lifecycle_service.domain.stages.stage_for` gives at ``now``;
- what :func:`~lifecycle_service.domain.warning_policy.warning_changes` does to the warning
  (closed as lost by expiry, a new one opened, the open one updated) and with which signals;
- the :func:`~lifecycle_service.domain.review.next_review_at` after those changes.

The per-customer functions stay the reference: property tests prove this module gives the
same answers for any customer state, warning and rules. The caller uses the arrays to find the
few customers who move or whose warning changes (and hands just those to the domain functions,
which word the reasons and build the records) and to write everyone else's review time.

Representation: times are integer microseconds since the Unix epoch (``MISSING_TIME`` for
None), so every difference is exact and divides into days as ``timedelta / timedelta`` does
(both are a correctly rounded quotient of two integers below 2**53, i.e. times within 285
years of each other). Optional floats are NaN for None (stored values are never NaN: the
contracts validate them). Stages, tiers, grades and warning statuses are indexes into
:data:`STAGES`, :data:`TIERS`, :data:`GRADES` and :data:`WARNING_STATUSES`, -1 for None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from crm_contracts import Grade, Stage, ValueTier
from lifecycle_service.domain.churn_warnings import (
    CHURN_RISK_ABOVE_THRESHOLD,
    COMPLAINT_SURGE,
    DETRACTOR_ANSWER,
    SILENCE_PAST_RHYTHM,
    SPEND_DROPPED,
    ChurnWarningRecord,
    WarningStatus,
)
from lifecycle_service.domain.rules import UNKNOWN_TIER, Band, StageRules
from lifecycle_service.domain.stages import DECLINING_STAGES, CustomerLifecycle
from lifecycle_service.domain.warning_policy import WARNED_STAGES

__all__ = [
    "GRADES",
    "MISSING_TIME",
    "NOT_CANONICAL",
    "REASON_BITS",
    "STAGES",
    "TIERS",
    "WARNING_STATUSES",
    "ChunkReview",
    "CustomerColumns",
    "columns_of",
    "days_to_microseconds",
    "from_microseconds",
    "reasons_mask",
    "review_chunk",
    "to_microseconds",
]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Codes = npt.NDArray[np.int8]
Flags = npt.NDArray[np.bool_]

STAGES: Final = tuple(Stage)
TIERS: Final = tuple(ValueTier)
GRADES: Final = tuple(Grade)
WARNING_STATUSES: Final = tuple(WarningStatus)
MISSING_TIME: Final = np.iinfo(np.int64).min
# Reason codes as bits; a stored reason list that is not the sorted, duplicate-free list the
# domain writes (or names an unknown code) never equals fresh signals, as tuples would not.
REASON_BITS: Final = {
    CHURN_RISK_ABOVE_THRESHOLD: 1,
    SILENCE_PAST_RHYTHM: 2,
    SPEND_DROPPED: 4,
    COMPLAINT_SURGE: 16,
    DETRACTOR_ANSWER: 32,
}
NOT_CANONICAL: Final = 8
# Feedback signals are never recomputed by a sweep; an open warning keeps them (raise_or_update).
_FEEDBACK_BITS: Final = REASON_BITS[COMPLAINT_SURGE] | REASON_BITS[DETRACTOR_ANSWER]
# Raised: 0 nothing, 1 a new warning opened, 2 the open warning updated.
OPENED: Final = 1
UPDATED: Final = 2

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
DAY_US: Final = 86_400_000_000
# 86_400_000_000 = 2**13 * 10_546_875: a float times the odd part splits into exact halves.
_ODD_PART_OF_DAY: Final = 10_546_875.0
_SPLITTER: Final = 134_217_729.0  # 2**27 + 1 (Dekker's split of a double into two halves)
_JUST_AFTER_DAYS: Final = timedelta(milliseconds=1) / timedelta(days=1)  # as domain.review


def _stage(stage: Stage) -> int:
    return STAGES.index(stage)


_PROSPECT, _NEW, _ACTIVE, _LOYAL = (
    _stage(s) for s in (Stage.PROSPECT, Stage.NEW, Stage.ACTIVE, Stage.LOYAL)
)
_WON_BACK = _stage(Stage.WON_BACK)
_OPEN_CODES: Final = (
    WARNING_STATUSES.index(WarningStatus.OPEN),
    WARNING_STATUSES.index(WarningStatus.UPDATED),
)
_LOST: Final = WARNING_STATUSES.index(WarningStatus.LOST)
_ACCOUNT_MANAGER: Final = 1  # recommended action code; 0 is the retention offer


@dataclass(frozen=True)
class CustomerColumns:
    """A chunk of customers and their current warnings, one array per field (same length)."""

    stage: Codes
    stage_since: Ints
    first_purchase_at: Ints
    last_purchase_at: Ints
    order_count: Ints
    average_order_value: Floats
    last_order_value: Floats
    expected_interpurchase_days: Floats
    churn_risk: Floats
    value_tier: Codes
    grade: Codes
    # The current warning (the open one, else the latest closed one); status -1 for none.
    warning_status: Codes
    warning_raised_at: Ints
    warning_reasons: Codes  # REASON_BITS, with NOT_CANONICAL
    warning_tier: Codes
    warning_grade: Codes
    warning_action: Codes  # 1 account_manager_task, 0 retention_offer


@dataclass(frozen=True)
class ChunkReview:
    """What a sweep at ``now`` does to each customer of a chunk."""

    # False for customers already moved by events after ``now`` (a sweep of a past moment):
    # they are left as they are, and their review time counts from their stage's start.
    reviewed: Flags
    stage: Codes
    moved: Flags
    warning_expired: Flags  # the open warning closed as lost
    warning_raised: Codes  # 0, OPENED or UPDATED
    signals: Codes  # the churn signals of a warned stage, as REASON_BITS
    next_review_at: Ints  # MISSING_TIME: nothing time alone can change

    @property
    def changed(self) -> Flags:
        """Customers whose stage or warning changes (the few whose records the domain builds)."""
        return self.reviewed & (self.moved | self.warning_expired | (self.warning_raised > 0))


def to_microseconds(moment: datetime | None) -> int:
    """``moment`` as microseconds since the epoch; MISSING_TIME for None."""
    return int(MISSING_TIME) if moment is None else (moment - _EPOCH) // _US


def from_microseconds(value: int) -> datetime | None:
    """The UTC datetime of :func:`to_microseconds`; None for MISSING_TIME."""
    return None if value == MISSING_TIME else _EPOCH + timedelta(microseconds=int(value))


def reasons_mask(reasons: Sequence[str]) -> int:
    """The REASON_BITS of a stored reason list (NOT_CANONICAL unless sorted and unique)."""
    mask = 0
    for reason in reasons:
        mask |= REASON_BITS.get(reason, NOT_CANONICAL)
    canonical = list(reasons) == sorted(set(reasons))
    return mask if canonical else mask | NOT_CANONICAL


def _code(value: object, values: Sequence[object]) -> int:
    return -1 if value is None else values.index(value)


def _float(value: float | None) -> float:
    return np.nan if value is None else value


def columns_of(
    customers: Sequence[tuple[CustomerLifecycle, ChurnWarningRecord | None]],
) -> CustomerColumns:
    """The columns of domain states and their current warnings (tests, small batches)."""
    states = [state for state, _ in customers]
    warnings = [warning for _, warning in customers]

    def times(values: Sequence[datetime | None]) -> Ints:
        return np.array([to_microseconds(v) for v in values], dtype=np.int64)

    def floats(values: Sequence[float | None]) -> Floats:
        return np.array([_float(v) for v in values], dtype=np.float64)

    def codes(values: Sequence[object], known: Sequence[object]) -> Codes:
        return np.array([_code(v, known) for v in values], dtype=np.int8)

    return CustomerColumns(
        stage=codes([s.stage for s in states], STAGES),
        stage_since=times([s.stage_since for s in states]),
        first_purchase_at=times([s.first_purchase_at for s in states]),
        last_purchase_at=times([s.last_purchase_at for s in states]),
        order_count=np.array([s.order_count for s in states], dtype=np.int64),
        average_order_value=floats([s.average_order_value for s in states]),
        last_order_value=floats([s.last_order_value for s in states]),
        expected_interpurchase_days=floats([s.expected_interpurchase_days for s in states]),
        churn_risk=floats([s.churn_risk for s in states]),
        value_tier=codes([s.value_tier for s in states], TIERS),
        grade=codes([s.grade for s in states], GRADES),
        warning_status=codes([w.status if w else None for w in warnings], WARNING_STATUSES),
        warning_raised_at=times([w.raised_at if w else None for w in warnings]),
        warning_reasons=np.array(
            [reasons_mask(w.reasons) if w else 0 for w in warnings], dtype=np.int8
        ),
        warning_tier=codes([w.value_tier if w else None for w in warnings], TIERS),
        warning_grade=codes([w.grade if w else None for w in warnings], GRADES),
        warning_action=np.array(
            [
                int(w is not None and w.recommended_action == "account_manager_task")
                for w in warnings
            ],
            dtype=np.int8,
        ),
    )


def days_to_microseconds(days: Floats) -> Ints:
    """``days * timedelta(days=1)`` in microseconds, rounded exactly as ``timedelta`` rounds.

    ``float * timedelta`` takes the exact product of the float and 86,400,000,000 µs and
    rounds it half to even. A float product may round the wrong way near a half, so the exact
    product is carried as an unevaluated sum ``s + e`` (Dekker's split and Knuth's two-sum)
    and rounded from there. Exact for products below 2**52 µs (142 years).
    """
    scaled = days * 8192.0  # the power-of-two part of a day in µs: exact
    t = scaled * _SPLITTER
    high = t - (t - scaled)
    low = scaled - high
    p, q = high * _ODD_PART_OF_DAY, low * _ODD_PART_OF_DAY  # each exact (< 53 bits)
    s = p + q
    v = s - p
    e = (p - (s - v)) + (q - v)  # s + e == p + q exactly
    rounded = np.rint(s)
    d = s - rounded  # exact, within [-0.5, 0.5]
    up = (e > 0.5 - d) | ((e == 0.5 - d) & (np.fmod(rounded, 2.0) != 0))
    down = (e < -0.5 - d) | ((e == -0.5 - d) & (np.fmod(rounded, 2.0) != 0))
    result: Ints = (rounded + up - down).astype(np.int64)
    return result


def _level(measure: Floats, bands: Sequence[Band], current: Ints) -> Ints:
    """``stages._level_with_hysteresis`` for every row."""
    entered = np.zeros(measure.shape, dtype=np.int64)
    for band in bands:
        entered += measure > band.enter
    leaves = np.array([np.nan, *(band.leave for band in bands)])
    keeps = measure >= leaves[np.minimum(current, len(bands))]
    return np.where((entered < current) & keeps, current, entered)


def _days_between(later: Ints, earlier: Ints) -> Floats:
    return (later - earlier).astype(np.float64) / float(DAY_US)


def review_chunk(columns: CustomerColumns, rules: StageRules, now: int) -> ChunkReview:
    """What ``on_sweep``, ``warning_changes`` and ``next_review_at`` do to every row at ``now``.

    ``now`` is in microseconds since the epoch. Rows whose stage began, or whose last purchase
    happened, after ``now`` are not reviewed (as the sweep skips them).
    """
    c = columns
    has_last = c.last_purchase_at != MISSING_TIME
    bought = has_last & (c.first_purchase_at != MISSING_TIME)
    last = np.where(has_last, c.last_purchase_at, now)  # placeholders are masked out below
    first = np.where(bought, c.first_purchase_at, now)
    reviewed = (c.stage_since <= now) & (last <= now)
    stage = np.where(reviewed, _stage_at(c, rules, now, bought, last, first), c.stage)
    moved = stage != c.stage
    expired, raised, signals, open_after, raised_at = _warnings(
        c, rules, now, stage, reviewed, last
    )
    since = np.where(moved, np.maximum(c.stage_since, now), c.stage_since)
    at = np.where(reviewed, np.maximum(c.stage_since, now), c.stage_since)
    review = _next_review(
        c, rules, at, (stage, since, bought, last, first), (open_after, raised_at)
    )
    return ChunkReview(
        reviewed=reviewed,
        stage=stage.astype(np.int8),
        moved=moved,
        warning_expired=expired,
        warning_raised=raised,
        signals=signals,
        next_review_at=review,
    )


def _stage_at(
    c: CustomerColumns, rules: StageRules, now: int, bought: Flags, last: Ints, first: Ints
) -> Ints:
    """``stage_for(state, now, rules).stage`` for every row, as stage codes."""
    silent = np.maximum(_days_between(np.full_like(last, now), last), 0.0)
    since_first = _days_between(np.full_like(first, now), first)
    current = np.zeros(c.stage.shape, dtype=np.int64)
    for depth, stage in enumerate(DECLINING_STAGES, start=1):
        current[c.stage == _stage(stage)] = depth

    rhythm = c.expected_interpurchase_days
    has_rhythm = (rhythm > 0) & (c.order_count >= rules.min_orders_for_rhythm)  # NaN > 0: False
    ratio = silent / np.where(has_rhythm, rhythm, 1.0)
    bands = (rules.at_risk_rhythm, rules.dormant_rhythm, rules.churned_rhythm)
    by_rhythm = _level(ratio, bands, current)
    by_days = (
        (silent >= rules.at_risk_from_days).astype(np.int64)
        + (silent >= rules.dormant_from_days)
        + (silent >= rules.churned_from_days)
    )
    by_silence = np.where(has_rhythm, by_rhythm, by_days)
    risk = c.churn_risk
    by_risk = np.where(
        np.isnan(risk), 0, _level(risk, (rules.at_risk_churn_risk,), np.minimum(current, 1))
    )
    level = np.maximum(by_silence, by_risk)
    declining = np.array([_stage(s) for s in DECLINING_STAGES])[np.maximum(level - 1, 0)]

    settling = (c.stage == _WON_BACK) & (
        _days_between(np.full_like(c.stage_since, now), c.stage_since)
        < rules.won_back_settling_days
    )
    tier_loyal = np.array([t.value in rules.loyal_tiers for t in TIERS] + [False])
    grade_loyal = np.array([g.value in rules.loyal_grades for g in GRADES] + [False])
    limit = np.where(
        c.stage == _LOYAL, rules.loyal_exit_churn_risk, rules.loyal_enter_max_churn_risk
    )
    loyal = (
        (tier_loyal[c.value_tier] | grade_loyal[c.grade])  # code -1 picks the trailing False
        & (c.order_count >= rules.loyal_min_orders)
        & (risk <= limit)  # NaN (no risk): False
    )
    return np.select(
        [~bought, since_first < rules.new_days, level > 0, settling, loyal],
        [_PROSPECT, _NEW, declining, _WON_BACK, _LOYAL],
        _ACTIVE,
    )


def _warnings(
    c: CustomerColumns, rules: StageRules, now: int, stage: Ints, reviewed: Flags, last: Ints
) -> tuple[Flags, Codes, Codes, Flags, Ints]:
    """``warning_changes`` for every reviewed row, and the warning it leaves (open, raised)."""
    was_open = np.isin(c.warning_status, _OPEN_CODES)
    expiry = timedelta(days=rules.warning_expiry_days) // _US  # as close_on_expiry
    expired = reviewed & was_open & (now >= c.warning_raised_at + np.where(was_open, expiry, 0))
    status = np.where(expired, _LOST, c.warning_status)
    still_open = was_open & ~expired

    thresholds = rules.warning_churn_risk_by_tier
    by_tier = np.array(
        [thresholds.get(t.value, np.nan) for t in TIERS] + [thresholds.get(UNKNOWN_TIER, np.nan)]
    )
    risk_signal = c.churn_risk >= by_tier[c.value_tier]  # code -1 picks the unknown tier
    count = c.order_count.astype(np.float64)
    earlier = (c.average_order_value * count - c.last_order_value) / np.where(
        c.order_count >= 2, count - 1, 1.0
    )
    spend_signal = (
        (c.order_count >= 2)
        & (earlier > 0)
        & (c.last_order_value <= rules.warning_spend_drop_factor * earlier)
    )
    silent = np.maximum(_days_between(np.full_like(last, now), last), 0.0)
    rhythm = c.expected_interpurchase_days
    silence_signal = (
        (c.last_purchase_at != MISSING_TIME)
        & (rhythm > 0)
        & (silent > rules.warning_silence_factor * rhythm)
    )
    warned = np.isin(stage, [_stage(s) for s in WARNED_STAGES]) & reviewed
    signals = np.where(
        warned,
        risk_signal * REASON_BITS[CHURN_RISK_ABOVE_THRESHOLD]
        + spend_signal * REASON_BITS[SPEND_DROPPED]
        + silence_signal * REASON_BITS[SILENCE_PAST_RHYTHM],
        0,
    ).astype(np.int8)

    action = (
        (c.value_tier == TIERS.index(ValueTier.STRATEGIC_PARTNER))
        | (c.grade == GRADES.index(Grade.VIP))
    ).astype(np.int8)
    lost_to_same = (status == _LOST) & (c.warning_reasons == signals)
    calls = (signals != 0) & ~lost_to_same
    opened = calls & ~still_open
    kept = np.where(still_open, c.warning_reasons & _FEEDBACK_BITS, 0).astype(np.int8)
    unchanged = (
        (c.warning_reasons == (signals | kept))
        & (c.warning_tier == c.value_tier)
        & (c.warning_grade == c.grade)
        & (c.warning_action == action)
    )
    updated = calls & still_open & ~unchanged
    raised = (opened * OPENED + updated * UPDATED).astype(np.int8)
    open_after = still_open | opened
    raised_at = np.where(opened, now, c.warning_raised_at)
    return expired, raised, signals, open_after, raised_at


def _next_review(
    c: CustomerColumns,
    rules: StageRules,
    at: Ints,
    state: tuple[Ints, Ints, Flags, Ints, Ints],
    warning: tuple[Flags, Ints],
) -> Ints:
    """``next_review_at`` of every row after its changes, counted from ``at``."""
    stage, since, bought, last, first = state
    open_after, raised_at = warning
    none = np.iinfo(np.int64).max
    moments = [
        np.where(open_after, raised_at + _days_us(rules.warning_expiry_days), none),
        np.where(bought, first + _days_us(rules.new_days), none),
        np.where(
            bought & (stage == _WON_BACK), since + _days_us(rules.won_back_settling_days), none
        ),
    ]
    silent = _days_between(at, last)  # not clamped, as in domain.review
    rhythm = np.where(c.expected_interpurchase_days > 0, c.expected_interpurchase_days, np.nan)
    offsets = [
        np.full(silent.shape, float(days))
        for days in (rules.at_risk_from_days, rules.dormant_from_days, rules.churned_from_days)
    ]
    offsets += [
        multiple * rhythm + _JUST_AFTER_DAYS  # NaN (no usable rhythm) is never ahead
        for multiple in (
            rules.at_risk_rhythm.enter,
            rules.dormant_rhythm.enter,
            rules.churned_rhythm.enter,
            rules.warning_silence_factor,
        )
    ]
    nearest = np.min([np.where(o > silent, o, np.inf) for o in offsets], axis=0)
    ahead = bought & np.isfinite(nearest)
    moments.append(
        np.where(ahead, last + days_to_microseconds(np.where(ahead, nearest, 0.0)), none)
    )
    earliest = np.min([np.where(m > at, m, none) for m in moments], axis=0)
    return np.where(earliest == none, MISSING_TIME, earliest)


def _days_us(days: float) -> int:
    """``days * timedelta(days=1)`` in microseconds, as the domain computes it."""
    return (days * timedelta(days=1)) // _US
