import json
import math

import numpy as np
import numpy.typing as npt
import pytest

from scoring_service.domain.health import (
    COMPONENTS,
    HealthCurves,
    HealthInputs,
    HealthResult,
    HealthWeights,
    InvalidHealthInput,
    explain,
    health_index,
)

# Factories


def inputs_of(
    *,
    days_since_last_purchase: npt.ArrayLike | None = 20.0,
    expected_interpurchase_days: npt.ArrayLike | None = 30.0,
    frequency_score: npt.ArrayLike | None = 4.0,
    spend_trend: npt.ArrayLike | None = 1.0,
    churn_risk: npt.ArrayLike | None = 0.2,
    engagement_events_30d: npt.ArrayLike | None = 3.0,
    latest_nps: npt.ArrayLike | None = None,
    latest_csat: npt.ArrayLike | None = None,
    complaints_90d: npt.ArrayLike | None = None,
    unresolved_tickets: npt.ArrayLike | None = None,
) -> HealthInputs:
    """A healthy regular customer unless told otherwise; any field may be an array."""
    return HealthInputs(
        days_since_last_purchase=days_since_last_purchase,
        expected_interpurchase_days=expected_interpurchase_days,
        frequency_score=frequency_score,
        spend_trend=spend_trend,
        churn_risk=churn_risk,
        engagement_events_30d=engagement_events_30d,
        latest_nps=latest_nps,
        latest_csat=latest_csat,
        complaints_90d=complaints_90d,
        unresolved_tickets=unresolved_tickets,
    )


def random_inputs(customers: int = 1_000, seed: int = 0) -> HealthInputs:
    """A varied base, with about a tenth of every input unknown."""
    rng = np.random.default_rng(seed)

    def sometimes_unknown(values: np.ndarray) -> np.ndarray:
        return np.where(rng.random(customers) < 0.1, np.nan, values)

    return inputs_of(
        days_since_last_purchase=sometimes_unknown(rng.exponential(80, customers)),
        expected_interpurchase_days=sometimes_unknown(rng.exponential(60, customers)),
        frequency_score=sometimes_unknown(rng.integers(1, 6, customers).astype(float)),
        spend_trend=sometimes_unknown(rng.exponential(1.0, customers)),
        churn_risk=sometimes_unknown(rng.random(customers)),
        engagement_events_30d=sometimes_unknown(rng.poisson(2, customers).astype(float)),
        latest_nps=np.where(rng.random(customers) < 0.7, np.nan, rng.integers(0, 11, customers)),
        latest_csat=np.where(rng.random(customers) < 0.7, np.nan, rng.integers(0, 11, customers)),
        complaints_90d=rng.poisson(0.3, customers).astype(float),
        unresolved_tickets=rng.poisson(0.2, customers).astype(float),
    )


# The index and its contributions


def test_contributions_add_up_to_the_score():
    result = health_index(random_inputs())

    total = sum(result.contributions[c] for c in COMPONENTS)

    assert np.allclose(total, result.score, atol=1e-9)


def test_score_stays_between_0_and_100_and_is_never_nan():
    result = health_index(random_inputs(customers=5_000, seed=3))

    assert not np.isnan(result.score).any()
    assert result.score.min() >= 0
    assert result.score.max() <= 100 + 1e-9


def test_perfect_customer_scores_100_and_worst_scores_0():
    best = inputs_of(
        days_since_last_purchase=0,
        frequency_score=5,
        spend_trend=2.5,
        churn_risk=0,
        engagement_events_30d=50,
        latest_nps=10,
    )
    worst = inputs_of(
        days_since_last_purchase=400,
        expected_interpurchase_days=30,
        frequency_score=1,
        spend_trend=0,
        churn_risk=1,
        engagement_events_30d=0,
        latest_nps=0,
        complaints_90d=3,
    )

    assert health_index(best).score[0] == pytest.approx(100)
    # No activity is weak evidence, so the worst customer keeps the engagement floor.
    assert health_index(worst).score[0] == pytest.approx(100 * 0.10 * 0.4)


