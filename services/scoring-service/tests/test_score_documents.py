"""The column-wise `score.updated` documents and events equal the pydantic ones, customer by
customer (score_publishing.score_payload and build_event/encode_event are the reference)."""

import dataclasses
import datetime as dt
import functools
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_contracts import SegmentChanged, build_event, decode_event
from scoring_service.domain.models import fit_models
from scoring_service.domain.predictions import ScoringPolicy
from scoring_service.domain.purchase_history import PurchaseLedger, histories_as_of
from scoring_service.domain.score_changes import score_state
from scoring_service.domain.scoring import ScoreTable, score_histories
from scoring_service.domain.tiers import ValueScorecard
from scoring_service.workflows import score_documents as documents_module
from scoring_service.workflows import score_publishing
from scoring_service.workflows.score_documents import (
    encoded_score_event,
    encoded_segment_event,
    score_documents,
    score_texts,
)
from scoring_service.workflows.score_publishing import SOURCE, score_payload

DATA = Path(__file__).parent / "data"
EPOCH = dt.date(1970, 1, 1)
POLICY = ScoringPolicy(90, 12, 0.01, ValueScorecard(0.6, 0.4))
# An offset and microseconds: the contracts keep both.
AS_OF = dt.datetime(1998, 6, 30, 23, 59, 59, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def cdnow_ledger() -> PurchaseLedger:
    columns = np.loadtxt(DATA / "CDNOW_sample.txt", dtype=str)
    day = np.array([(dt.datetime.strptime(d, "%Y%m%d").date() - EPOCH).days for d in columns[:, 2]])
    return PurchaseLedger(columns[:, 1].astype(np.int64) - 1, day, columns[:, 4].astype(float))


@functools.cache
def cdnow_table(*, with_models: bool = True) -> ScoreTable:
    histories = histories_as_of(cdnow_ledger(), (dt.date(1998, 6, 30) - EPOCH).days)
    models = fit_models(histories, POLICY, previous=None).models
    if not with_models:  # no purchase or spend model: predictions are NaN, CLV absent
        models = dataclasses.replace(models, bg_nbd=None, gamma_gamma=None)
    return score_histories(histories, models, POLICY, np.arange(len(histories)) % 4.0)


@pytest.mark.parametrize("with_models", [True, False], ids=["fitted", "no-models-yet"])
def test_every_cdnow_document_and_event_equals_the_pydantic_one(with_models):
    table = cdnow_table(with_models=with_models)
    histories = table.histories
    ids = [f"cdnow-{i:04d}" for i in histories.customer]

    documents = score_documents(table, ids, version="v1", as_of=AS_OF, currency="USD")

    assert len(documents) == len(histories)
    part = score_documents(
        table, ids, version="v1", as_of=AS_OF, currency="USD", rows=slice(100, 1_100)
    )
    assert part == documents[100:1_100]
    for i, (customer_id, document) in enumerate(zip(ids, documents, strict=True)):
        payload = score_payload(table, i, customer_id, version="v1", as_of=AS_OF, currency="USD")
        assert document == payload.model_dump(mode="json")
        # Serialised as store_scores does (orjson), the event is the one pydantic builds.
        event_id, encoded = encoded_score_event(
            orjson.dumps(document).decode(), customer_id, source=SOURCE, as_of=AS_OF
        )
        expected = build_event(payload, source=SOURCE, time=AS_OF, event_id=event_id)
        assert decode_event(encoded) == expected


def assert_texts_are_the_documents(table: ScoreTable, ids: list[str], rows: slice) -> None:
    documents = score_documents(table, ids, version="v1", as_of=AS_OF, currency="USD", rows=rows)
    texts = score_texts(table, ids, version="v1", as_of=AS_OF, currency="USD", rows=rows)
    assert texts.documents == [orjson.dumps(document).decode() for document in documents]
    assert texts.states == [score_state(document) for document in documents]
    for name in ("rfm_segment", "value_tier", "grade", "cluster", "churn_risk"):
        assert getattr(texts, name) == [document[name] for document in documents]
    assert texts.total_spend == [
        None if document["total_spend"] is None else document["total_spend"]["amount"]
        for document in documents
    ]


@pytest.mark.parametrize("with_models", [True, False], ids=["fitted", "no-models-yet"])
def test_every_cdnow_text_is_the_document_as_orjson_writes_it(with_models):
    table = cdnow_table(with_models=with_models)
    ids = [f"cdnow-{i:04d}" for i in table.histories.customer]
    assert_texts_are_the_documents(table, ids, slice(None))
    assert_texts_are_the_documents(table, ids, slice(100, 1_100))
    assert_texts_are_the_documents(table, ids, slice(5, 5))


_FIGURES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2e15, max_value=2e15),
    st.sampled_from([1e-7, 1e-5, 1e16, -0.0, 0.1, 5e14, 999999999999999.99, 1e15, 0.0000005]),
)
_NAMES = st.sampled_from(["", "quiet", 'quiet, "calm" é', "back\\slash", "tab\t", "😀"])


