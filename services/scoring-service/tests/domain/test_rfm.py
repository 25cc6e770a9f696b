import json
from itertools import product

import numpy as np
import pytest

from scoring_service.domain.rfm import (
    SEGMENT_DESCRIPTIONS,
    SEGMENT_NAMES,
    InvalidRfmInput,
    RfmThresholds,
    fit_rfm_thresholds,
    rfm_segment,
    rfm_segment_name,
    score_rfm,
)

# Factories

Base = tuple[np.ndarray, np.ndarray, np.ndarray]


def continuous_base(*, customers: int = 1_000, seed: int = 0) -> Base:
    """A base without ties: every measure has distinct values."""
    rng = np.random.default_rng(seed)
    recency = rng.permutation(customers).astype(float)
    frequency = rng.permutation(customers).astype(float) + 1
    monetary = rng.lognormal(4.0, 1.0, customers)
    return recency, frequency, monetary


def one_time_heavy_base(
    *, customers: int = 1_000, one_time_share: float = 0.7, seed: int = 0
) -> Base:
    """A realistic base: most customers bought on one day only, recency and spend in whole units."""
    rng = np.random.default_rng(seed)
    one_time = rng.random(customers) < one_time_share
    frequency = np.where(one_time, 1, 2 + rng.poisson(2.0, customers)).astype(float)
    recency = rng.integers(0, 365, customers).astype(float)
    monetary = np.round(rng.lognormal(4.0, 1.0, customers))
    return recency, frequency, monetary


def expected_segment(r: int, f: int) -> str:
    """The R x F grid, written from the rules as stated (independently of the module's table)."""
    if r <= 2:
        if f <= 2:
            return "Lost" if (r, f) == (1, 1) else "Hibernating"
        return "At Risk" if f <= 4 else "Cannot Lose Them"
    if r == 3 and f <= 2:
        return "About to Sleep"
    if r == 3 and f == 3:
        return "Need Attention"
    if f >= 4:
        return "Loyal" if r <= 4 else "Champions"
    if f == 1:
        return "Promising" if r == 4 else "New"
    return "Potential Loyalist"


# Segments


@pytest.mark.parametrize(("r", "f"), list(product(range(1, 6), repeat=2)))
def test_every_r_f_pair_maps_to_its_one_segment(r: int, f: int):
    assert rfm_segment_name(r, f) == expected_segment(r, f)
    assert rfm_segment_name(r, f) in SEGMENT_NAMES


def test_all_eleven_segments_are_reachable_from_the_grid():
    r, f = np.meshgrid(np.arange(1, 6), np.arange(1, 6))

    names = rfm_segment(r.ravel(), f.ravel())

    assert len(names) == 25
    assert set(names.tolist()) == set(SEGMENT_NAMES)
    assert len(SEGMENT_NAMES) == 11


def test_every_segment_has_a_one_line_description():
    assert set(SEGMENT_DESCRIPTIONS) == set(SEGMENT_NAMES)
    assert all(text and "\n" not in text for text in SEGMENT_DESCRIPTIONS.values())


def test_segment_of_a_score_outside_1_to_5_is_rejected():
    with pytest.raises(InvalidRfmInput, match="between 1 and 5"):
        rfm_segment([0, 3], [3, 3])


# Quintile scoring


def test_distinct_values_split_the_base_into_five_equal_groups():
    base = continuous_base(customers=1_000)

    scores = score_rfm(fit_rfm_thresholds(*base), *base)

    for score in scores:
        assert np.bincount(score, minlength=6)[1:].tolist() == [200] * 5


def test_most_recent_most_frequent_biggest_spender_scores_five_on_each():
    recency, frequency, monetary = continuous_base()
    thresholds = fit_rfm_thresholds(recency, frequency, monetary)

    best = score_rfm(thresholds, recency.min(), frequency.max(), monetary.max())
    worst = score_rfm(thresholds, recency.max(), frequency.min(), monetary.min())

    assert [int(s) for s in best] == [5, 5, 5]
    assert [int(s) for s in worst] == [1, 1, 1]


