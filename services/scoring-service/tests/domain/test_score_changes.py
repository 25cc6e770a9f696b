"""The stored change state decides as `changed_beyond_tolerance` does on whole documents."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring_service.domain.score_changes import (
    PACKED_SIZE,
    TOLERATED,
    ScoreState,
    changed_since,
    score_state,
)
from scoring_service.domain.scoring import changed_beyond_tolerance

BASE: dict[str, Any] = {
    "customer_id": "c-1",
    "as_of": "2026-12-01T00:00:00Z",
    "model_version": "v1",
    "recency_score": 3,
    "frequency_score": 2,
    "monetary_score": 5,
    "rfm_segment": "Loyal",
    "rfm_segment_caveat": None,
    "order_count": 4,
    "first_purchase_at": "2025-01-01T00:00:00Z",
    "last_purchase_at": "2025-06-01T00:00:00Z",
    "total_spend": {"amount": "120.00", "currency": "EUR"},
    "spend_12m": {"amount": "80.00", "currency": "EUR"},
    "average_order_value": {"amount": "30.00", "currency": "EUR"},
    "p_alive": 0.8,
    "expected_purchases_30d": 0.4,
    "expected_purchases_90d": 1.1,
    "expected_purchases_365d": 3.9,
    "churn_risk": 0.2,
    "expected_interpurchase_days": 41.5,
    "predicted_clv_12m": {"amount": "95.10", "currency": "EUR"},
    "historic_clv": {"amount": "120.00", "currency": "EUR"},
    "health_index": 61.25,
    "value_tier": "high",
    "grade": "B",
    "cluster": "steady",
}

figure = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
exact_value = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.sampled_from(["Loyal", "At risk", "", "high", "B"]),
    st.fixed_dictionaries(
        {"amount": st.sampled_from(["0.00", "120.00", "120.01"]), "currency": st.just("EUR")}
    ),
)
exact_names = [name for name in BASE if name not in (*TOLERATED, "as_of", "model_version")]


def _nudged(value: float | None, by: float) -> float | None:
    return None if value is None else value + by


@st.composite
def documents(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """`base` with some fields changed: exact ones replaced, figures nudged or replaced."""
    document = dict(base)
    for name in draw(st.lists(st.sampled_from(exact_names), max_size=3)):
        document[name] = draw(exact_value)
    for name in draw(st.lists(st.sampled_from(TOLERATED), max_size=4)):
        choice = draw(st.integers(0, 2))
        if choice == 0:
            document[name] = draw(figure)
        else:  # close to the tolerance, on either side
            step = draw(st.sampled_from([1e-7, 1e-3, 0.00999, 0.0101, 0.5, 1.5, -0.02]))
            document[name] = _nudged(document[name], step)
    if draw(st.booleans()):
        document["as_of"] = "2026-12-08T00:00:00Z"
        document["model_version"] = "v2"
    return document


@settings(max_examples=500, deadline=None)
@given(data=st.data(), tolerance=st.sampled_from([0.0, 0.001, 0.01, 0.05]))
def test_a_state_decides_as_the_whole_documents_do(data: st.DataObject, tolerance: float) -> None:
    before = data.draw(documents(BASE))
    after = data.draw(documents(before))
    # As stored: packed into bytes, and back.
    stored = ScoreState.unpacked(score_state(before).packed())
    assert changed_since(stored, score_state(after), tolerance) == changed_beyond_tolerance(
        before, after, tolerance
    )


def test_a_first_score_is_always_news() -> None:
    assert changed_since(None, score_state(BASE), 0.01)


def test_the_digest_ignores_time_and_version_but_not_a_cent() -> None:
    later = {**BASE, "as_of": "2027-01-01T00:00:00Z", "model_version": "v9"}
    assert score_state(later) == score_state(BASE)
    dearer = {**BASE, "total_spend": {"amount": "120.01", "currency": "EUR"}}
    assert score_state(dearer).digest != score_state(BASE).digest


def test_a_packed_state_is_the_same_state() -> None:
    state = score_state({**BASE, "p_alive": None, "health_index": 1e-300})
    packed = state.packed()
    assert len(packed) == PACKED_SIZE
    assert ScoreState.unpacked(packed) == state


def test_numpy_scalars_digest_as_the_python_values_they_hold() -> None:
    import numpy as np

    as_numpy = {**BASE, "recency_score": np.int64(3), "cluster": np.str_("steady")}
    assert score_state(as_numpy) == score_state(BASE)
