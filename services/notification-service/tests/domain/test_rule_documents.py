"""Playbook rule documents: every readable rule round-trips; a malformed one names its fields."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crm_contracts import Category, NotificationChannel
from crm_shared.rule_documents import InvalidRuleDocument, RuleProblem
from notification_service.domain.conditions import Conditions
from notification_service.domain.default_playbook import DEFAULT_RULES
from notification_service.domain.playbooks import PlaybookRule
from notification_service.domain.rule_documents import ConditionsDocument, RuleDocument

names = st.none() | st.frozensets(st.text(max_size=12), max_size=4)
numbers = st.floats(allow_nan=False, allow_infinity=False)
conditions = st.builds(
    Conditions,
    stages=names,
    previous_stages=names,
    tiers=names,
    grades=names,
    churn_risk_min=st.none() | numbers,
    churn_risk_max=st.none() | numbers,
    segments=names,
    clusters=names,
    recommended_actions=names,
    first_order_only=st.booleans(),
    activity_types=names,
    feedback_kinds=names,
    surveys=names,
    survey_score_min=st.none() | st.integers(),
    survey_score_max=st.none() | st.integers(),
    warning_statuses=st.frozensets(st.text(max_size=12), max_size=4),
    unless_ordered_since_trigger=st.booleans(),
)
# Every value of the right shape, sensible or not: the shape is all a document carries.
rules = st.builds(
    PlaybookRule,
    rule_id=st.text(),
    name=st.text(),
    event_type=st.text(),
    template_id=st.text(),
    channels=st.lists(st.sampled_from(NotificationChannel), max_size=5).map(tuple),
    category=st.sampled_from(Category),
    priority=st.integers(),
    delay=st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(days=3650)),
    conditions=conditions,
    enabled=st.booleans(),
    holdout_share=st.none() | numbers,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | numbers | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
RULE_FIELDS = set(RuleDocument.model_fields)
CONDITION_FIELDS = set(ConditionsDocument.model_fields)


def through_json(document: dict[str, Any]) -> Any:
    return json.loads(json.dumps(document))


def problems_reading(document: dict[str, Any]) -> list[RuleProblem]:
    """The problems reading ``document`` reports; none when it reads. Any other error escapes."""
    problems: list[RuleProblem] | None = None
    try:
        PlaybookRule.from_dict(document)
    except InvalidRuleDocument as invalid:
        problems = invalid.problems
    if problems is not None:
        assert problems, "refused without a reason"
    return problems or []


@given(rules)
def test_every_readable_rule_round_trips_through_its_document(rule: PlaybookRule) -> None:
    assert PlaybookRule.from_dict(through_json(rule.to_dict())) == rule


@given(rules)
def test_whole_numbers_read_as_numbers(rule: PlaybookRule) -> None:
    # JSON writers may drop ".0": a share of 0 or a churn risk of 1 must still read.
    document = rule.to_dict()
    document["holdout_share"] = 0
    document["conditions"] = {**document["conditions"], "churn_risk_max": 1}

    read = PlaybookRule.from_dict(document)

    assert (read.holdout_share, read.conditions.churn_risk_max) == (0.0, 1.0)
    assert isinstance(read.holdout_share, float)


@given(
    base=st.sampled_from(DEFAULT_RULES),
    changes=st.dictionaries(st.sampled_from([*RULE_FIELDS, "colour"]), json_values, max_size=4),
    condition_changes=st.dictionaries(
        st.sampled_from([*CONDITION_FIELDS, "colour"]), json_values, max_size=4
    ),
    removed=st.sets(st.sampled_from(sorted(RULE_FIELDS)), max_size=3),
)
def test_a_malformed_document_names_the_fields_at_fault(
    base: PlaybookRule,
    changes: dict[str, Any],
    condition_changes: dict[str, Any],
    removed: set[str],
) -> None:
    document = {**base.to_dict(), **changes}
    if isinstance(document.get("conditions"), dict):
        document["conditions"] = {**document["conditions"], **condition_changes}
    for name in removed:
        document.pop(name, None)

    for problem in problems_reading(document):
        top, _, rest = problem.field.partition(".")
        assert top in RULE_FIELDS | set(document), problem
        if rest:
            assert top == "conditions", problem
            assert rest in CONDITION_FIELDS | set(document["conditions"]), problem
        assert problem.message


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_any_json_object_reads_as_a_rule_or_a_located_refusal(document: dict[str, Any]) -> None:
    for problem in problems_reading(document):
        # Keys may hold dots themselves: the path starts with a field or a key given.
        assert any(
            problem.field == key or problem.field.startswith(f"{key}.")
            for key in RULE_FIELDS | set(document)
        ), problem
