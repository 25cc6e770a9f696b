import datetime as dt
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import silhouette_score  # type: ignore[import-untyped]

from scoring_service.domain.purchase_history import PurchaseLedger, histories_as_of
from scoring_service.domain.rfm import InvalidRfmInput
from scoring_service.domain.segments import (
    EVERYONE,
    BehaviouralSegmentation,
    _mean_silhouettes,
    assign_segments,
    fit_behavioural_segments,
)

DATA = Path(__file__).parents[1] / "data"

# Factories

Measures = tuple[np.ndarray, np.ndarray, np.ndarray]


def blob(
    rng: np.random.Generator, *, customers: int, recency: float, frequency: float, monetary: float
) -> Measures:
    """Customers scattered tightly (about 10 % on a log scale) around one behaviour."""

    def around(centre: float) -> np.ndarray:
        return centre * np.exp(rng.normal(0.0, 0.1, customers))

    return (
        np.round(around(recency)),
        np.maximum(1.0, np.round(around(frequency))),
        around(monetary),
    )


def base_of(*blobs: Measures) -> Measures:
    recency, frequency, monetary = (np.concatenate(parts) for parts in zip(*blobs, strict=True))
    return recency, frequency, monetary


def three_distinct_blobs(seed: int = 1) -> tuple[Measures, list[int]]:
    """Champions, recent one-time buyers and lapsed one-time low spenders; sizes 200/300/500.

    The sizes put every median of the base between two blobs, so each name is clear-cut.
    """
    rng = np.random.default_rng(seed)
    sizes = [200, 300, 500]
    measures = base_of(
        blob(rng, customers=sizes[0], recency=5, frequency=20, monetary=2_000),
        blob(rng, customers=sizes[1], recency=8, frequency=1, monetary=60),
        blob(rng, customers=sizes[2], recency=300, frequency=1, monetary=15),
    )
    return measures, sizes


# Choosing K and naming


def test_three_well_separated_blobs_give_three_distinctly_named_segments():
    (recency, frequency, monetary), _ = three_distinct_blobs()

    segmentation = fit_behavioural_segments(recency, frequency, monetary)

    assert segmentation.k == 3
    names = [cluster.name for cluster in segmentation.clusters]
    assert names == [
        "Recent frequent big spenders",
        "Recent one-time big spenders",
        "Lapsed one-time low spenders",
    ]


def test_each_blob_is_one_segment():
    (recency, frequency, monetary), sizes = three_distinct_blobs()
    segmentation = fit_behavioural_segments(recency, frequency, monetary)

    labels = assign_segments(segmentation, recency, frequency, monetary)

    starts = np.cumsum([0, *sizes])
    blob_labels = [set(labels[a:b].tolist()) for a, b in itertools.pairwise(starts)]
    assert all(len(members) == 1 for members in blob_labels)
    assert len(set.union(*blob_labels)) == 3
    assert sorted(c.size for c in segmentation.clusters) == sorted(sizes)
    assert sum(c.share for c in segmentation.clusters) == pytest.approx(1.0)


def test_chosen_k_has_the_best_silhouette_of_those_tried():
    (recency, frequency, monetary), _ = three_distinct_blobs()

    segmentation = fit_behavioural_segments(recency, frequency, monetary, k_range=range(2, 7))

    assert sorted(segmentation.silhouette_by_k) == [2, 3, 4, 5, 6]
    assert segmentation.silhouette == max(segmentation.silhouette_by_k.values())
    assert segmentation.silhouette == segmentation.silhouette_by_k[3]


def test_cluster_centroids_are_reported_in_business_units():
    (recency, frequency, monetary), _ = three_distinct_blobs()

    champions = fit_behavioural_segments(recency, frequency, monetary).clusters[0]

    assert champions.centroid_recency_days == pytest.approx(5, rel=0.15)
    assert champions.centroid_frequency == pytest.approx(20, rel=0.15)
    assert champions.centroid_monetary == pytest.approx(2_000, rel=0.15)


def test_segments_with_the_same_description_are_numbered():
    rng = np.random.default_rng(1)
    # Two groups above the base's medians on every measure, one far below.
    recency, frequency, monetary = base_of(
        blob(rng, customers=200, recency=5, frequency=20, monetary=2_000),
        blob(rng, customers=600, recency=300, frequency=1, monetary=30),
        blob(rng, customers=300, recency=40, frequency=4, monetary=200),
    )

    segmentation = fit_behavioural_segments(recency, frequency, monetary)

    names = [cluster.name for cluster in segmentation.clusters]
    assert len(set(names)) == len(names) == 3
    assert "Recent frequent big spenders 2" in names