def test_scores_follow_known_cut_points():
    thresholds = RfmThresholds(
        recency_days=(10, 30, 90, 180),
        frequency=(1, 2, 4, 8),
        monetary=(20, 50, 100, 250),
        customers=100,
    )

    r, f, m = score_rfm(thresholds, [5, 10, 11, 200], [1, 2, 3, 9], [20, 20.01, 250, 251])

    # Equal to a cut point is not beating it: 10 days scores as less recent than 5 days.
    assert r.tolist() == [5, 4, 4, 1]
    assert f.tolist() == [1, 2, 3, 5]
    assert m.tolist() == [1, 2, 4, 5]


def test_incremental_scoring_equals_batch_scoring_on_the_fitted_base():
    base = one_time_heavy_base(customers=500)
    thresholds = fit_rfm_thresholds(*base)
    batch = score_rfm(thresholds, *base)

    one_by_one = [score_rfm(thresholds, *(measure[i] for measure in base)) for i in range(500)]

    for axis in range(3):
        assert [int(scores[axis]) for scores in one_by_one] == batch[axis].tolist()


def test_thresholds_stored_as_json_score_the_same():
    base = one_time_heavy_base()
    thresholds = fit_rfm_thresholds(*base)

    restored = RfmThresholds.from_dict(json.loads(json.dumps(thresholds.to_dict())))

    assert restored == thresholds
    for before, after in zip(score_rfm(thresholds, *base), score_rfm(restored, *base), strict=True):
        assert np.array_equal(before, after)


# Ties


def test_identical_customers_get_identical_scores():
    recency, frequency, monetary = one_time_heavy_base()
    thresholds = fit_rfm_thresholds(recency, frequency, monetary)
    twins = np.flatnonzero((frequency == 1) & (recency == recency[frequency == 1][0]))

    r, f, m = score_rfm(thresholds, recency[twins], frequency[twins], np.full(len(twins), 55.0))

    assert len(twins) >= 2
    assert len(set(r.tolist())) == len(set(f.tolist())) == len(set(m.tolist())) == 1


def test_all_one_time_buyers_share_f1_when_most_customers_buy_once():
    recency, frequency, monetary = one_time_heavy_base(one_time_share=0.7)

    _, f, _ = score_rfm(
        fit_rfm_thresholds(recency, frequency, monetary), recency, frequency, monetary
    )

    assert set(f[frequency == 1].tolist()) == {1}
    assert f[frequency > 1].min() > 1


@pytest.mark.parametrize("seed", range(5))
def test_higher_scores_are_never_over_awarded_under_heavy_ties(seed: int):
    base = one_time_heavy_base(seed=seed, one_time_share=0.3 + 0.1 * seed)

    for scores in score_rfm(fit_rfm_thresholds(*base), *base):
        for k in range(2, 6):
            assert np.mean(scores >= k) <= 1 - 0.2 * (k - 1) + 1e-12


def test_a_base_of_identical_customers_scores_everyone_in_the_middle():
    # Nobody ranks above anybody: the tie rule would have scored them all 1 ("Lost").
    thresholds = fit_rfm_thresholds([7] * 10, [1] * 10, [30.0] * 10)

    scores = score_rfm(thresholds, [7] * 10, [1] * 10, [30.0] * 10)

    assert all(s.tolist() == [3] * 10 for s in scores)
    # Beyond the degenerate cut points, a customer still moves up or down.
    r, f, m = score_rfm(thresholds, [0, 30], [4, 1], [10.0, 90.0])
    assert r.tolist() == [5, 1]
    assert f.tolist() == [5, 3]
    assert m.tolist() == [1, 5]


# Invalid input


def test_unknown_measure_is_rejected_naming_it():
    with pytest.raises(InvalidRfmInput, match="frequency"):
        fit_rfm_thresholds([1, 2], [1, np.nan], [10, 20])


def test_negative_recency_is_rejected():
    with pytest.raises(InvalidRfmInput, match="recency_days"):
        fit_rfm_thresholds([-1, 2], [1, 1], [10, 20])


def test_an_empty_base_cannot_be_fitted():
    with pytest.raises(InvalidRfmInput, match="empty"):
        fit_rfm_thresholds([], [], [])


def test_measures_of_different_lengths_are_rejected():
    with pytest.raises(InvalidRfmInput, match="same shape"):
        fit_rfm_thresholds([1, 2, 3], [1, 1], [10, 20, 30])
