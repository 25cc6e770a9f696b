import json

import numpy as np
import pytest

from scoring_service.domain.tiers import (
    GRADES,
    GradeCuts,
    InvalidValueInput,
    PercentileGrid,
    ValueScorecard,
    ValueScores,
    ValueThresholds,
    fit_percentile_grid,
    fit_value_thresholds,
    grade,
    percentile_of,
    score_value,
    value_score,
    value_tier,
)

# Factories


def synthetic_base(
    *, customers: int = 20_000, zero_spend_share: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """12-month spend (some customers spent nothing) and a CLV loosely following it."""
    rng = np.random.default_rng(seed)
    spend = np.where(
        rng.random(customers) < zero_spend_share, 0.0, rng.lognormal(5.0, 1.0, customers)
    )
    clv = spend * rng.lognormal(0.0, 0.5, customers) + rng.lognormal(3.0, 1.0, customers)
    return spend, clv


# Tiers and value score


@pytest.mark.parametrize(
    ("current", "potential", "tier"),
    [
        (0.9, 0.9, "strategic_partner"),
        (0.1, 0.9, "growth"),
        (0.9, 0.1, "profit"),
        (0.1, 0.1, "basic"),
        (0.5, 0.5, "strategic_partner"),  # the split itself counts as high
        (0.49, 0.5, "growth"),
    ],
)
def test_tier_is_the_quadrant_of_current_and_potential(current: float, potential: float, tier: str):
    assert value_tier(current, potential, 0.5).tolist() == tier


def test_value_score_weighs_current_0_6_and_potential_0_4():
    scores = value_score([1.0, 0.0, 0.5], [0.0, 1.0, 0.5], ValueScorecard())

    assert scores.tolist() == pytest.approx([0.6, 0.4, 0.5])


def test_scorecard_weights_must_sum_to_one():
    with pytest.raises(InvalidValueInput, match="sum to 1"):
        ValueScorecard(current_weight=0.7, potential_weight=0.4)


def test_scorecard_split_must_lie_inside_0_and_1():
    with pytest.raises(InvalidValueInput, match="split"):
        ValueScorecard(split=1.0)


def test_every_tier_occurs_on_a_varied_base():
    spend, clv = synthetic_base()

    scores = score_value(fit_value_thresholds(spend, clv), spend, clv)

    assert set(scores.tier.tolist()) == {"strategic_partner", "growth", "profit", "basic"}


# Grades


def test_grade_shares_on_a_synthetic_base_are_5_15_30_50_percent():
    spend, clv = synthetic_base(zero_spend_share=0.0)

    grades = score_value(fit_value_thresholds(spend, clv), spend, clv).grade

    shares = [np.mean(grades == g) for g in GRADES]
    assert shares == pytest.approx([0.05, 0.15, 0.30, 0.50], abs=0.005)


def test_grade_shares_are_configurable():
    spend, clv = synthetic_base(zero_spend_share=0.0)
    cuts = GradeCuts(vip=0.01, high=0.09, medium=0.4)

    grades = score_value(fit_value_thresholds(spend, clv, grade_cuts=cuts), spend, clv).grade

    shares = [np.mean(grades == g) for g in GRADES]
    assert shares == pytest.approx([0.01, 0.09, 0.40, 0.50], abs=0.005)


def test_grades_are_never_over_awarded_when_many_customers_tie():
    spend = np.array([0.0] * 60 + [100.0] * 30 + [500.0] * 10)
    clv = np.array([0.0] * 60 + [100.0] * 30 + [500.0] * 10)

    grades = score_value(fit_value_thresholds(spend, clv), spend, clv).grade

    assert np.mean(grades == "vip") <= 0.05
    assert np.mean(np.isin(grades, ["vip", "high"])) <= 0.20
    assert np.mean(np.isin(grades, ["vip", "high", "medium"])) <= 0.50


def test_a_base_of_equal_customers_has_no_vip():
    spend = clv = np.full(100, 250.0)

    scores = score_value(fit_value_thresholds(spend, clv), spend, clv)

    assert set(scores.grade.tolist()) == {"low"}
    assert set(scores.tier.tolist()) == {"basic"}


def test_grade_cut_shares_must_not_exceed_the_base():
    with pytest.raises(InvalidValueInput, match="exceed 1"):
        GradeCuts(vip=0.5, high=0.4, medium=0.3)


# Zero spend and unknown CLV


def test_zero_spend_customers_are_basic_and_low_whatever_their_predicted_clv():
    spend, clv = synthetic_base(zero_spend_share=0.3)
    thresholds = fit_value_thresholds(spend, clv)

    scores = score_value(thresholds, [0.0, -15.0], [clv.max(), clv.max()])

    assert scores.tier.tolist() == ["basic", "basic"]
    assert scores.grade.tolist() == ["low", "low"]
    assert scores.value_score.tolist() == [0.0, 0.0]


def test_unknown_predicted_clv_earns_no_potential():
    spend, clv = synthetic_base()
    thresholds = fit_value_thresholds(spend, clv)

    scores = score_value(thresholds, [spend.max()], [np.nan])

    assert scores.potential_pct.tolist() == [0.0]
    assert scores.tier.tolist() == ["profit"]


def test_unknown_spend_is_rejected():
    with pytest.raises(InvalidValueInput, match="spend_12m"):
        fit_value_thresholds([10.0, np.nan], [1.0, 2.0])


# Percentiles


def test_percentile_is_the_share_of_the_base_strictly_below():
    grid = fit_percentile_grid(np.arange(1, 1001, dtype=float))

    shares = percentile_of(grid, [0.0, 1.0, 500.5, 1000.0, 5000.0])

    assert shares.tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0], abs=0.002)


