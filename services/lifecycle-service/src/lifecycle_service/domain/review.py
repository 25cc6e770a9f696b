"""When a customer next needs the sweep: the earliest moment time alone could change anything.

Only time moves a customer between events, and only at known moments: the end of the new
window, the silence thresholds (in days or in multiples of the rhythm), the end of won_back
settling, the silence that raises a warning, and an open warning's expiry. Storing the earliest
of these that is still ahead lets the sweep read only the customers due, through an index,
instead of re-evaluating a million customers to move a few thousand.

Only moments strictly after ``now`` count: a sweep at ``now`` has applied everything due at
``now``. Thresholds the rules compare with ``>`` (rhythm multiples) take effect just *after*
their moment, so those moments are nudged forward by a millisecond.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from crm_contracts import Stage
from lifecycle_service.domain.churn_warnings import ChurnWarningRecord
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.domain.stages import CustomerLifecycle

__all__ = ["next_review_at"]

_DAY: Final = timedelta(days=1)
_JUST_AFTER_DAYS: Final = timedelta(milliseconds=1) / _DAY


def next_review_at(
    state: CustomerLifecycle,
    warning: ChurnWarningRecord | None,
    rules: StageRules,
    now: datetime,
) -> datetime | None:
    """The earliest moment after ``now`` when a sweep could move or warn ``state``.

    None when no passage of time can change anything (a prospect without a warning).
    """
    moments: list[datetime] = []
    if warning is not None and warning.is_open:
        moments.append(warning.raised_at + rules.warning_expiry_days * _DAY)
    last, first = state.last_purchase_at, state.first_purchase_at
    if last is not None and first is not None:
        moments.append(first + rules.new_days * _DAY)
        if state.stage is Stage.WON_BACK:
            moments.append(state.stage_since + rules.won_back_settling_days * _DAY)
        # Silence thresholds as days after the last purchase: compared as numbers, and only
        # the nearest one ahead becomes a datetime (this runs for every customer a sweep sees).
        silent = (now - last) / _DAY
        offsets: list[float] = [
            rules.at_risk_from_days,
            rules.dormant_from_days,
            rules.churned_from_days,
        ]
        rhythm = state.expected_interpurchase_days
        if rhythm is not None and rhythm > 0:
            offsets += [
                multiple * rhythm + _JUST_AFTER_DAYS
                for multiple in (
                    rules.at_risk_rhythm.enter,
                    rules.dormant_rhythm.enter,
                    rules.churned_rhythm.enter,
                    rules.warning_silence_factor,
                )
            ]
        ahead_days = [offset for offset in offsets if offset > silent]
        if ahead_days:
            moments.append(last + min(ahead_days) * _DAY)
    ahead = [moment for moment in moments if moment > now]
    return min(ahead) if ahead else None
