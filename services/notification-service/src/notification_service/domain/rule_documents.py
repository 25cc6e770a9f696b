"""The shape of a playbook rule document: strict pydantic models of what the API stores.

A rule's JSON (:meth:`PlaybookRule.to_dict`) is read back through :class:`RuleDocument`:
unknown fields, missing required fields and values of the wrong type are refused with every
field at fault (``crm_shared.rule_documents``). Names and ranges (a known stage, a priority
within bounds) are not shape: the domain's checks (``rule_validation``) report them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Final

from pydantic import (
    BeforeValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from crm_contracts import Category, NotificationChannel
from crm_shared.rule_documents import DocumentModel, Names
from notification_service.domain.conditions import Conditions

__all__ = ["ConditionsDocument", "RuleDocument", "duration_text"]

_DURATION: Final = TypeAdapter(timedelta)
_ISO_DURATION: Final = "expected an ISO 8601 duration such as 'P15D'"


def _iso_duration(raw: Any) -> timedelta:
    # ISO 8601 only: pydantic also reads "15 days" and "15:00", and one spelling is enough.
    if not isinstance(raw, str) or not raw.removeprefix("-").startswith("P"):
        raise ValueError(_ISO_DURATION)
    try:
        return _DURATION.validate_python(raw)
    except ValidationError as error:
        raise ValueError(_ISO_DURATION) from error


def duration_text(delay: timedelta) -> str:
    """``delay`` as the ISO 8601 duration a rule document holds."""
    text: str = _DURATION.dump_python(delay, mode="json")
    return text


Duration = Annotated[timedelta, BeforeValidator(_iso_duration)]


class ConditionsDocument(DocumentModel):
    """The ``conditions`` object of a rule document; see :class:`Conditions`."""

    stages: Names | None = None
    previous_stages: Names | None = None
    tiers: Names | None = None
    grades: Names | None = None
    churn_risk_min: StrictFloat | None = None
    churn_risk_max: StrictFloat | None = None
    segments: Names | None = None
    clusters: Names | None = None
    recommended_actions: Names | None = None
    first_order_only: StrictBool = False
    activity_types: Names | None = None
    feedback_kinds: Names | None = None
    surveys: Names | None = None
    survey_score_min: StrictInt | None = None
    survey_score_max: StrictInt | None = None
    warning_statuses: Names = frozenset({"open"})
    unless_ordered_since_trigger: StrictBool = False

    def to_conditions(self) -> Conditions:
        """The domain's conditions, field by field."""
        return Conditions(**{name: getattr(self, name) for name in type(self).model_fields})


class RuleDocument(DocumentModel):
    """A playbook rule document; see ``PlaybookRule``. Fields left out take their defaults."""

    rule_id: StrictStr
    name: StrictStr
    enabled: StrictBool = True
    event_type: StrictStr
    conditions: ConditionsDocument = ConditionsDocument()
    template_id: StrictStr
    channels: tuple[NotificationChannel, ...]
    category: Category
    priority: StrictInt = 0
    delay: Duration = timedelta(0)
    holdout_share: StrictFloat | None = None
