"""The shape of a stage-rules document: a strict pydantic model of what the API stores.

Every field is optional (left out: the default rule), and an unknown field, a band without
``enter`` or ``leave`` or a value of the wrong type is refused with every field at fault
(``crm_shared.rule_documents``), so a typo in a rules document is reported, not silently
ignored. Ranges and consistency are the domain's checks (``rules.validate_rules``).
"""

from __future__ import annotations

from typing import Any

from pydantic import StrictFloat, StrictInt, StrictStr, field_validator

from crm_shared.rule_documents import DocumentModel, Names

__all__ = ["BandDocument", "StageRulesDocument"]


class BandDocument(DocumentModel):
    """An *enter when above* threshold: ``{"enter": 2.0, "leave": 1.5}``."""

    enter: StrictFloat
    leave: StrictFloat


class StageRulesDocument(DocumentModel):
    """A stage-rules document; a field left out keeps the default rule (``None`` here)."""

    new_days: StrictInt | None = None
    at_risk_from_days: StrictInt | None = None
    dormant_from_days: StrictInt | None = None
    churned_from_days: StrictInt | None = None
    min_orders_for_rhythm: StrictInt | None = None
    at_risk_rhythm: BandDocument | None = None
    dormant_rhythm: BandDocument | None = None
    churned_rhythm: BandDocument | None = None
    at_risk_churn_risk: BandDocument | None = None
    loyal_min_orders: StrictInt | None = None
    loyal_tiers: Names | None = None
    loyal_grades: Names | None = None
    loyal_enter_max_churn_risk: StrictFloat | None = None
    loyal_exit_churn_risk: StrictFloat | None = None
    won_back_settling_days: StrictInt | None = None
    warning_churn_risk_by_tier: dict[StrictStr, StrictFloat] | None = None
    warning_spend_drop_factor: StrictFloat | None = None
    warning_silence_factor: StrictFloat | None = None
    warning_expiry_days: StrictInt | None = None
    warning_complaint_surge_count: StrictInt | None = None
    warning_complaint_window_days: StrictInt | None = None
    warning_detractor_tiers: Names | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        # None here means "left out"; an explicit null is more likely a mistake than a wish.
        if value is None:
            raise ValueError("expected a value; leave the field out for its default")
        return value
