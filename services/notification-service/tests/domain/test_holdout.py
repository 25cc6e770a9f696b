"""Hold-out groups: stable, independent per rule, the configured share, bounded, in the rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_contracts import Category, NotificationChannel
from crm_shared.rule_documents import InvalidRuleDocument
from notification_service.domain.default_playbook import DEFAULT_RULES
from notification_service.domain.holdout import (
    HOLDOUT,
    MAX_HOLDOUT_SHARE,
    TREATMENT,
    assignment_point,
    group_of,
    is_held_out,
)
from notification_service.domain.playbooks import (
    ORDER_PLACED,
    PlaybookRule,
)
from notification_service.domain.rule_validation import validate_rule

ids = st.text(min_size=1, max_size=64)
shares = st.floats(min_value=0.0, max_value=MAX_HOLDOUT_SHARE)


@given(rule_id=ids, customer_id=ids, share=shares)
def test_a_customers_group_never_flips(rule_id: str, customer_id: str, share: float) -> None:
    first = group_of(rule_id, customer_id, share)
    assert all(group_of(rule_id, customer_id, share) == first for _ in range(3))
    assert 0.0 <= assignment_point(rule_id, customer_id) < 1.0


@given(rule_id=ids, customer_id=ids, lower=shares, higher=shares)
def test_raising_the_share_only_moves_customers_into_the_holdout(
    rule_id: str, customer_id: str, lower: float, higher: float
) -> None:
    lower, higher = min(lower, higher), max(lower, higher)
    if is_held_out(rule_id, customer_id, lower):
        assert is_held_out(rule_id, customer_id, higher)


@given(rule_id=ids, customer_id=ids)
def test_share_zero_holds_nobody_back(rule_id: str, customer_id: str) -> None:
    assert group_of(rule_id, customer_id, 0.0) == TREATMENT


@settings(max_examples=20, deadline=None)
@given(share=shares, rule_id=st.sampled_from(["retention-offer", "win-back", "second-order"]))
def test_the_held_out_share_is_within_tolerance_of_the_setting(share: float, rule_id: str) -> None:
    customers = 20_000
    held = sum(is_held_out(rule_id, f"customer-{n}", share) for n in range(customers))
    # Binomial standard error at n=20,000 is at most 0.0036; 5 of them is a 1-in-3-million miss.
    assert abs(held / customers - share) <= 5 * (share * (1 - share) / customers) ** 0.5 + 1e-9


def test_rules_draw_their_groups_independently() -> None:
    customers = [f"customer-{n}" for n in range(20_000)]
    first = {c for c in customers if is_held_out("retention-offer", c, 0.5)}
    second = {c for c in customers if is_held_out("win-back", c, 0.5)}
    # Independent halves overlap on about a quarter of the customers.
    assert abs(len(first & second) / len(customers) - 0.25) < 0.02


@pytest.mark.parametrize("share", [-0.01, 0.51, 1.0])
def test_a_share_outside_the_bounds_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="holdout share"):
        is_held_out("rule", "customer", share)
    rule = _rule(holdout_share=share)
    assert [p.field for p in validate_rule(rule)] == ["holdout_share"]


def test_marketing_rules_hold_back_ten_percent_and_service_rules_nobody_by_default() -> None:
    assert _rule(category=Category.MARKETING).effective_holdout_share == 0.10
    assert _rule(category=Category.SERVICE).effective_holdout_share == 0.0
    shipped = {rule.rule_id: rule.effective_holdout_share for rule in DEFAULT_RULES}
    for rule in DEFAULT_RULES:
        expected = 0.10 if rule.category is Category.MARKETING else 0.0
        assert shipped[rule.rule_id] == expected


def test_the_share_round_trips_through_the_rule_document() -> None:
    document = _rule(holdout_share=0.25).to_dict()
    assert document["holdout_share"] == 0.25
    assert PlaybookRule.from_dict(document).holdout_share == 0.25
    without = {k: v for k, v in document.items() if k != "holdout_share"}
    assert PlaybookRule.from_dict(without).effective_holdout_share == 0.10
    with pytest.raises(InvalidRuleDocument, match="holdout_share"):
        PlaybookRule.from_dict({**document, "holdout_share": "ten percent"})


def test_a_held_out_customer_is_in_the_holdout_group() -> None:
    held = next(f"c{n}" for n in range(1000) if is_held_out("retention-offer", f"c{n}", 0.1))
    assert group_of("retention-offer", held, 0.1) == HOLDOUT


def _rule(
    *, category: Category = Category.MARKETING, holdout_share: float | None = None
) -> PlaybookRule:
    return PlaybookRule(
        rule_id="second-order",
        name="Second order offer",
        event_type=ORDER_PLACED,
        template_id="second-order-offer",
        channels=(NotificationChannel.EMAIL,),
        category=category,
        holdout_share=holdout_share,
    )
