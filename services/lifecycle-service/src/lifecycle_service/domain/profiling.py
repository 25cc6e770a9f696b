"""What a profiling objection (GDPR art. 21/22) does to a customer's lifecycle.

Decisions recorded here:

- **No warnings.** A churn warning is an automated evaluation of the person (their risk,
  their spend against their own past, their silence against their predicted rhythm), so an
  objecting customer gets none; an open one is closed as ``withdrawn`` with the reason
  ``profiling_objection``, and lifecycle publishes that, so retention stops acting on it.
- **Scores forgotten.** The score-derived facts (churn risk, tier, grade, rhythm, CLV) are
  dropped from the state, and later scores are ignored while the objection stands.
- **Stages stay.** new, active, loyal, dormant, churned and won_back follow from order dates
  and counts by fixed rules, the same for everyone; they drive service messages (a welcome
  after the first order) that the customer's contract needs, so they keep moving. A stage
  reached through scores (at_risk) is left as it is until orders or time move the customer.
- **Withdrawal resumes.** Nothing is replayed: the next scores and the next order or sweep
  warn again as for anyone.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Final

from lifecycle_service.domain.churn_warnings import ChurnWarningRecord, WarningStatus
from lifecycle_service.domain.stages import CustomerLifecycle

PROFILING_OBJECTION: Final = "profiling_objection"


def without_scores(state: CustomerLifecycle) -> CustomerLifecycle:
    """The state with every score-derived fact forgotten (orders and stage kept)."""
    return replace(
        state,
        expected_interpurchase_days=None,
        churn_risk=None,
        value_tier=None,
        grade=None,
        predicted_clv_12m=None,
    )


def close_on_objection(
    warning: ChurnWarningRecord | None, at: datetime
) -> ChurnWarningRecord | None:
    """An open warning closed as ``withdrawn`` (reason ``profiling_objection``); None if none
    is open."""
    if warning is None or not warning.is_open:
        return None
    return replace(
        warning,
        status=WarningStatus.WITHDRAWN,
        changed_at=max(at, warning.changed_at),  # a warning's states never go back in time
        reasons=(PROFILING_OBJECTION,),
    )