# Recency against the customer's rhythm


def test_silent_for_three_rhythms_scores_lower_on_recency_than_within_rhythm():
    result = health_index(
        inputs_of(days_since_last_purchase=[25, 60, 90], expected_interpurchase_days=30)
    )

    within, twice, three_times = result.sub_scores["recency"]
    assert within == 1.0
    assert twice == pytest.approx(0.5)
    assert three_times == 0.0
    assert result.score[2] < result.score[0]


def test_rhythm_is_the_customers_own():
    weekly, quarterly = health_index(
        inputs_of(days_since_last_purchase=60, expected_interpurchase_days=[7, 90])
    ).sub_scores["recency"]

    assert weekly == 0.0
    assert quarterly == 1.0


@pytest.mark.parametrize("missing_rhythm", [None, math.nan, math.inf, 0.0])
def test_one_time_buyer_without_a_rhythm_is_measured_against_the_default(
    missing_rhythm: float | None,
):
    days = [80, 135, 270]
    without = health_index(
        inputs_of(days_since_last_purchase=days, expected_interpurchase_days=missing_rhythm)
    )
    default = health_index(inputs_of(days_since_last_purchase=days, expected_interpurchase_days=90))

    assert np.array_equal(without.sub_scores["recency"], default.sub_scores["recency"])
    assert without.sub_scores["recency"].tolist() == [1.0, 0.75, 0.0]


def test_default_rhythm_is_configurable():
    result = health_index(
        inputs_of(days_since_last_purchase=60, expected_interpurchase_days=None),
        curves=HealthCurves(default_rhythm_days=30),
    )

    assert result.sub_scores["recency"][0] == pytest.approx(0.5)


# Unknown inputs


def test_unknown_inputs_are_neutral():
    unknown = inputs_of(
        days_since_last_purchase=None,
        expected_interpurchase_days=None,
        frequency_score=None,
        spend_trend=None,
        churn_risk=None,
        engagement_events_30d=None,
    )

    result = health_index(unknown)

    assert result.score.tolist() == [pytest.approx(50)]
    assert all(result.sub_scores[c][0] == 0.5 for c in COMPONENTS)


def test_unknown_spend_trend_counts_as_spending_as_usual():
    unknown, steady = health_index(inputs_of(spend_trend=[math.nan, 1.0])).sub_scores["spend_trend"]

    assert unknown == steady == 0.5


def test_no_activity_events_is_only_slightly_below_neutral():
    none, some, many = health_index(inputs_of(engagement_events_30d=[0, 3, 10])).sub_scores[
        "engagement"
    ]

    assert none == pytest.approx(0.4)
    assert none < some < many == 1.0


# Weights


def test_default_weights_sum_to_one():
    assert sum(HealthWeights().to_dict().values()) == pytest.approx(1.0)


def test_weights_that_do_not_sum_to_one_are_rejected():
    with pytest.raises(InvalidHealthInput, match="sum to 1"):
        HealthWeights(recency=0.5)


def test_negative_weight_is_rejected():
    with pytest.raises(InvalidHealthInput, match="engagement"):
        HealthWeights(churn_risk=0.5, engagement=-0.1)


def test_weights_change_what_counts():
    risky = inputs_of(churn_risk=0.9)
    only_churn = HealthWeights(
        recency=0, frequency=0, spend_trend=0, churn_risk=1.0, engagement=0, satisfaction=0
    )

    assert health_index(risky, only_churn).score[0] == pytest.approx(10)


# Explanations


def test_explanation_lists_every_component_and_adds_up_to_the_score():
    result = health_index(random_inputs(customers=50))

    entries = explain(result, 7)

    assert [entry["component"] for entry in entries] == list(COMPONENTS)
    assert sum(entry["points"] for entry in entries) == pytest.approx(result.score[7])
    assert all(entry["reason"] for entry in entries)
    assert all(0 <= entry["points"] <= entry["max_points"] for entry in entries)