@settings(max_examples=60, deadline=None)
@given(
    figures=st.lists(_FIGURES, min_size=12, max_size=12),
    names=st.lists(_NAMES, min_size=4, max_size=4),
    caveat=st.none() | _NAMES,
)
def test_texts_of_odd_figures_and_names_are_the_documents_as_orjson_writes_them(
    figures, names, caveat
):
    """Every figure column, name and id of a table replaced by awkward values (not finite,
    exponents, past the money bound, quotes, escapes, non-ASCII)."""
    table = cdnow_table()
    n = 40
    rows = slice(0, n)

    def column(k: int) -> np.ndarray:
        values = np.resize(np.array(figures[k:] + figures[:k], dtype=np.float64), len(table))
        values[n:] = 1.0
        return values

    predicted = dataclasses.replace(
        table.predicted,
        p_alive=column(0),
        expected_purchases_30d=column(1),
        expected_purchases_90d=column(2),
        expected_purchases_365d=column(3),
        churn_risk=column(4),
        expected_interpurchase_days=column(5),
        predicted_clv=column(6),
    )
    histories = dataclasses.replace(table.histories, total_spend=column(7), spend_12m=column(8))
    histories.__dict__["average_order_value"] = column(9)  # a cached property
    names_column = np.resize(np.array(names, dtype=np.str_), len(table))
    odd = dataclasses.replace(
        table,
        predicted=predicted,
        histories=histories,
        health=dataclasses.replace(table.health, score=column(10)),
        value=dataclasses.replace(table.value, tier=names_column, grade=names_column[::-1]),
        rfm_segment=np.roll(names_column, 1),
        cluster=np.roll(names_column, 2),
        rfm_caveat=caveat,
    )
    ids = [f'{names[i % 4]}-{i}"\\' for i in range(len(table))]
    assert_texts_are_the_documents(odd, ids, rows)


_TIES = st.builds(
    lambda k, digits, nudge: ((k + 0.5) / 10**digits + nudge, digits),
    st.integers(-(10**12), 10**12),
    st.sampled_from([2, 4, 6]),
    st.sampled_from([0.0, 5e-324, -5e-324, 1e-17, -1e-17, 1e-12, -1e-12]),
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.floats(width=64), min_size=1, max_size=20).flatmap(
        lambda values: st.tuples(st.just(values), st.sampled_from([2, 4, 6]))
    )
    | _TIES.map(lambda tie: ([tie[0]], tie[1]))
)
def test_vectorised_rounding_is_pythons_round_to_the_bit(values_and_digits):
    values, digits = values_and_digits
    ours = documents_module._rounded(np.array(values), digits)
    expected = [round(v, digits) if np.isfinite(v) else None for v in values]
    assert [None if v is None else v.hex() for v in ours] == [
        None if v is None else v.hex() for v in expected
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=-1e6, max_value=1e6),
        st.floats(min_value=-2e15, max_value=2e15),  # around the clipping bound (1e15)
        st.sampled_from([5e14, -5e14, 999999999999999.99, 1e15, -1e15, -0.0, -0.004]),
        st.integers(-(10**6), 10**6).map(lambda cents: cents / 100 + 0.005),
    )
)
def test_money_strings_equal_the_contracts(value):
    ours = documents_module._money(np.array([value]), "EUR")[0]
    if not np.isfinite(value):
        assert ours is None
        return
    assert ours == score_publishing._money(value, "EUR").model_dump(mode="json")


@pytest.mark.parametrize(
    ("dimension", "previous", "current"),
    [
        ("rfm_segment", "Loyal", "At risk"),
        ("value_tier", None, "high"),
        ("cluster", 'quiet, "calm" é', None),
        ("grade", "B", "A"),
    ],
)
def test_a_templated_segment_event_is_the_one_pydantic_builds(dimension, previous, current):
    event_id, encoded = encoded_segment_event(
        "cdnow-0007", dimension, previous, current, source=SOURCE, as_of=AS_OF
    )
    change = SegmentChanged(
        customer_id="cdnow-0007",
        as_of=AS_OF,
        dimension=dimension,
        previous=previous,
        current=current,
    )
    expected = build_event(change, source=SOURCE, time=AS_OF, event_id=event_id)
    assert decode_event(encoded) == expected
    assert str(expected.data.topic) == score_publishing._SCORES_TOPIC