def test_identical_values_share_the_lowest_percentile_of_their_block():
    values = np.array([0.0] * 400 + list(range(1, 601)), dtype=float)
    grid = fit_percentile_grid(values)

    shares = percentile_of(grid, values)

    assert set(shares[:400].tolist()) == {0.0}
    assert shares[400] == pytest.approx(0.4, abs=0.002)
    assert np.all(np.diff(shares) >= 0)


def test_incremental_scoring_equals_scoring_the_fitted_base():
    spend, clv = synthetic_base(customers=2_000)
    thresholds = fit_value_thresholds(spend, clv)
    batch = score_value(thresholds, spend, clv)

    one_by_one = [score_value(thresholds, spend[i], clv[i]) for i in range(0, 2_000, 7)]

    assert [s.grade[0] for s in one_by_one] == batch.grade[::7].tolist()
    assert [s.tier[0] for s in one_by_one] == batch.tier[::7].tolist()
    assert [s.value_score[0] for s in one_by_one] == batch.value_score[::7].tolist()


def test_thresholds_stored_as_json_score_the_same():
    spend, clv = synthetic_base(customers=2_000)
    thresholds = fit_value_thresholds(spend, clv)

    restored = ValueThresholds.from_dict(json.loads(json.dumps(thresholds.to_dict())))

    assert restored == thresholds
    assert len(restored.current.points) == 1001
    before, after = score_value(thresholds, spend, clv), score_value(restored, spend, clv)
    assert before.to_dict() == after.to_dict()
    assert ValueScores.from_dict(json.loads(json.dumps(before.to_dict()))).to_dict() == (
        before.to_dict()
    )


def test_grade_reads_fitted_cut_points():
    spend, clv = synthetic_base(customers=1_000)
    thresholds = fit_value_thresholds(spend, clv)
    vip_cut, high_cut, medium_cut = thresholds.score_cuts

    grades = grade([vip_cut + 1e-9, vip_cut, high_cut, medium_cut, 0.0], thresholds)

    assert grades.tolist() == ["vip", "high", "medium", "low", "low"]


def test_a_grid_must_ascend():
    with pytest.raises(InvalidValueInput, match="ascending"):
        PercentileGrid(points=(3.0, 1.0))
