"""Stage-rules documents: every readable set of rules round-trips; a malformed one names fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_shared.rule_documents import InvalidRuleDocument, RuleProblem
from lifecycle_service.domain.rules import Band, StageRules
from lifecycle_service.domain.rules_document import StageRulesDocument

numbers = st.floats(allow_nan=False, allow_infinity=False)
bands = st.builds(Band, enter=numbers, leave=numbers)
names = st.frozensets(st.text(max_size=12), max_size=5)
# Every value of the right shape, sensible or not: the shape is all a document carries.
stage_rules = st.builds(
    StageRules,
    new_days=st.integers(),
    at_risk_from_days=st.integers(),
    dormant_from_days=st.integers(),
    churned_from_days=st.integers(),
    min_orders_for_rhythm=st.integers(),
    at_risk_rhythm=bands,
    dormant_rhythm=bands,
    churned_rhythm=bands,
    at_risk_churn_risk=bands,
    loyal_min_orders=st.integers(),
    loyal_tiers=names,
    loyal_grades=names,
    loyal_enter_max_churn_risk=numbers,
    loyal_exit_churn_risk=numbers,
    won_back_settling_days=st.integers(),
    warning_churn_risk_by_tier=st.dictionaries(st.text(max_size=12), numbers, max_size=6),
    warning_spend_drop_factor=numbers,
    warning_silence_factor=numbers,
    warning_expiry_days=st.integers(),
    warning_complaint_surge_count=st.integers(),
    warning_complaint_window_days=st.integers(),
    warning_detractor_tiers=names,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | numbers | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["enter", "leave", "growth", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = set(StageRulesDocument.model_fields)


@given(stage_rules)
def test_every_readable_set_of_rules_round_trips_through_its_document(rules: StageRules) -> None:
    assert StageRules.from_dict(json.loads(json.dumps(rules.to_dict()))) == rules


@given(st.dictionaries(st.sampled_from([*FIELDS, "colour"]), json_values, max_size=6))
def test_a_malformed_document_names_the_fields_at_fault(document: dict[str, Any]) -> None:
    problems: list[RuleProblem] = []
    try:
        StageRules.from_dict(document)
    except InvalidRuleDocument as invalid:  # any other error escapes and fails the test
        problems = invalid.problems
        assert problems, "refused without a reason"
    for problem in problems:
        assert problem.field.split(".")[0] in document, problem
        assert problem.message


def test_a_null_is_refused_rather_than_read_as_the_default():
    with pytest.raises(InvalidRuleDocument) as raised:
        StageRules.from_dict({"new_days": None})

    assert [p.field for p in raised.value.problems] == ["new_days"]


def test_names_must_be_strings():
    with pytest.raises(InvalidRuleDocument) as raised:
        StageRules.from_dict({"loyal_tiers": ["growth", 3], "warning_expiry_days": True})

    assert {p.field for p in raised.value.problems} == {"loyal_tiers", "warning_expiry_days"}