def test_explanation_says_when_a_customer_is_silent_beyond_their_rhythm():
    result = health_index(inputs_of(days_since_last_purchase=100, expected_interpurchase_days=20))

    recency = explain(result, 0)[0]

    assert recency["value"] == 100
    assert recency["points"] == 0
    assert "5.0x" in recency["reason"]
    assert "20-day rhythm" in recency["reason"]


def test_explanation_of_unknown_input_has_no_value_and_says_neutral():
    result = health_index(inputs_of(churn_risk=None))

    churn = explain(result, 0)[3]

    assert churn["value"] is None
    assert "neutral" in churn["reason"]
    json.dumps(explain(result, 0))  # JSON-ready


def test_explaining_a_customer_outside_the_result_is_an_index_error():
    with pytest.raises(IndexError):
        explain(health_index(inputs_of()), 1)


# Invalid input and storage


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("churn_risk", 1.5),
        ("frequency_score", 0),
        ("days_since_last_purchase", -1),
        ("spend_trend", -0.5),
        ("engagement_events_30d", -2),
    ],
)
def test_out_of_range_input_is_rejected_naming_it(field: str, value: float):
    with pytest.raises(InvalidHealthInput, match=field):
        health_index(inputs_of(**{field: value}))


def test_inputs_of_different_lengths_are_rejected():
    with pytest.raises(InvalidHealthInput, match="one length"):
        health_index(inputs_of(churn_risk=[0.1, 0.2], spend_trend=[1.0, 1.0, 1.0]))


def test_result_and_parameters_round_trip_through_json():
    result = health_index(random_inputs(customers=20), HealthWeights(recency=0.35, churn_risk=0.15))

    restored = HealthResult.from_dict(json.loads(json.dumps(result.to_dict())))

    assert restored.weights == result.weights
    assert restored.curves == result.curves
    assert np.allclose(restored.score, result.score)
    assert explain(restored, 3) == explain(result, 3)
    assert HealthWeights.from_dict(HealthWeights().to_dict()) == HealthWeights()
    assert HealthCurves.from_dict(HealthCurves().to_dict()) == HealthCurves()


# Satisfaction: what the customer told the shop


def test_no_feedback_is_neutral_satisfaction():
    assert health_index(inputs_of()).sub_scores["satisfaction"][0] == 0.5


def test_answers_set_satisfaction_and_complaints_and_open_tickets_only_lower_it():
    result = health_index(
        inputs_of(
            latest_nps=[9, 9, 9, np.nan, 3],
            latest_csat=[np.nan, 7, 7, 10, np.nan],
            complaints_90d=[0, 0, 1, 0, 0],
            unresolved_tickets=[0, 0, 1, 0, 0],
        )
    )
    assert result.sub_scores["satisfaction"].tolist() == pytest.approx([0.9, 0.8, 0.5, 1.0, 0.3])


def test_many_complaints_floor_satisfaction_at_zero():
    result = health_index(inputs_of(latest_nps=10, complaints_90d=20))
    assert result.sub_scores["satisfaction"][0] == 0.0
    assert result.contributions["satisfaction"][0] == 0.0


def test_satisfaction_explains_answers_complaints_and_tickets():
    result = health_index(
        inputs_of(latest_nps=4, latest_csat=6, complaints_90d=2, unresolved_tickets=1)
    )
    (entry,) = [e for e in explain(result, 0) if e["component"] == "satisfaction"]
    assert entry["value"] == 5.0
    assert entry["max_points"] == pytest.approx(10.0)
    assert entry["reason"] == (
        "last NPS answer 4 of 10 (detractor); last CSAT answer 6 of 10; "
        "2 complaint(s) in the last 90 days (-40 %); 1 support ticket(s) unresolved (-10 %)"
    )


def test_a_survey_answer_outside_0_to_10_is_refused():
    with pytest.raises(InvalidHealthInput):
        health_index(inputs_of(latest_nps=11))
