"""Which messages rest on profiling, and so are held back from a customer who objects to it.

A customer may object to profiling (GDPR art. 21/22; the ``profiling`` consent purpose,
allowed unless refused). A message rests on profiling when it acts on an automated evaluation
of the person: its trigger is a ``churn.warning``, or its conditions read score facts (value
tier, grade, churn risk, RFM segment, cluster, recommended action). Such a message is
suppressed ``profiling_objection`` whatever its category. Everything else (a welcome on
``customer.created``, an order confirmation, a stage message conditioned on stages alone) is
not profiling and still goes, within the usual consent, cap and quiet-hour policy.
"""

from __future__ import annotations

from typing import Final

from notification_service.domain.playbooks import CHURN_WARNING, PlaybookRule

# Conditions that read what scoring computed about the person.
SCORE_CONDITIONS: Final = (
    "tiers",
    "grades",
    "churn_risk_min",
    "churn_risk_max",
    "segments",
    "clusters",
    "recommended_actions",
)


def rests_on_profiling(rule: PlaybookRule, trigger_type: str | None) -> bool:
    """Whether a message of ``rule``, triggered by an event of ``trigger_type``, acts on an
    automated evaluation of the customer."""
    if CHURN_WARNING in (trigger_type, rule.event_type):
        return True
    return any(getattr(rule.conditions, name) is not None for name in SCORE_CONDITIONS)
