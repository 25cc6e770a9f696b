"""Which customers are warned, and the warning changes one moment brings.

Customers still new have too little history to judge, and dormant or churned customers are
past warning (their stage change is the signal retention acts on), so only active, loyal,
won_back and at_risk customers are warned.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from crm_contracts import Stage
from lifecycle_service.domain.churn_warnings import (
    ChurnWarningRecord,
    churn_signals,
    close_on_expiry,
    raise_or_update,
)
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.domain.stages import CustomerLifecycle

__all__ = ["WARNED_STAGES", "is_warned", "warning_changes"]

WARNED_STAGES: Final = frozenset({Stage.ACTIVE, Stage.LOYAL, Stage.WON_BACK, Stage.AT_RISK})


def is_warned(state: CustomerLifecycle, rules: StageRules, now: datetime) -> bool:
    """Whether ``state`` calls for a warning at ``now`` (a warned stage with a churn signal)."""
    return state.stage in WARNED_STAGES and bool(churn_signals(state, rules, now))


def warning_changes(
    warning: ChurnWarningRecord | None,
    state: CustomerLifecycle,
    rules: StageRules,
    now: datetime,
    new_warning_id: str,
    feedback: Sequence[str] = (),
) -> list[ChurnWarningRecord]:
    """What happens to the customer's warning at ``now``, in order: expiry, then new signals.

    An expired warning is closed as lost first, so lasting signals open a fresh warning
    rather than keeping a stale one open forever. ``feedback``: the feedback signals a
    report just raised (see ``churn_warnings.feedback_signals``), named beside the others.
    """
    changes: list[ChurnWarningRecord] = []
    expired = close_on_expiry(warning, now, rules)
    if expired is not None:
        changes.append(expired)
        warning = expired
    if state.stage in WARNED_STAGES:
        signals = churn_signals(state, rules, now) + list(feedback)
        raised = raise_or_update(warning, state, signals, now, new_warning_id)
        if raised is not None:
            changes.append(raised)
    return changes
