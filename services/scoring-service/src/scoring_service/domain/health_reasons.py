"""Why a health component scored as it did, in words, from one customer's plain floats.

Shared by :func:`~scoring_service.domain.health.explain` (one customer) and the column-wise
explanations of a whole score table (:mod:`scoring_service.domain.explanations`), so both
say exactly the same thing.
"""

from __future__ import annotations

import math

_UNKNOWN = {
    "recency": "no purchase date known: counted as neutral",
    "frequency": "frequency score unknown: counted as neutral",
    "spend_trend": "no spend history to compare with: counted as spending as usual",
    "churn_risk": "churn risk unknown: counted as neutral",
    "engagement": "activity not known: counted as neutral",
}


def component_reason(
    component: str, value: float, rhythm: float, own_rhythm: float, silence_limit: float
) -> str:
    """The reason of any component but satisfaction: `value` is the input read, `rhythm` the
    rhythm the customer was measured against, `own_rhythm` the model's (NaN: none)."""
    if not math.isfinite(value):
        return _UNKNOWN[component]
    if component == "recency":
        if math.isfinite(own_rhythm) and own_rhythm > 0:
            rhythm_text = f"their usual {rhythm:.0f}-day rhythm"
        else:
            rhythm_text = f"the default {rhythm:.0f}-day rhythm (none of their own yet)"
        ratio = value / rhythm
        if ratio <= 1:
            return f"last purchase {value:.0f} days ago, within {rhythm_text}"
        if ratio < silence_limit:
            return f"silent {value:.0f} days, {ratio:.1f}x {rhythm_text}"
        return f"silent {value:.0f} days, {ratio:.1f}x {rhythm_text}: no credit left"
    if component == "frequency":
        return f"frequency score {value:.0f} of 5"
    if component == "spend_trend":
        if value == 0:
            return "nothing spent in the last 90 days"
        if value >= 1.2:
            return f"spending more than usual ({value:.1f}x their average 90 days)"
        if value <= 0.8:
            return f"spending less than usual ({value:.1f}x their average 90 days)"
        return f"spending as usual ({value:.1f}x their average 90 days)"
    if component == "churn_risk":
        return f"churn risk {100 * value:.0f} %"
    if value == 0:
        return "no activity in the last 30 days (weak evidence: many customers are not tracked)"
    return f"{value:.0f} activity events in the last 30 days"