def test_same_random_state_gives_the_same_segmentation():
    (recency, frequency, monetary), _ = three_distinct_blobs()

    first = fit_behavioural_segments(recency, frequency, monetary, random_state=7)
    again = fit_behavioural_segments(recency, frequency, monetary, random_state=7)

    assert first == again


# Assigning new customers


def test_new_customer_joins_the_segment_of_the_nearest_centroid():
    (recency, frequency, monetary), _ = three_distinct_blobs()
    segmentation = fit_behavioural_segments(recency, frequency, monetary)

    newcomers = assign_segments(segmentation, [4, 10, 280], [18, 1, 1], [1_800, 70, 12])

    assert [segmentation.profile(int(c)).name for c in newcomers] == [
        "Recent frequent big spenders",
        "Recent one-time big spenders",
        "Lapsed one-time low spenders",
    ]


def test_assignment_matches_a_brute_force_nearest_centroid():
    (recency, frequency, monetary), _ = three_distinct_blobs()
    segmentation = fit_behavioural_segments(recency, frequency, monetary)
    rng = np.random.default_rng(5)
    r, f, m = rng.uniform(0, 400, 200), rng.integers(1, 30, 200), rng.uniform(0, 3_000, 200)

    labels = assign_segments(segmentation, r, f, m)

    features = (np.log1p(np.column_stack((r, f, m))) - segmentation.feature_means) / np.array(
        segmentation.feature_stds
    )
    distances = np.linalg.norm(features[:, None, :] - np.array(segmentation.centroids), axis=2)
    assert labels.tolist() == distances.argmin(axis=1).tolist()


def test_a_stored_segmentation_assigns_like_the_fitted_one():
    (recency, frequency, monetary), _ = three_distinct_blobs()
    segmentation = fit_behavioural_segments(recency, frequency, monetary)

    restored = BehaviouralSegmentation.from_dict(json.loads(json.dumps(segmentation.to_dict())))

    assert restored == segmentation
    assert np.array_equal(
        assign_segments(restored, recency, frequency, monetary),
        assign_segments(segmentation, recency, frequency, monetary),
    )


def test_a_large_base_is_fitted_on_a_sample_and_every_customer_assigned():
    rng = np.random.default_rng(3)
    recency, frequency, monetary = base_of(
        blob(rng, customers=3_000, recency=5, frequency=20, monetary=2_000),
        blob(rng, customers=3_000, recency=300, frequency=1, monetary=30),
    )

    segmentation = fit_behavioural_segments(
        recency, frequency, monetary, fit_sample=1_000, silhouette_sample=500
    )

    assert segmentation.fitted_on == 1_000
    assert segmentation.customers == 6_000
    assert sum(c.size for c in segmentation.clusters) == 6_000
    assert segmentation.note is not None
    assert "sample" in segmentation.note


# Small and degenerate bases


@pytest.mark.parametrize("customers", [0, 1, 2])
def test_fewer_than_three_customers_form_one_segment_called_everyone(customers: int):
    measures = ([10.0] * customers, [2.0] * customers, [50.0] * customers)

    segmentation = fit_behavioural_segments(*measures)

    assert segmentation.k == 1
    assert segmentation.clusters[0].name == EVERYONE
    assert segmentation.clusters[0].size == customers
    assert segmentation.silhouette is None
    assert segmentation.note is not None
    assert assign_segments(segmentation, 400, 1, 5).tolist() == 0


def test_identical_customers_form_one_segment_called_everyone():
    segmentation = fit_behavioural_segments([30] * 50, [1] * 50, [25.0] * 50)

    assert [c.name for c in segmentation.clusters] == [EVERYONE]
    everyone = segmentation.clusters[0]
    assert (everyone.centroid_recency_days, everyone.centroid_frequency) == pytest.approx((30, 1))
    assert everyone.centroid_monetary == pytest.approx(25)
    assert segmentation.note is not None
    assert "same" in segmentation.note


def test_k_is_limited_by_the_number_of_distinct_customers():
    segmentation = fit_behavioural_segments([1, 1, 1, 200, 200], [1, 1, 1, 1, 1], [3, 3, 3, 3, 3])

    assert segmentation.k == 2
    assert list(segmentation.silhouette_by_k) == [2]


def test_no_scorable_k_falls_back_to_everyone():
    segmentation = fit_behavioural_segments([1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], k_range=[9])

    assert [c.name for c in segmentation.clusters] == [EVERYONE]
    assert segmentation.note is not None


