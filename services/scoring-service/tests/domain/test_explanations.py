"""The explanations built from their packed figures (as the API reads them) equal
`ScoreTable.explanation`, customer by customer, down to their JSON text (1 and 1.0 alike
differ there)."""

import dataclasses
import datetime as dt
import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring_service.domain.explanations import (
    PACKED_SIZE,
    explanations,
    health_explanations,
    packed_explanations,
)
from scoring_service.domain.health import HealthInputs, explain, health_index
from scoring_service.domain.models import FittedModels, fit_models
from scoring_service.domain.predictions import ScoringPolicy
from scoring_service.domain.purchase_history import PurchaseLedger, histories_as_of
from scoring_service.domain.scoring import score_histories
from scoring_service.domain.tiers import ValueScorecard

DATA = Path(__file__).parent.parent / "data"
EPOCH = dt.date(1970, 1, 1)
POLICY = ScoringPolicy(90, 12, 0.01, ValueScorecard(0.6, 0.4))
END = (dt.date(1998, 6, 30) - EPOCH).days


@functools.cache
def cdnow_ledger() -> PurchaseLedger:
    columns = np.loadtxt(DATA / "CDNOW_sample.txt", dtype=str)
    day = np.array([(dt.datetime.strptime(d, "%Y%m%d").date() - EPOCH).days for d in columns[:, 2]])
    return PurchaseLedger(columns[:, 1].astype(np.int64) - 1, day, columns[:, 4].astype(float))


@functools.cache
def cdnow_models() -> FittedModels:
    ledger = cdnow_ledger()
    return fit_models(histories_as_of(ledger, END), POLICY, previous=None, ledger=ledger).models


@pytest.mark.parametrize("with_models", [True, False], ids=["fitted", "no-models-yet"])
def test_every_cdnow_explanation_equals_the_per_customer_one(with_models):
    histories = histories_as_of(cdnow_ledger(), END)
    models = cdnow_models()
    if not with_models:  # no purchase or spend model: predictions NaN, no calibration
        models = dataclasses.replace(models, bg_nbd=None, gamma_gamma=None, churn_calibration=None)
    table = score_histories(histories, models, POLICY, np.arange(len(histories)) % 4.0)

    ours = explanations(table, models)

    assert len(ours) == len(histories)
    assert explanations(table, models, slice(100, 1_100)) == ours[100:1_100]
    assert {len(packed) for packed in packed_explanations(table, models)} == {PACKED_SIZE}
    picked = np.array([900, 3, 5, 3], dtype=np.int64)
    assert explanations(table, models, picked) == [ours[i] for i in picked]
    for i, explanation in enumerate(ours):
        assert json.dumps(explanation) == json.dumps(table.explanation(i, models))


def _feedback(size: int) -> st.SearchStrategy[dict[str, np.ndarray]]:
    answer = st.one_of(st.just(math.nan), st.integers(0, 10).map(float))
    count = st.one_of(st.just(0.0), st.integers(0, 5).map(float))
    column = functools.partial(st.lists, min_size=size, max_size=size)
    return st.fixed_dictionaries(
        {
            "latest_nps": column(answer).map(np.array),
            "latest_csat": column(answer).map(np.array),
            "complaints_90d": column(count).map(np.array),
            "unresolved_tickets": column(count).map(np.array),
        }
    )


@settings(max_examples=40, deadline=None)
@given(
    days_later=st.integers(-400, 400),
    customers=st.integers(1, 40),
    data=st.data(),
)
def test_explanations_equal_the_domain_ones_for_any_inputs(days_later, customers, data):
    """Any as-of day, engagement and feedback on the CDNOW models: every recency, trend and
    satisfaction branch of the reasons, compared customer by customer."""
    models = cdnow_models()
    histories = histories_as_of(cdnow_ledger(), END + days_later)
    size = min(customers, len(histories))
    picked = np.sort(
        data.draw(st.lists(st.integers(0, len(histories) - 1), min_size=size, max_size=size))
    )
    histories = dataclasses.replace(
        histories,
        **{
            field.name: getattr(histories, field.name)[picked]
            for field in dataclasses.fields(histories)
            if field.name != "as_of_day"
        },
    )
    engagement = np.array(
        data.draw(st.lists(st.integers(0, 30).map(float), min_size=size, max_size=size))
    )
    table = score_histories(histories, models, POLICY, engagement, data.draw(_feedback(size)))

    ours = explanations(table, models)

    assert json.dumps(ours) == json.dumps([table.explanation(i, models) for i in range(size)])


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_health_explanations_equal_explain_on_unknown_and_extreme_inputs(data):
    size = data.draw(st.integers(1, 8))
    finite_or_nan = st.one_of(st.just(math.nan), st.floats(0, 1e4))

    def column(values):
        return np.array(data.draw(st.lists(values, min_size=size, max_size=size)))

    inputs = HealthInputs(
        days_since_last_purchase=column(finite_or_nan),
        expected_interpurchase_days=column(st.one_of(st.just(math.nan), st.floats(0, 1e3))),
        frequency_score=column(st.one_of(st.just(math.nan), st.integers(1, 5).map(float))),
        spend_trend=column(finite_or_nan),
        churn_risk=column(st.one_of(st.just(math.nan), st.floats(0, 1))),
        engagement_events_30d=column(finite_or_nan),
        **data.draw(_feedback(size)),
    )
    result = health_index(inputs)

    assert json.dumps(health_explanations(result)) == json.dumps(
        [explain(result, i) for i in range(size)]
    )
