"""Measured effect: outcomes in the window, and intervals that cover the truth on simulations."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from scipy import stats

from notification_service.domain.effects import (
    CHURN_WARNING_TRIGGER,
    Exposure,
    OrderFact,
    customer_outcome,
    measure_effect,
)
from notification_service.domain.holdout import group_of
from notification_service.domain.uplift_statistics import (
    mean_uplift,
    proportion_uplift,
    student_t_quantile,
    wilson_interval,
)

T0 = datetime(1997, 9, 30, tzinfo=UTC)
WINDOW = timedelta(days=30)
AS_OF = T0 + timedelta(days=365)


def test_only_orders_in_the_window_after_the_trigger_count_net_of_refunds() -> None:
    orders = [
        OrderFact(T0, Decimal("99")),  # the triggering order itself
        OrderFact(T0 - timedelta(days=1), Decimal("10")),
        OrderFact(T0 + timedelta(days=5), Decimal("50"), refunded=Decimal("20")),
        OrderFact(T0 + timedelta(days=6), Decimal("70"), cancelled=True),
        OrderFact(T0 + timedelta(days=7), Decimal("30"), refunded=Decimal("45")),
        OrderFact(T0 + WINDOW, Decimal("5")),  # the window's last instant is in
        OrderFact(T0 + WINDOW + timedelta(seconds=1), Decimal("1000")),
    ]
    outcome = customer_outcome(T0, orders, WINDOW)
    assert outcome.repurchased
    assert outcome.revenue == Decimal("35")


def test_a_fully_refunded_or_cancelled_order_is_no_repurchase() -> None:
    orders = [
        OrderFact(T0 + timedelta(days=2), Decimal("40"), refunded=Decimal("40")),
        OrderFact(T0 + timedelta(days=3), Decimal("40"), cancelled=True),
    ]
    assert customer_outcome(T0, orders, WINDOW).repurchased is False


def test_open_windows_are_pending_and_each_customer_counts_once_from_the_first_trigger() -> None:
    late = Exposure("late", "treatment", AS_OF - timedelta(days=3), "order.placed")
    buy = (OrderFact(T0 + timedelta(days=40), Decimal("10")),)
    first = Exposure("twice", "treatment", T0, "order.placed", buy)
    second = Exposure("twice", "treatment", T0 + timedelta(days=35), "order.placed", buy)
    held = Exposure("held", "holdout", T0, "order.placed")
    effect = measure_effect([late, second, first, held], WINDOW, AS_OF)
    assert effect.pending == 1
    assert effect.treated.customers == 1
    assert effect.treated.repurchased == 0
    assert effect.held_out.customers == 1
    assert effect.repurchase is not None
    assert effect.revenue is None


def test_churn_warnings_are_saved_by_an_order_within_the_window() -> None:
    order = (OrderFact(T0 + timedelta(days=3), Decimal("25")),)
    effect = measure_effect(
        [
            Exposure("a", "treatment", T0, CHURN_WARNING_TRIGGER, order),
            Exposure("b", "treatment", T0, CHURN_WARNING_TRIGGER),
            Exposure("c", "holdout", T0, CHURN_WARNING_TRIGGER),
        ],
        WINDOW,
        AS_OF,
    )
    assert effect.warnings_judged
    assert (effect.treated.warnings_saved, effect.treated.warnings_lost) == (1, 1)
    assert (effect.held_out.warnings_saved, effect.held_out.warnings_lost) == (0, 1)


def _population(
    rng: random.Random, customers: int, base_rate: float, lift: float, share: float = 0.1
) -> list[Exposure]:
    """A rule firing for ``customers`` at T0; treated ones buy again with ``base_rate + lift``,
    held-out ones with ``base_rate``; a repurchase spends 20 to 60 (mean 40) either way."""
    exposures = []
    for n in range(customers):
        customer = f"sim-{n}"
        group = group_of("retention-offer", customer, share)
        rate = base_rate + (lift if group == "treatment" else 0.0)
        orders: tuple[OrderFact, ...] = ()
        if rng.random() < rate:
            day = timedelta(days=rng.uniform(0.1, 29.9))
            orders = (OrderFact(T0 + day, Decimal(str(round(rng.uniform(20, 60), 2)))),)
        exposures.append(Exposure(customer, group, T0, CHURN_WARNING_TRIGGER, orders))
    return exposures


@pytest.mark.parametrize(("lift", "label"), [(0.08, "the offer works"), (0.0, "it does nothing")])
def test_the_intervals_cover_the_true_uplift_on_a_simulated_population(
    lift: float, label: str
) -> None:
    effect = measure_effect(_population(random.Random(13), 6000, 0.20, lift), WINDOW, AS_OF)
    assert effect.repurchase is not None, label
    assert effect.revenue is not None, label
    assert effect.repurchase.absolute.covers(lift)
    assert effect.revenue.absolute.covers(lift * 40.0)
    assert effect.repurchase.relative is not None
    assert effect.repurchase.relative.covers(lift / 0.20)
    if lift == 0.0:
        assert effect.repurchase.absolute.covers(0.0)
    else:  # 6,000 customers and a 40% relative lift: the interval excludes no effect
        assert effect.repurchase.absolute.low > 0.0


@pytest.mark.parametrize("lift", [0.05, 0.0])
def test_the_95_percent_intervals_cover_the_truth_about_95_percent_of_the_time(
    lift: float,
) -> None:
    rng = random.Random(2026)
    runs = 200
    rate_hits = revenue_hits = 0
    for _ in range(runs):
        effect = measure_effect(_population(rng, 2000, 0.15, lift), WINDOW, AS_OF)
        assert effect.repurchase is not None
        assert effect.revenue is not None
        rate_hits += effect.repurchase.absolute.covers(lift)
        revenue_hits += effect.revenue.absolute.covers(lift * 40.0)
    # 200 runs at a true 95%: the coverage lies in [0.90, 0.99] but 1 time in 1,000.
    assert 0.90 <= rate_hits / runs <= 0.99
    assert 0.90 <= revenue_hits / runs <= 0.99


def test_the_rate_interval_matches_newcombes_published_example() -> None:
    # Newcombe (1998), table II, example (a): 56/70 vs 48/80 -> difference 0.2, CI 0.0524..0.3339.
    uplift = proportion_uplift(56, 70, 48, 80)
    assert uplift.absolute.estimate == pytest.approx(0.2)
    assert uplift.absolute.low == pytest.approx(0.0524, abs=1e-4)
    assert uplift.absolute.high == pytest.approx(0.3339, abs=1e-4)
    assert wilson_interval(0, 10).low == 0.0


def test_the_rate_p_value_is_the_pooled_z_tests() -> None:
    uplift = proportion_uplift(56, 70, 48, 80)
    table = [[56, 14], [48, 32]]
    _chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert uplift.p_value == pytest.approx(p, rel=1e-6)


@pytest.mark.parametrize("freedom", [1, 2, 3, 4.5, 7, 12, 30, 200, 5000])
def test_the_t_quantile_agrees_with_scipy(freedom: float) -> None:
    # Exact closed forms at 1 and 2 degrees of freedom, the expansion within 0.5% from 3 on.
    tolerance = 1e-9 if freedom < 3 else 0.005
    exact = stats.t.ppf(0.975, freedom)
    assert student_t_quantile(0.975, freedom) == pytest.approx(exact, rel=tolerance)


def test_the_revenue_interval_matches_welchs_t_test() -> None:
    rng = random.Random(7)
    treated = [rng.expovariate(1 / 30) for _ in range(40)]
    control = [rng.expovariate(1 / 20) for _ in range(25)]
    uplift = mean_uplift(treated, control)
    result = stats.ttest_ind(treated, control, equal_var=False)
    low, high = result.confidence_interval(0.95)
    assert uplift.absolute.low == pytest.approx(low, rel=5e-3)
    assert uplift.absolute.high == pytest.approx(high, rel=5e-3)
    assert uplift.p_value == pytest.approx(result.pvalue, abs=2e-3)


def test_groups_too_small_or_flat_give_honest_answers() -> None:
    flat: Callable[[int], list[float]] = lambda n: [0.0] * n  # noqa: E731
    uplift = mean_uplift(flat(5), flat(5))
    assert (uplift.absolute.low, uplift.absolute.high, uplift.relative) == (0.0, 0.0, None)
    with pytest.raises(ValueError, match="at least 2"):
        mean_uplift([1.0], [1.0, 2.0])
    assert proportion_uplift(0, 10, 0, 10).relative is None
