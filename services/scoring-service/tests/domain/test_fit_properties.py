"""Any ledger of valid orders fits or falls back, and scores every customer with finite figures.

Orders are drawn within the contract's bounds (amounts below a trillion with six decimals, times
1900-2200): free orders, refunds up to the full amount, cancellations, one customer, everything
on one day, one order each, huge and tiny amounts. The ledger keeps what `load_ledger` keeps:
net amounts of orders neither cancelled nor refunded in full (a free order stays a purchase).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring_service.domain.models import (
    MIN_CUSTOMERS_FOR_MODELS,
    FittedModels,
    ModelFit,
    fit_models,
)
from scoring_service.domain.predictions import ScoringPolicy
from scoring_service.domain.purchase_history import (
    CustomerHistories,
    PurchaseLedger,
    histories_as_of,
)
from scoring_service.domain.scoring import ScoreTable, score_histories
from scoring_service.workflows.score_publishing import score_payload

MAX_AMOUNT = Decimal("999999999999.999999")  # below MAX_MONEY_AMOUNT, six decimals
FIRST_DAY, LAST_DAY = -25_567, 84_000  # 1900-01-01 and 2199-12-31, days since 1970
POLICY = ScoringPolicy()
PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run: the suite stays deterministic
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Order:
    """One order as the ledger tables keep it."""

    customer: int
    day: int
    amount: Decimal
    refunded: Decimal
    cancelled: bool


def ledger_of(orders: list[Order]) -> PurchaseLedger:
    """What `load_ledger` reads: net amounts of orders not cancelled nor refunded in full."""
    kept = [o for o in orders if not o.cancelled and (o.refunded == 0 or o.amount - o.refunded > 0)]
    return PurchaseLedger(
        customer=np.array([o.customer for o in kept], dtype=np.int64),
        day=np.array([o.day for o in kept], dtype=np.int64),
        amount=np.array([float(o.amount - o.refunded) for o in kept], dtype=np.float64),
    )


amounts = st.one_of(
    st.just(Decimal(0)),
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("0.01"), places=6),
    st.decimals(min_value=Decimal("1"), max_value=Decimal("500"), places=2),
    st.decimals(min_value=Decimal("1e9"), max_value=MAX_AMOUNT, places=6),
)


@st.composite
def orders_of_a_base(draw: st.DrawFn) -> tuple[list[Order], int]:
    """A customer base's orders and an as-of day on or after the last of them."""
    customers = draw(st.integers(min_value=1, max_value=45))
    same_day = draw(st.booleans())
    first = draw(st.integers(min_value=FIRST_DAY, max_value=LAST_DAY))
    span = draw(st.sampled_from([0, 1, 30, 400, 3_000])) if not same_day else 0
    span = min(span, LAST_DAY - first)
    orders_each = draw(st.sampled_from(["one", "few", "many"]))
    orders: list[Order] = []
    for customer in range(customers):
        count = {"one": 1, "few": draw(st.integers(1, 3)), "many": draw(st.integers(1, 8))}[
            orders_each
        ]
        for _ in range(count):
            amount = draw(amounts)
            refund = draw(st.sampled_from(["none", "none", "part", "full"]))
            refunded = {
                "none": Decimal(0),
                "part": (amount / 2).quantize(Decimal("0.000001")),
                "full": amount,
            }[refund]
            orders.append(
                Order(
                    customer=customer,
                    day=first + draw(st.integers(min_value=0, max_value=span)),
                    amount=amount,
                    refunded=refunded,
                    cancelled=draw(st.integers(0, 9)) == 0,
                )
            )
    as_of = min(first + span + draw(st.sampled_from([0, 1, 90, 1_000])), LAST_DAY)
    return orders, as_of


def free_repeat_buyers(count: int, *, first_day: int) -> list[Order]:
    """Customers whose first order is paid and whose repeat orders are all free or refunded."""
    orders = []
    for customer in range(count):
        orders.append(Order(customer, first_day, Decimal("25.00"), Decimal(0), False))
        orders.append(Order(customer, first_day + 10, Decimal("0.00"), Decimal(0), False))
        orders.append(Order(customer, first_day + 20, Decimal("40.00"), Decimal("40.00"), False))
        orders.append(Order(customer, first_day + 30, Decimal("9.99"), Decimal("9.99"), False))
        orders.append(Order(customer, first_day + 30, Decimal("0.00"), Decimal(0), False))
    return orders


