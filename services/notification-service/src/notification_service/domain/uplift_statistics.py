"""Confidence intervals for the difference a rule makes between its treated and held-out groups.

Rates (did the customer buy again?) use Newcombe's hybrid score interval for a difference of
two proportions (Newcombe 1998, method 10: the two groups' Wilson intervals combined), which
keeps its coverage for small groups and rates near 0 or 1 where the textbook Wald interval does
not; the relative uplift (treated / held out - 1) uses the log risk ratio (Katz et al. 1978);
the p-value is the pooled two-proportion z-test's.

Means (revenue per customer) use Welch's t interval for a difference of means with unequal
variances (Welch-Satterthwaite degrees of freedom), and the log ratio of the means with the
delta method for the relative uplift. Revenue is skewed (most customers spend nothing), so the
interval leans on the central limit theorem: read it with groups of a few dozen or more.

Everything is plain Python (``statistics.NormalDist``; the t quantile below), so the service
needs no numerical library for a handful of figures per request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, fmean, variance
from typing import Final

__all__ = [
    "Interval",
    "Uplift",
    "mean_uplift",
    "proportion_uplift",
    "student_t_quantile",
    "wilson_interval",
]

_NORMAL: Final = NormalDist()


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval."""

    estimate: float
    low: float
    high: float

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies in the interval (bounds included)."""
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Uplift:
    """Treated minus held out (``absolute``) and treated / held out - 1 (``relative``; None
    when the held-out figure is 0 and a ratio means nothing), with the two-sided p-value of
    "no difference" where the test gives one."""

    absolute: Interval
    relative: Interval | None
    p_value: float | None
    confidence: float


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return _NORMAL.inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of a proportion ``successes / trials``."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0: {successes}/{trials}")
    z = _z(confidence)
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    # At 0 or all successes the bound is exactly 0 or 1; rounding would leave 1e-17.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(p, low, high)


def proportion_uplift(
    treated_successes: int,
    treated: int,
    control_successes: int,
    control: int,
    confidence: float = 0.95,
) -> Uplift:
    """The difference between two rates with Newcombe's interval, the relative uplift with
    the log risk ratio's, and the pooled z-test's p-value."""
    t = wilson_interval(treated_successes, treated, confidence)
    c = wilson_interval(control_successes, control, confidence)
    p1, p0 = t.estimate, c.estimate
    difference = p1 - p0
    absolute = Interval(
        difference,
        difference - math.hypot(p1 - t.low, c.high - p0),
        difference + math.hypot(t.high - p1, p0 - c.low),
    )
    relative = None
    if treated_successes > 0 and control_successes > 0:
        z = _z(confidence)
        log_ratio = math.log(p1 / p0)
        spread = z * math.sqrt(
            1 / treated_successes - 1 / treated + 1 / control_successes - 1 / control
        )
        relative = Interval(
            p1 / p0 - 1, math.exp(log_ratio - spread) - 1, math.exp(log_ratio + spread) - 1
        )
    pooled = (treated_successes + control_successes) / (treated + control)
    error = math.sqrt(pooled * (1 - pooled) * (1 / treated + 1 / control))
    p_value = 1.0 if error == 0 else 2 * (1 - _NORMAL.cdf(abs(difference) / error))
    return Uplift(absolute, relative, p_value, confidence)


def mean_uplift(
    treated: Sequence[float], control: Sequence[float], confidence: float = 0.95
) -> Uplift:
    """The difference between two means with Welch's t interval (and p-value), and the ratio
    of the means minus 1 with a delta-method interval on its logarithm."""
    n1, n0 = len(treated), len(control)
    if n1 < 2 or n0 < 2:
        raise ValueError(f"need at least 2 values per group, got {n1} and {n0}")
    m1, m0 = fmean(treated), fmean(control)
    v1, v0 = variance(treated, m1) / n1, variance(control, m0) / n0
    difference = m1 - m0
    error = math.sqrt(v1 + v0)
    if error == 0:
        absolute = Interval(difference, difference, difference)
        p_value: float | None = 1.0 if difference == 0 else 0.0
    else:
        freedom = (v1 + v0) ** 2 / (v1 * v1 / (n1 - 1) + v0 * v0 / (n0 - 1))
        spread = student_t_quantile(0.5 + confidence / 2, freedom) * error
        absolute = Interval(difference, difference - spread, difference + spread)
        p_value = _two_sided_t_p_value(abs(difference) / error, freedom)
    relative = None
    if m1 > 0 and m0 > 0:
        z = _z(confidence)
        spread = z * math.sqrt(v1 / (m1 * m1) + v0 / (m0 * m0))
        log_ratio = math.log(m1 / m0)
        relative = Interval(
            m1 / m0 - 1, math.exp(log_ratio - spread) - 1, math.exp(log_ratio + spread) - 1
        )
    return Uplift(absolute, relative, p_value, confidence)


def student_t_quantile(probability: float, freedom: float) -> float:
    """The ``probability`` quantile of Student's t with ``freedom`` degrees of freedom.

    Exact for 1 and 2 degrees (closed forms; a fractional count below 3 is rounded down, which
    only widens an interval); from 3 on the Cornish-Fisher expansion around the normal quantile
    (Abramowitz and Stegun 26.7.5), within 0.5% of the exact value there for the tails used here.
    """
    if not 0.0 < probability < 1.0 or freedom < 1:
        raise ValueError(f"need 0 < probability < 1 and freedom >= 1: {probability}, {freedom}")
    if freedom < 2:
        return math.tan(math.pi * (probability - 0.5))
    if freedom < 3:
        return (2 * probability - 1) / math.sqrt(2 * probability * (1 - probability))
    z = _NORMAL.inv_cdf(probability)
    n = freedom
    return (
        z
        + (z**3 + z) / (4 * n)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * n**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * n**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * n**4)
    )


def _two_sided_t_p_value(statistic: float, freedom: float) -> float:
    # Hill's (1970) normalising transformation of t to z: accurate to a few 1e-4 from 3
    # degrees of freedom on, which is all a p-value printed with 3 decimals needs.
    n = max(freedom, 1.0)
    a = n - 0.5
    b = 48 * a * a
    w = math.sqrt(a * math.log1p(statistic * statistic / n))
    z = (
        w
        + (w**3 + 3 * w) / b
        - (4 * w**7 + 33 * w**5 + 240 * w**3 + 855 * w) / (10 * b * (b + 0.8 * w**4 + 100))
    )
    return 2 * (1 - _NORMAL.cdf(z))
