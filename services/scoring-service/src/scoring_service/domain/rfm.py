"""RFM: recency, frequency and monetary scores 1-5 and the named segments built from them.

The cut points are the 20/40/60/80 % quantiles of each measure over the customer base, fitted on
each refit (:func:`fit_rfm_thresholds`) and applied to any customer between refits
(:func:`score_rfm`). A score depends only on the customer's own value and the stored cut points,
so identical inputs always get identical scores, and scoring the fitted base again in one batch
or one customer at a time gives the same answer.

Ties. A customer must *beat* a cut point to pass it: a value equal to a cut point takes the lower
score. The cut points are observed values of the base (inverted-CDF quantiles), so with distinct
values the base splits into five groups of equal size, and with ties a higher score is never
over-awarded: at most 20 % of the base scores 5, at most 40 % scores 4 or more, and so on. A block
of identical values that straddles a cut point therefore stays together on the lower side. The
common case is frequency: when most customers bought once, every one-time buyer has F=1, the
next score in use is the one whose group starts above them (e.g. F=4 for two-time buyers when
75 % of the base bought once), and the middle scores stay empty. Recency is scored the same way
on "how recent" (fewer days is better), so a block of customers tied on the same day count
that straddles a cut point all take the less recent score.

Degenerate cut points. When all four cut points of a measure are equal, that measure ranks
nobody in the base: a tiny base (one customer), or one whose customers all share the value
(everybody bought once, or everybody bought today). The tie rule would then score everyone
tied with them 1 (a new shop's first customer, who bought today, was "Lost"); instead a value
equal to degenerate cut points takes the middle score, 3, and only values beyond them move up
or down. So recency 0 (bought today) never scores R=1, on any base. A base smaller than
`MIN_CUSTOMERS_FOR_QUINTILES`, or with a degenerate measure, gives provisional scores:
:func:`rfm_caveat` says why, and the score carries it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

__all__ = [
    "MIN_CUSTOMERS_FOR_QUINTILES",
    "RFM_QUANTILES",
    "SEGMENT_DESCRIPTIONS",
    "SEGMENT_NAMES",
    "InvalidRfmInput",
    "RfmThresholds",
    "as_rfm_measures",
    "fit_rfm_thresholds",
    "rfm_caveat",
    "rfm_segment",
    "rfm_segment_name",
    "score_rfm",
]

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Names = NDArray[np.str_]

# The base is cut into fifths.
RFM_QUANTILES: Final = (0.2, 0.4, 0.6, 0.8)
# Fewer customers than this make fifths of four or fewer: the scores are provisional.
MIN_CUSTOMERS_FOR_QUINTILES: Final = 20
_MIDDLE_SCORE: Final = 3

SEGMENT_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "Champions": "Bought recently, buy often: the best customers; reward and ask for reviews.",
    "Loyal": "Buy often and fairly recently: the dependable core; offer loyalty perks.",
    "Potential Loyalist": "Recent customers with a few purchases: nurture them into regulars.",
    "New": "Bought very recently for the first time: welcome them and help the second order.",
    "Promising": "Bought fairly recently, but rarely: build the habit with a relevant offer.",
    "Need Attention": "Average recency and frequency: slipping without a reason to come back.",
    "About to Sleep": "Few purchases and going quiet: reactivate before they are lost.",
    "At Risk": "Used to buy regularly but not for a while: win them back with a personal offer.",
    "Cannot Lose Them": "Among the most frequent buyers, now silent a long time: act first.",
    "Hibernating": "Few purchases, long ago: low priority, include in broad reactivation.",
    "Lost": "Fewest purchases, longest ago: unlikely to return without a strong reason.",
}
SEGMENT_NAMES: Final = tuple(SEGMENT_DESCRIPTIONS)

# The R x F grid in common use (rows R=1..5, columns F=1..5); monetary does not name a segment.
_SEGMENT_GRID: Final = (
    ("Lost", "Hibernating", "At Risk", "At Risk", "Cannot Lose Them"),
    ("Hibernating", "Hibernating", "At Risk", "At Risk", "Cannot Lose Them"),
    ("About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"),
    ("Promising", "Potential Loyalist", "Potential Loyalist", "Loyal", "Loyal"),
    ("New", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
)
_SEGMENT_LOOKUP: Final = np.array(_SEGMENT_GRID, dtype=np.str_)


class InvalidRfmInput(ValueError):
    """The RFM measures or scores cannot be used as given; the message names the measure."""


@dataclass(frozen=True)
class RfmThresholds:
    """The 20/40/60/80 % cut points of each measure over the base at the last refit.

    Each tuple is ascending. Recency cut points are in days; a customer beats a recency cut
    point by having *fewer* days of silence than it, and the other two by having more.
    """

    recency_days: tuple[float, float, float, float]
    frequency: tuple[float, float, float, float]
    monetary: tuple[float, float, float, float]
    customers: int

    def __post_init__(self) -> None:
        for measure in ("recency_days", "frequency", "monetary"):
            cuts = np.asarray(getattr(self, measure), dtype=np.float64)
            if cuts.shape != (4,) or not np.all(np.isfinite(cuts)):
                raise InvalidRfmInput(f"{measure}: expected four finite cut points, got {cuts}")
            if np.any(np.diff(cuts) < 0):
                raise InvalidRfmInput(f"{measure}: cut points must be ascending, got {cuts}")
        if self.customers < 1:
            raise InvalidRfmInput("thresholds must be fitted on at least one customer")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "recency_days": list(self.recency_days),
            "frequency": list(self.frequency),
            "monetary": list(self.monetary),
            "customers": self.customers,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RfmThresholds:
        """The inverse of :meth:`to_dict`."""
        return cls(
            recency_days=_four(data["recency_days"]),
            frequency=_four(data["frequency"]),
            monetary=_four(data["monetary"]),
            customers=int(data["customers"]),
        )


def as_rfm_measures(
    recency_days: npt.ArrayLike, frequency: npt.ArrayLike, monetary: npt.ArrayLike
) -> tuple[Floats, Floats, Floats]:
    """The three measures as float arrays of one shape, checked.

    Recency and frequency must be finite and non-negative; monetary must be finite (it may be
    negative when refunds exceed purchases). Raises :class:`InvalidRfmInput` naming the measure.
    """
    arrays = []
    for name, values, non_negative in (
        ("recency_days", recency_days, True),
        ("frequency", frequency, True),
        ("monetary", monetary, False),
    ):
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidRfmInput(f"{name}: not numeric ({exc})") from None
        if not np.all(np.isfinite(array)):
            raise InvalidRfmInput(f"{name}: every value must be a finite number (no NaN or inf)")
        if non_negative and np.any(array < 0):
            raise InvalidRfmInput(f"{name}: values must be >= 0, found {array.min()}")
        arrays.append(array)
    recency, freq, money = arrays
    if not (recency.shape == freq.shape == money.shape):
        raise InvalidRfmInput(
            "recency_days, frequency and monetary must have the same shape, got "
            f"{recency.shape}, {freq.shape}, {money.shape}"
        )
    return recency, freq, money


def fit_rfm_thresholds(
    recency_days: npt.ArrayLike, frequency: npt.ArrayLike, monetary: npt.ArrayLike
) -> RfmThresholds:
    """The cut points of the current base (one value per customer in each array)."""
    recency, freq, money = as_rfm_measures(recency_days, frequency, monetary)
    if recency.size == 0:
        raise InvalidRfmInput("cannot fit RFM thresholds on an empty customer base")
    quantiles = np.array(RFM_QUANTILES)
    # Recency is ranked on "how recent", i.e. on -days, so that the tie rule (a value equal to a
    # cut point takes the lower score) means "the less recent score" here too.
    recency_cuts = np.sort(-np.quantile(-recency.ravel(), quantiles, method="inverted_cdf"))
    return RfmThresholds(
        recency_days=_four(recency_cuts),
        frequency=_four(np.quantile(freq.ravel(), quantiles, method="inverted_cdf")),
        monetary=_four(np.quantile(money.ravel(), quantiles, method="inverted_cdf")),
        customers=int(recency.size),
    )


def score_rfm(
    thresholds: RfmThresholds,
    recency_days: npt.ArrayLike,
    frequency: npt.ArrayLike,
    monetary: npt.ArrayLike,
) -> tuple[Ints, Ints, Ints]:
    """R, F and M scores 1-5 (5 = most recent, most frequent, highest spend), shaped as the input.

    A scalar customer gives 0-d arrays: ``int(r)`` reads the score.
    """
    recency, freq, money = as_rfm_measures(recency_days, frequency, monetary)
    # searchsorted 'left' counts the cut points strictly below the value (beaten by more);
    # 'right' counts those at or below it, i.e. those not beaten by fewer days.
    r = 5 - np.searchsorted(np.array(thresholds.recency_days), recency, side="right")
    f = 1 + np.searchsorted(np.array(thresholds.frequency), freq, side="left")
    m = 1 + np.searchsorted(np.array(thresholds.monetary), money, side="left")
    return (
        _ints(_middle_when_degenerate(r, thresholds.recency_days, recency)),
        _ints(_middle_when_degenerate(f, thresholds.frequency, freq)),
        _ints(_middle_when_degenerate(m, thresholds.monetary, money)),
    )


def rfm_caveat(thresholds: RfmThresholds) -> str | None:
    """Why the RFM scores cut at these thresholds are provisional; None when they are not."""
    reasons = []
    if thresholds.customers < MIN_CUSTOMERS_FOR_QUINTILES:
        customers = f"{thresholds.customers} customer{'s' if thresholds.customers > 1 else ''}"
        reasons.append(
            f"the base has {customers}, too few for quintiles (need {MIN_CUSTOMERS_FOR_QUINTILES})"
        )
    flat = [
        name
        for name, cuts in (
            ("recency", thresholds.recency_days),
            ("frequency", thresholds.frequency),
            ("monetary value", thresholds.monetary),
        )
        if cuts[0] == cuts[-1]
    ]
    if flat:
        verb = "ranks" if len(flat) == 1 else "rank"
        reasons.append(
            f"{', '.join(flat)} {verb} nobody (most of the base shares one value, scored "
            f"{_MIDDLE_SCORE})"
        )
    if not reasons:
        return None
    return "Provisional RFM segment: " + "; ".join(reasons) + "."


def _middle_when_degenerate(
    scores: npt.ArrayLike, cuts: tuple[float, float, float, float], values: Floats
) -> npt.ArrayLike:
    if cuts[0] != cuts[-1]:
        return scores
    return np.where(values == cuts[0], _MIDDLE_SCORE, scores)


def rfm_segment(r: npt.ArrayLike, f: npt.ArrayLike) -> Names:
    """The segment name of each customer from the R and F scores (monetary plays no part)."""
    r_index = _score_index("r", r)
    f_index = _score_index("f", f)
    if r_index.shape != f_index.shape:
        raise InvalidRfmInput(
            f"r and f must have the same shape, got {r_index.shape} and {f_index.shape}"
        )
    return np.asarray(_SEGMENT_LOOKUP[r_index, f_index], dtype=np.str_)


def rfm_segment_name(r: int, f: int) -> str:
    """The segment name of one customer."""
    return str(rfm_segment(r, f))


def _score_index(name: str, scores: npt.ArrayLike) -> NDArray[np.intp]:
    array = np.asarray(scores)
    if array.dtype.kind not in "iuf" or np.any(array != np.round(array)):
        raise InvalidRfmInput(f"{name}: scores must be whole numbers 1-5")
    if np.any((array < 1) | (array > 5)):
        raise InvalidRfmInput(f"{name}: scores must be between 1 and 5")
    return array.astype(np.intp) - 1


def _ints(values: npt.ArrayLike) -> Ints:
    return np.asarray(values, dtype=np.int64)


def _four(values: Any) -> tuple[float, float, float, float]:
    a, b, c, d = (float(v) for v in values)
    return a, b, c, d