def assert_every_score_is_finite(table: ScoreTable, models: FittedModels) -> None:
    """Each figure is a finite number; a model's predictions are missing only without it."""
    p = table.predicted
    for name in (
        "p_alive",
        "expected_purchases_30d",
        "expected_purchases_90d",
        "expected_purchases_365d",
        "churn_risk",
        "expected_interpurchase_days",
    ):
        values = getattr(p, name)
        if models.bg_nbd is None:
            assert np.all(np.isnan(values)), name
        else:
            assert np.all(np.isfinite(values)), (name, values)
    if models.bg_nbd is not None:
        assert np.all((p.churn_risk >= 0) & (p.churn_risk <= 1)), p.churn_risk
    if models.bg_nbd is not None and models.gamma_gamma is not None:
        assert np.all(np.isfinite(p.predicted_clv)), p.predicted_clv
        assert np.all(p.predicted_clv >= 0)
    else:
        assert np.all(np.isnan(p.predicted_clv))
    assert np.all(np.isfinite(table.health.score)), table.health.score
    for name in ("current_pct", "potential_pct", "value_score"):
        assert np.all(np.isfinite(getattr(table.value, name))), name
    for scores in (table.recency_score, table.frequency_score, table.monetary_score):
        assert np.all((scores >= 1) & (scores <= 5))


def fit_and_score(
    histories: CustomerHistories,
    previous: FittedModels | None = None,
    ledger: PurchaseLedger | None = None,
) -> tuple[ModelFit, ScoreTable]:
    fit = fit_models(histories, POLICY, previous=previous, ledger=ledger)
    engagement = np.zeros(len(histories))
    return fit, score_histories(histories, fit.models, POLICY, engagement)


def assert_every_score_can_be_published(table: ScoreTable) -> None:
    """Each customer's `score.updated` passes the contract (money below its bound...)."""
    as_of = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(len(table)):
        score_payload(table, i, f"c{i}", version="v1", as_of=as_of, currency="USD")


@PROPERTY_SETTINGS
@given(orders_of_a_base())
def test_any_ledger_of_valid_orders_fits_or_falls_back_and_scores_are_finite(
    base: tuple[list[Order], int],
) -> None:
    orders, as_of = base
    ledger = ledger_of(orders)
    histories = histories_as_of(ledger, as_of)
    if len(histories) == 0:
        return  # every order cancelled or refunded: the workflow answers "nothing to fit"

    # With the ledger, the churn calibration is fitted on a time split too (or says why not).
    fit, table = fit_and_score(histories, ledger=ledger)
    assert_every_score_is_finite(table, fit.models)
    assert_every_score_can_be_published(table)

    # A refit that starts from this version falls back to it, never to an exception.
    refit, table = fit_and_score(histories, previous=fit.models, ledger=ledger)
    assert_every_score_is_finite(table, refit.models)


def test_repeat_buyers_whose_repeat_orders_were_all_free_are_left_out_of_the_spend_model() -> None:
    paying = [
        Order(
            c,
            19_000 + (c * 37 + k * 53) % 300,
            Decimal(10 + (c + k) * 7 % 90),
            Decimal(0),
            cancelled=False,
        )
        for c in range(40)
        for k in range(1 + c % 4)
    ]
    free = [
        Order(o.customer + 40, o.day, o.amount, o.refunded, o.cancelled)
        for o in free_repeat_buyers(3, first_day=19_050)
    ]
    histories = histories_as_of(ledger_of([*paying, *free]), 19_400)

    fit, table = fit_and_score(histories)

    assert fit.models.gamma_gamma is not None, fit.notes
    assert any("3 repeat buyers" in note and "left out" in note for note in fit.notes), fit.notes
    assert_every_score_is_finite(table, fit.models)
    gg = fit.models.gamma_gamma
    for i in np.flatnonzero(histories.customer >= 40):
        # Valued at the model's spend for a mean repeat spend of 0: below the population mean.
        x = histories.x[i]
        spend = gg.p * gg.v / (gg.p * x + gg.q - 1.0)
        assert spend < gg.population_mean_spend
        assert table.predicted.predicted_clv[i] > 0


def test_a_base_of_free_repeat_buyers_only_keeps_no_spend_model_and_says_why() -> None:
    histories = histories_as_of(
        ledger_of(free_repeat_buyers(MIN_CUSTOMERS_FOR_MODELS + 5, first_day=19_000)), 19_200
    )

    fit, table = fit_and_score(histories)

    assert fit.models.gamma_gamma is None
    assert any("left out" in note for note in fit.notes), fit.notes
    assert_every_score_is_finite(table, fit.models)