def test_negative_net_spend_is_clustered_as_zero_spend():
    segmentation = fit_behavioural_segments([1, 5, 300, 310], [1, 2, 1, 1], [-20, 50, 0, 10])

    assert sum(c.size for c in segmentation.clusters) == 4


def test_unknown_measures_are_rejected():
    with pytest.raises(InvalidRfmInput, match="monetary"):
        fit_behavioural_segments([1, 2, 3], [1, 1, 1], [1.0, np.nan, 3.0])


def test_recorded_silhouette_is_sklearns_for_the_chosen_segments():
    (recency, frequency, monetary), _ = three_distinct_blobs()
    segmentation = fit_behavioural_segments(recency, frequency, monetary)
    features = (
        np.log1p(np.column_stack((recency, frequency, monetary)))
        - np.array(segmentation.feature_means)
    ) / np.array(segmentation.feature_stds)

    labels = assign_segments(segmentation, recency, frequency, monetary)

    assert segmentation.silhouette == pytest.approx(silhouette_score(features, labels), abs=1e-9)


# Sampling and speed: the sampled fit against the full computation, on the CDNOW data


def cdnow_measures() -> Measures:
    """Recency (days), purchase days and spend of the 2,357 CDNOW customers at 30 Jun 1998."""
    columns = np.loadtxt(DATA / "CDNOW_sample.txt", dtype=str)
    epoch = dt.date(1970, 1, 1)
    day = np.array([(dt.datetime.strptime(d, "%Y%m%d").date() - epoch).days for d in columns[:, 2]])
    ledger = PurchaseLedger(columns[:, 1].astype(np.int64) - 1, day, columns[:, 4].astype(float))
    histories = histories_as_of(ledger, (dt.date(1998, 6, 30) - epoch).days)
    return (
        histories.recency_days,
        histories.purchase_days.astype(np.float64),
        histories.total_spend,
    )


def full_computation(measures: Measures) -> BehaviouralSegmentation:
    """K-means on every customer, 4 restarts per K, the exact silhouette of every customer."""
    everyone = len(measures[0])
    return fit_behavioural_segments(
        *measures, fit_sample=everyone, silhouette_sample=everyone, restarts=4
    )


def test_on_cdnow_the_default_fit_gives_the_full_computations_segments():
    measures = cdnow_measures()
    full = full_computation(measures)

    default = fit_behavioural_segments(*measures)

    assert default.k == full.k
    assert np.array_equal(assign_segments(default, *measures), assign_segments(full, *measures))


@pytest.mark.parametrize("random_state", range(5))
def test_on_cdnow_a_sampled_fit_chooses_the_same_k_and_nearly_the_same_segments(random_state):
    # Samples of 1,000 of 2,357 customers: a harsher cut than 20,000 of a million. Customers on
    # the border between two segments may switch; at most 2% of them do.
    measures = cdnow_measures()
    full = full_computation(measures)

    sampled = fit_behavioural_segments(
        *measures, fit_sample=1_000, silhouette_sample=1_000, random_state=random_state
    )

    assert sampled.fitted_on == 1_000
    assert sampled.k == full.k
    assert [c.name for c in sampled.clusters] == [c.name for c in full.clusters]
    same = assign_segments(sampled, *measures) == assign_segments(full, *measures)
    assert same.mean() >= 0.98


def test_a_sampled_fit_is_deterministic():
    measures = cdnow_measures()

    first, second = (
        fit_behavioural_segments(*measures, fit_sample=1_000, silhouette_sample=500)
        for _ in range(2)
    )

    assert first.to_dict() == second.to_dict()
    assert np.array_equal(assign_segments(first, *measures), assign_segments(second, *measures))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(min_value=3, max_value=60),
    ks=st.lists(st.integers(min_value=2, max_value=6), min_size=1, max_size=4, unique=True),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_the_silhouettes_of_every_k_at_once_equal_sklearns_one_by_one(rows, ks, seed):
    rng = np.random.default_rng(seed)
    # Repeated points (as CDNOW's whole-day measures have) and well-spread ones alike.
    features = np.round(rng.normal(size=(rows, 3)), int(rng.integers(0, 3)))
    labelings = {k: rng.integers(0, k, rows) for k in ks if k < rows}
    labelings = {k: labels for k, labels in labelings.items() if len(np.unique(labels)) >= 2}

    ours = _mean_silhouettes(features, labelings)

    assert set(ours) == set(labelings)
    for k, labels in labelings.items():
        # Distances come from |a|^2 + |b|^2 - 2ab: equal points can be ~1e-8 apart, not 0.
        assert ours[k] == pytest.approx(silhouette_score(features, labels), abs=1e-6)
