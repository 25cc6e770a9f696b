"""The shared problem of a rule document: field paths a person edits, one 422 problem+json."""

from __future__ import annotations

import pytest
from pydantic import StrictInt, StrictStr, ValidationError

from crm_shared.rule_documents import (
    DocumentModel,
    InvalidRuleDocument,
    Names,
    RuleProblem,
    parse_rule_document,
)


class Inner(DocumentModel):
    low: StrictInt


class Document(DocumentModel):
    name: StrictStr
    names: list[StrictStr] = []
    by_key: dict[str, StrictInt] = {}
    inner: Inner | None = None
    tags: Names = frozenset()


def test_every_field_at_fault_is_named_down_to_the_field_a_person_edits():
    with pytest.raises(InvalidRuleDocument) as raised:
        parse_rule_document(
            Document,
            {"names": ["a", 2], "by_key": {"growth": "x"}, "inner": {}, "colour": "blue"},
        )

    assert raised.value.problems == [
        RuleProblem("name", "missing"),
        RuleProblem("names", "unreadable value 2: Input should be a valid string"),
        RuleProblem(
            "by_key.growth",
            "unreadable value 'x': Input should be a valid integer",
        ),
        RuleProblem("inner.low", "missing"),
        RuleProblem("colour", "unknown field"),
    ]


def test_an_object_expected_says_so():
    with pytest.raises(InvalidRuleDocument, match="inner: expected an object"):
        parse_rule_document(Document, {"name": "n", "inner": ["low"]})


def test_the_problem_is_the_422_both_services_answer():
    invalid = InvalidRuleDocument([RuleProblem("new_days", "missing"), RuleProblem("x", "bad")])

    body = invalid.as_problem("The rules are not valid", field_prefix="rules.").body("/v1/rules")

    assert body == {
        "type": "https://crm.example/problems/validation-error",
        "title": "Unprocessable content",
        "status": 422,
        "detail": "The rules are not valid: new_days: missing; x: bad",
        "instance": "/v1/rules",
        "errors": [
            {"field": "rules.new_days", "message": "missing"},
            {"field": "rules.x", "message": "bad"},
        ],
    }


def test_a_document_read_cannot_change_and_its_names_are_a_set():
    document = parse_rule_document(Document, {"name": "n", "tags": ["vip", "vip", "eu"]})
    assert document.tags == {"vip", "eu"}
    with pytest.raises(ValidationError, match="frozen"):
        document.name = "m"  # type: ignore[misc]
