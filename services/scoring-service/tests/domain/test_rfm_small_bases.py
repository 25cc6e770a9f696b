"""RFM on tiny and degenerate bases: nobody who bought today is "Lost", and the score says
when the base is too small or uniform for quintiles."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring_service.domain.rfm import (
    MIN_CUSTOMERS_FOR_QUINTILES,
    fit_rfm_thresholds,
    rfm_caveat,
    rfm_segment,
    score_rfm,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)


@st.composite
def small_bases(draw: st.DrawFn) -> tuple[list[float], list[float], list[float]]:
    """1-30 customers, with heavy ties likely (few distinct values to draw from)."""
    size = draw(st.integers(1, 30))
    days = st.sampled_from([0, 0, 1, 3, 30, 200])
    return (
        [float(draw(days)) for _ in range(size)],
        [float(draw(st.sampled_from([1, 1, 1, 2, 5]))) for _ in range(size)],
        [float(draw(st.sampled_from([0.0, 20.0, 20.0, 75.5]))) for _ in range(size)],
    )


def test_the_first_customer_of_a_new_shop_who_bought_today_is_not_lost() -> None:
    thresholds = fit_rfm_thresholds([0.0], [1.0], [42.0])
    r, f, m = score_rfm(thresholds, [0.0], [1.0], [42.0])

    assert (int(r[0]), int(f[0]), int(m[0])) == (3, 3, 3)
    assert rfm_segment(r, f).tolist() == ["Need Attention"]
    caveat = rfm_caveat(thresholds)
    assert caveat is not None
    assert "1 customer," in caveat
    assert "need 20" in caveat


@PROPERTY_SETTINGS
@given(small_bases(), st.floats(0, 10), st.floats(0, 500))
def test_a_customer_who_bought_today_never_scores_r1_nor_lost(
    base: tuple[list[float], list[float], list[float]], frequency: float, monetary: float
) -> None:
    thresholds = fit_rfm_thresholds(*base)
    r, f, _ = score_rfm(thresholds, 0.0, max(frequency, 1.0), monetary)

    assert int(r) > 1  # recency 0 beats every cut point above 0, and all-0 cuts give 3
    assert str(rfm_segment(r, f)) != "Lost"


@PROPERTY_SETTINGS
@given(small_bases())
def test_scores_stay_ordered_and_within_1_to_5_on_any_small_base(
    base: tuple[list[float], list[float], list[float]],
) -> None:
    recency, frequency, monetary = (np.array(v) for v in base)
    r, f, m = score_rfm(fit_rfm_thresholds(recency, frequency, monetary), *base)

    for scores in (r, f, m):
        assert np.all((scores >= 1) & (scores <= 5))
    # More recent never scores lower; more purchases or spend never score lower.
    for values, scores, better in ((recency, r, -1), (frequency, f, 1), (monetary, m, 1)):
        order = np.argsort(better * values, kind="stable")
        assert np.all(np.diff(scores[order]) >= 0)


@PROPERTY_SETTINGS
@given(small_bases())
def test_a_small_or_uniform_base_is_flagged_and_a_spread_one_is_not(
    base: tuple[list[float], list[float], list[float]],
) -> None:
    thresholds = fit_rfm_thresholds(*base)
    uniform = any(
        cuts[0] == cuts[-1]
        for cuts in (thresholds.recency_days, thresholds.frequency, thresholds.monetary)
    )
    caveat = rfm_caveat(thresholds)

    if len(base[0]) < MIN_CUSTOMERS_FOR_QUINTILES or uniform:
        assert caveat is not None
        assert caveat.startswith("Provisional RFM segment")
    else:
        assert caveat is None


def test_a_large_spread_base_has_no_caveat() -> None:
    rng = np.random.default_rng(2)
    base = (rng.integers(0, 365, 500), rng.integers(1, 9, 500), rng.lognormal(4, 1, 500))

    assert rfm_caveat(fit_rfm_thresholds(*base)) is None
