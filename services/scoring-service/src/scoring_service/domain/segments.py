"""Behavioural segments: K-means on the RFM measures, with K chosen by silhouette.

Features are the standardised ``log1p`` of recency (days), frequency (purchase days) and monetary
(spend; negative net spend counts as 0). The log tames the long tails of frequency and spend, and
standardising gives the three measures equal say in the distance.

:func:`fit_behavioural_segments` tries each K in ``k_range``, keeps the K with the highest
silhouette (the smaller K on a tie) and stores what assignment needs: the scaler's means and
standard deviations and the centroids in feature space. :func:`assign_segments` then puts any
customer in the nearest centroid's cluster without refitting, so segment ids are stable between
refits.

Speed: for a large base, K-means is fitted on a fixed-seed sample of ``fit_sample`` customers
(20,000 by default, ``restarts`` k-means++ starts per K) and the silhouette is computed on at
most ``silhouette_sample`` of those (5,000; it costs the square of its sample size); every
customer is then assigned to the nearest centroid, vectorised, so sizes and shares describe the
whole base. The sampled fit chooses the same K as the full computation on the CDNOW data and
puts at least 98% of the customers in the same segment (tests/domain/test_segments.py). A
million customers take about a second; the fit runs on one thread (see below).

Cluster ids are ordered by value, most valuable first: by the centroid's standardised
``frequency + monetary - recency``. Each cluster is named from how its centroid compares with the
base's medians, e.g. "Recent frequent big spenders" or "Lapsed one-time low spenders".
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray
from sklearn.cluster import KMeans  # type: ignore[import-untyped]
from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from scoring_service.domain.rfm import as_rfm_measures

__all__ = [
    "EVERYONE",
    "BehaviouralSegmentation",
    "ClusterProfile",
    "assign_segments",
    "fit_behavioural_segments",
]

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]

EVERYONE: Final = "Everyone"

# K-means restarts per K (k-means++ seeding each): on three features, 2 restarts choose the
# same K and the same segments as 4 on the CDNOW data and the synthetic bases (tested), at half
# the cost.
KMEANS_RESTARTS: Final = 2
# Fit and silhouette sample sizes: K-means centroids from 20,000 points move by well under the
# spread of a segment, and the silhouette of 5,000 points separates the K tried here by more
# than its sampling error (tested on CDNOW against the full computation).
FIT_SAMPLE: Final = 20_000
SILHOUETTE_SAMPLE: Final = 5_000
# A cluster whose typical customer bought on fewer days than this is "one-time".
_ONE_TIME_BELOW: Final = 1.5


@dataclass(frozen=True)
class ClusterProfile:
    """One segment in business terms.

    The centroid is the K-means centroid transformed back into business units (``expm1`` of the
    de-standardised log feature): roughly the geometric mean of the cluster's customers, i.e. a
    typical member rather than an average pulled up by a few big spenders.
    """

    cluster_id: int
    name: str
    size: int
    share: float
    centroid_recency_days: float
    centroid_frequency: float
    centroid_monetary: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: every field by its name."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterProfile:
        """The inverse of :meth:`to_dict`."""
        return cls(
            cluster_id=int(data["cluster_id"]),
            name=str(data["name"]),
            size=int(data["size"]),
            share=float(data["share"]),
            centroid_recency_days=float(data["centroid_recency_days"]),
            centroid_frequency=float(data["centroid_frequency"]),
            centroid_monetary=float(data["centroid_monetary"]),
        )


@dataclass(frozen=True)
class BehaviouralSegmentation:
    """A fitted segmentation: enough to assign new customers and to describe each segment.

    ``feature_means``, ``feature_stds`` and ``centroids`` are in feature space (standardised
    log1p of recency, frequency, monetary, in that order); ``centroids[i]`` is cluster ``i``.
    ``silhouette_by_k`` holds every K that could be scored; ``silhouette`` is the chosen K's
    (``None`` for the single "Everyone" cluster). ``note`` says what was unusual, if anything.
    """

    k: int
    clusters: tuple[ClusterProfile, ...]
    feature_means: tuple[float, float, float]
    feature_stds: tuple[float, float, float]
    centroids: tuple[tuple[float, float, float], ...]
    silhouette_by_k: Mapping[int, float]
    silhouette: float | None
    customers: int
    fitted_on: int
    random_state: int
    note: str | None = None

    def __post_init__(self) -> None:
        if self.k < 1 or len(self.centroids) != self.k or len(self.clusters) != self.k:
            raise ValueError(
                f"a segmentation with k={self.k} needs k centroids and k cluster profiles, got "
                f"{len(self.centroids)} and {len(self.clusters)}"
            )
        if any(std <= 0 for std in self.feature_stds):
            raise ValueError(f"feature standard deviations must be > 0, got {self.feature_stds}")

    def profile(self, cluster_id: int) -> ClusterProfile:
        """The profile of one cluster."""
        return self.clusters[cluster_id]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``silhouette_by_k`` keys become strings, as JSON requires)."""
        return {
            "k": self.k,
            "clusters": [cluster.to_dict() for cluster in self.clusters],
            "feature_means": list(self.feature_means),
            "feature_stds": list(self.feature_stds),
            "centroids": [list(centroid) for centroid in self.centroids],
            "silhouette_by_k": {str(k): score for k, score in self.silhouette_by_k.items()},
            "silhouette": self.silhouette,
            "customers": self.customers,
            "fitted_on": self.fitted_on,
            "random_state": self.random_state,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BehaviouralSegmentation:
        """The inverse of :meth:`to_dict`."""
        silhouette = data.get("silhouette")
        return cls(
            k=int(data["k"]),
            clusters=tuple(ClusterProfile.from_dict(cluster) for cluster in data["clusters"]),
            feature_means=_triple(data["feature_means"]),
            feature_stds=_triple(data["feature_stds"]),
            centroids=tuple(_triple(centroid) for centroid in data["centroids"]),
            silhouette_by_k={int(k): float(s) for k, s in data["silhouette_by_k"].items()},
            silhouette=None if silhouette is None else float(silhouette),
            customers=int(data["customers"]),
            fitted_on=int(data["fitted_on"]),
            random_state=int(data["random_state"]),
            note=data.get("note"),
        )


def fit_behavioural_segments(
    recency_days: npt.ArrayLike,
    frequency: npt.ArrayLike,
    monetary: npt.ArrayLike,
    *,
    k_range: Iterable[int] = range(2, 9),
    random_state: int = 0,
    silhouette_sample: int = SILHOUETTE_SAMPLE,
    fit_sample: int = FIT_SAMPLE,
    restarts: int = KMEANS_RESTARTS,
) -> BehaviouralSegmentation:
    """Cluster the base, choosing K by silhouette; see the module docstring for the method.

    A base of fewer than 3 customers, or one where every customer has the same features, or one
    where no K in ``k_range`` can be scored, gets a single cluster "Everyone" with a ``note``.
    Raises only for invalid measures (:class:`~scoring_service.domain.rfm.InvalidRfmInput`) or
    a sample size below 2.
    """
    if silhouette_sample < 2 or fit_sample < 2 or restarts < 1:
        raise ValueError("silhouette_sample and fit_sample must be >= 2, restarts >= 1")
    recency, freq, money = (a.ravel() for a in as_rfm_measures(recency_days, frequency, monetary))
    customers = int(recency.size)
    raw = _log_features(recency, freq, money)
    means = raw.mean(axis=0) if customers else np.zeros(3)
    spread = raw.std(axis=0) if customers else np.ones(3)
    stds = np.where(spread > 0, spread, 1.0)
    features = (raw - means) / stds
    segmentation = partial(
        _segmentation, features=features, means=means, stds=stds, random_state=random_state
    )
    everyone = partial(segmentation, centroids=np.zeros((1, 3)), names=[EVERYONE], silhouette=None)

    if customers < 3:
        too_few = f"only {customers} customer(s): too few to cluster (at least 3 needed)"
        return everyone(silhouettes={}, fitted_on=customers, note=too_few)
    if np.all(raw == raw[0]):
        same = "every customer has the same recency, frequency and spend"
        return everyone(silhouettes={}, fitted_on=customers, note=same)

    rng = np.random.default_rng(random_state)
    fit_rows = _sample(rng, customers, fit_sample)
    fit_features = features[fit_rows]
    scored_features = fit_features[_sample(rng, len(fit_rows), silhouette_sample)]
    # One thread: on a shared host, OpenMP's and BLAS's pools spin while waiting for cores
    # that other processes hold; with 2 busy cores the threaded fit took 3-4x the CPU and up
    # to 6x the time of a single thread (bench/RESULTS.md, scoring-scale).
    with threadpool_limits(limits=1):
        silhouettes, centroids = _best_kmeans(
            fit_features,
            scored_features,
            k_range=k_range,
            random_state=random_state,
            restarts=restarts,
        )
    if centroids is None:
        unscored = "no K in k_range could be scored on this base (too few distinct customers)"
        return everyone(silhouettes=silhouettes, fitted_on=len(fit_rows), note=unscored)

    # Most valuable first: recent (low recency), frequent, big spenders.
    value = centroids[:, 1] + centroids[:, 2] - centroids[:, 0]
    centroids = centroids[np.argsort(-value, kind="stable")]
    medians = np.array([np.median(recency), np.median(freq), np.median(money)])
    business = np.expm1(centroids * stds + means)
    names = _unique_names([_cluster_name(row, medians) for row in business])
    note: str | None = None
    if customers > fit_sample:
        note = (
            f"K-means fitted on a random sample of {fit_sample:,} of {customers:,} customers; "
            "all customers assigned to the nearest centroid"
        )
    return segmentation(
        centroids=centroids,
        names=names,
        silhouettes=silhouettes,
        silhouette=silhouettes[len(centroids)],
        fitted_on=len(fit_rows),
        note=note,
    )


def assign_segments(
    segmentation: BehaviouralSegmentation,
    recency_days: npt.ArrayLike,
    frequency: npt.ArrayLike,
    monetary: npt.ArrayLike,
) -> Ints:
    """The cluster id of each customer: the nearest centroid (the lower id on an exact tie).

    Shaped as the input; a single customer gives a 0-d array (``int(...)`` reads it).
    """
    recency, freq, money = as_rfm_measures(recency_days, frequency, monetary)
    features = _standardise(
        _log_features(recency.ravel(), freq.ravel(), money.ravel()),
        np.array(segmentation.feature_means),
        np.array(segmentation.feature_stds),
    )
    centroids = np.array(segmentation.centroids, dtype=np.float64)
    return _nearest(features, centroids).reshape(recency.shape)


def _sample(rng: np.random.Generator, rows: int, at_most: int) -> NDArray[np.intp]:
    """All row indices, or a sorted random sample of ``at_most`` of them."""
    if rows <= at_most:
        return np.arange(rows)
    return np.sort(rng.choice(rows, size=at_most, replace=False))


def _best_kmeans(
    fit_features: Floats,
    scored_features: Floats,
    *,
    k_range: Iterable[int],
    random_state: int,
    restarts: int,
) -> tuple[dict[int, float], Floats | None]:
    """The silhouette of every K that could be scored, and the centroids of the best K.

    On a tie the smaller K wins. ``scored_features`` are a subset of ``fit_features`` rows.
    """
    distinct = len(np.unique(fit_features, axis=0))
    centroids_by_k: dict[int, Floats] = {}
    scored_labels_by_k: dict[int, Ints] = {}
    for k in sorted(set(k_range)):
        # Silhouette needs 2 <= labels <= samples - 1, and K-means cannot find more clusters
        # than there are distinct points.
        if k < 2 or k > distinct or k > len(scored_features) - 1:
            continue
        with warnings.catch_warnings():
            # "Fewer distinct clusters than K" is handled below by skipping that K.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = KMeans(n_clusters=k, n_init=restarts, random_state=random_state)
            model.fit(fit_features)
        centroids = np.asarray(model.cluster_centers_, dtype=np.float64)
        scored_labels = _nearest(scored_features, centroids)
        if len(np.unique(model.labels_)) == k and len(np.unique(scored_labels)) >= 2:
            centroids_by_k[k] = centroids
            scored_labels_by_k[k] = scored_labels
    silhouettes = _mean_silhouettes(scored_features, scored_labels_by_k)
    if not silhouettes:
        return silhouettes, None
    best_k = max(silhouettes, key=lambda k: (silhouettes[k], -k))
    return silhouettes, centroids_by_k[best_k]


def _log_features(recency: Floats, frequency: Floats, monetary: Floats) -> Floats:
    features: Floats = np.log1p(np.column_stack((recency, frequency, np.maximum(monetary, 0.0))))
    return features


def _standardise(raw: Floats, means: Floats, stds: Floats) -> Floats:
    standardised: Floats = (raw - means) / stds
    return standardised


def _nearest(features: Floats, centroids: Floats) -> Ints:
    # One pass per centroid keeps memory at a few arrays of n floats, even for millions of rows.
    labels = np.zeros(len(features), dtype=np.int64)
    best = np.full(len(features), np.inf)
    for cluster_id, centroid in enumerate(centroids):
        distance = np.square(features - centroid).sum(axis=1)
        closer = distance < best
        labels[closer] = cluster_id
        best[closer] = distance[closer]
    return labels


def _mean_silhouettes(features: Floats, labelings: Mapping[int, Ints]) -> dict[int, float]:
    """The mean silhouette of each labelling of the same rows, as sklearn's silhouette_score.

    The pairwise distances do not depend on K, so each block of them is computed once and
    summed per cluster of every K at once, by one matrix product with the one-hot labels of
    all the K side by side: several times faster than calling silhouette_score per K. A
    point alone in its cluster scores 0, as in sklearn.
    """
    if not labelings:
        return {}
    rows = len(features)
    ks = list(labelings)
    offsets = np.cumsum([0, *ks])  # columns of K = ks[i]: offsets[i]:offsets[i + 1]
    one_hot = np.zeros((rows, int(offsets[-1])))
    members = np.zeros(int(offsets[-1]))
    for i, k in enumerate(ks):
        one_hot[np.arange(rows), offsets[i] + labelings[k]] = 1.0
        members[offsets[i] : offsets[i + 1]] = np.bincount(labelings[k], minlength=k)
    totals = dict.fromkeys(ks, 0.0)
    squared_norms = np.square(features).sum(axis=1)
    block = max(1, 2_000_000 // rows)  # about 16 MB of distances at a time
    for start in range(0, rows, block):
        chunk = slice(start, min(start + block, rows))
        squared = squared_norms[chunk, None] + squared_norms[None, :]
        squared -= 2.0 * features[chunk] @ features.T
        distances = np.sqrt(np.maximum(squared, 0.0))
        mean_to_all = distances @ one_hot / np.maximum(members, 1)  # mean to each cluster
        # A cluster absent from these rows (a small one the silhouette sample missed) is no
        # one's nearest other cluster: sklearn only knows the labels present.
        mean_to_all[:, members == 0] = np.inf
        index = np.arange(chunk.stop - chunk.start)
        for i, k in enumerate(ks):
            own = labelings[k][chunk]
            mean_to = mean_to_all[:, offsets[i] : offsets[i + 1]]
            own_size = members[offsets[i] + own]
            within = mean_to[index, own] * own_size / np.maximum(own_size - 1, 1)
            mean_to[index, own] = np.inf
            nearest_other = mean_to.min(axis=1)
            widest = np.maximum(within, nearest_other)
            value = np.divide(
                nearest_other - within, widest, out=np.zeros_like(widest), where=widest > 0
            )
            totals[k] += float(np.where(own_size > 1, value, 0.0).sum())
    return {k: total / rows for k, total in totals.items()}


def _cluster_name(centroid: Floats, medians: Floats) -> str:
    recency, frequency, monetary = (float(v) for v in centroid)
    when = "Recent" if recency <= medians[0] else "Lapsed"
    if frequency < _ONE_TIME_BELOW:
        how_often = "one-time"
    elif frequency > medians[1]:
        how_often = "frequent"
    else:
        how_often = "occasional"
    spend = "big spenders" if monetary > medians[2] else "low spenders"
    return f"{when} {how_often} {spend}"


def _unique_names(names: list[str]) -> list[str]:
    seen: Counter[str] = Counter()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name} {seen[name]}")
    return unique


def _segmentation(
    *,
    centroids: Floats,
    names: list[str],
    features: Floats,
    means: Floats,
    stds: Floats,
    silhouettes: Mapping[int, float],
    silhouette: float | None,
    fitted_on: int,
    random_state: int,
    note: str | None,
) -> BehaviouralSegmentation:
    customers = len(features)
    labels = _nearest(features, centroids)
    sizes = np.bincount(labels, minlength=len(centroids))
    business = np.expm1(centroids * stds + means)
    clusters = tuple(
        ClusterProfile(
            cluster_id=cluster_id,
            name=names[cluster_id],
            size=int(sizes[cluster_id]),
            share=float(sizes[cluster_id] / customers) if customers else 0.0,
            centroid_recency_days=float(business[cluster_id, 0]),
            centroid_frequency=float(business[cluster_id, 1]),
            centroid_monetary=float(business[cluster_id, 2]),
        )
        for cluster_id in range(len(centroids))
    )
    return BehaviouralSegmentation(
        k=len(centroids),
        clusters=clusters,
        feature_means=_triple(means),
        feature_stds=_triple(stds),
        centroids=tuple(_triple(centroid) for centroid in centroids),
        silhouette_by_k=dict(silhouettes),
        silhouette=silhouette,
        customers=customers,
        fitted_on=fitted_on,
        random_state=random_state,
        note=note,
    )


def _triple(values: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c
