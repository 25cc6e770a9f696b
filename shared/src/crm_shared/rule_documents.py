"""Rule documents (playbook rules, stage rules): one problem type for a document at fault.

Rule documents are edited by people through the API and stored as JSON. Their shape is a strict
pydantic model built on :class:`DocumentModel` (:func:`parse_rule_document`); what the values
mean is checked by each service's domain. Both report the same way: an
:class:`InvalidRuleDocument` listing every :class:`RuleProblem` by field path, answered over
HTTP as one 422 problem+json (:meth:`InvalidRuleDocument.as_problem`) whose ``errors`` the
console shows next to the fields.
This module imports no web framework, so domain code may raise its error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from crm_shared.errors import UnprocessableContent

__all__ = [
    "DocumentModel",
    "InvalidRuleDocument",
    "Names",
    "RuleProblem",
    "parse_rule_document",
    "problems_of",
]

_Document = TypeVar("_Document", bound=BaseModel)

Names = frozenset[StrictStr]
"""A set of names in a document (a JSON list of strings): stages, tiers, channels..."""


class DocumentModel(BaseModel):
    """The base of a rule document's models: a field it does not name is refused (a typo is
    reported as an "unknown field", not ignored), and a document read cannot change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with a rule document: the field path (``"conditions.stages"``) and why."""

    field: str
    message: str


class InvalidRuleDocument(ValueError):
    """A rule document that cannot be read or used; ``problems`` lists every field at fault."""

    def __init__(self, problems: Iterable[RuleProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))

    def as_problem(self, summary: str, field_prefix: str = "") -> UnprocessableContent:
        """The 422 answer: ``"<summary>: <every problem>"``, and one error per field at fault.

        ``field_prefix`` locates the document in the request body (``"rules."``).
        """
        return UnprocessableContent(
            f"{summary}: {self}",
            errors=[
                {"field": f"{field_prefix}{p.field}", "message": p.message} for p in self.problems
            ],
        )


def parse_rule_document(model: type[_Document], data: Mapping[str, Any]) -> _Document:
    """``data`` read as ``model``; :class:`InvalidRuleDocument` naming every field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidRuleDocument(problems_of(error)) from None


def problems_of(error: ValidationError) -> list[RuleProblem]:
    """Every error of a pydantic validation, located by the document's own field names."""
    return [RuleProblem(_field(detail["loc"]), _message(detail)) for detail in error.errors()]


def _field(location: tuple[int | str, ...]) -> str:
    # Down to the field a person edits: "channels", not "channels.1"; a mapping's key stays
    # ("warning_churn_risk_by_tier.growth") as the domain's checks name it so too.
    parts: list[str] = []
    for part in location:
        if isinstance(part, int):
            break
        parts.append(part)
    # No part at all: the document itself is not an object.
    return ".".join(parts) if parts else "(document)"


def _message(detail: ErrorDetails) -> str:
    kind = detail["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "missing"
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        return "expected an object"
    message = detail["msg"].removeprefix("Value error, ")
    return f"unreadable value {detail['input']!r}: {message}"
