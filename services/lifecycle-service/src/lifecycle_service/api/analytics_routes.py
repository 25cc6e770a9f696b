"""``/v1/analytics``: stage counts, transitions, cohorts, rates and warning outcomes."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query

from crm_contracts import QueryTime, Stage
from crm_shared import (
    EARLIEST_DAY,
    DayPeriod,
    ReadAccess,
    SessionDep,
    TimeWindow,
    day_period,
    time_window,
    utc_now,
)
from crm_shared.errors import UnprocessableContent
from lifecycle_service.api.analytics_schemas import (
    CohortMonthView,
    CohortsView,
    CohortView,
    DistributionsView,
    HistogramView,
    Period,
    RetentionRatesView,
    StageCount,
    StageCountsView,
    TierWarningOutcomeView,
    TransitionCountView,
    TransitionMatrix,
    TransitionsView,
    WarningOutcomesView,
    WarningOutcomeView,
)
from lifecycle_service.domain.counts import month_index, month_label
from lifecycle_service.workflows import analytics, distributions
from lifecycle_service.workflows.analytics import MonthRange, StageMoves

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

DEFAULT_PERIOD_DAYS: Final = 30
DEFAULT_COHORTS: Final = 12
MAX_COHORTS: Final = 60
_MONTH_PATTERN: Final = r"^\d{4}-(0[1-9]|1[0-2])$"


def day_range(
    from_: Annotated[
        date | None,
        Query(
            alias="from",
            ge=EARLIEST_DAY,
            description="First day, included (UTC); default: 29 days before to.",
        ),
    ] = None,
    to: Annotated[
        date | None,
        Query(ge=EARLIEST_DAY, description="Last day, included; default: today."),
    ] = None,
) -> DayPeriod:
    """The period asked for; a period ending before it starts is refused."""
    return day_period(from_, to, default_days=DEFAULT_PERIOD_DAYS, today=utc_now().date())


def month_range(
    from_month: Annotated[
        str | None,
        Query(
            pattern=_MONTH_PATTERN,
            description="First cohort, YYYY-MM; default: 11 months before to_month.",
            examples=["2025-01"],
        ),
    ] = None,
    to_month: Annotated[
        str | None,
        Query(pattern=_MONTH_PATTERN, description="Last cohort, YYYY-MM; default: this month."),
    ] = None,
) -> MonthRange:
    """The cohorts asked for: at most 60, the first not after the last."""
    last = _month(to_month, "to_month") if to_month else month_index(utc_now())
    first = _month(from_month, "from_month") if from_month else last - (DEFAULT_COHORTS - 1)
    if first > last:
        raise UnprocessableContent(
            f"from_month ({month_label(first)}) is after to_month ({month_label(last)})",
            field="from_month",
        )
    if last - first + 1 > MAX_COHORTS:
        raise UnprocessableContent(
            f"at most {MAX_COHORTS} cohorts per request; ask for a shorter range",
            field="from_month",
        )
    return MonthRange(first, last)


def _month(label: str, field: str) -> int:
    year, month = label.split("-")
    index = int(year) * 12 + int(month) - 1  # as counts.month_index
    # Each cohort is followed up to now: an ancient one would answer with thousands of months.
    if index < month_index(EARLIEST_DAY):
        raise UnprocessableContent(f"{field} is before {EARLIEST_DAY:%Y-%m}", field=field)
    return index


def raised_window(
    raised_from: Annotated[
        QueryTime | None, Query(description="Only warnings raised from then (UTC if no offset).")
    ] = None,
    raised_to: Annotated[
        QueryTime | None, Query(description="Only warnings raised before then.")
    ] = None,
) -> TimeWindow:
    """The raised times asked for, in UTC; a window ending before it starts is refused."""
    return time_window(raised_from, raised_to, start_name="raised_from", end_name="raised_to")


PeriodDep = Annotated[DayPeriod, Depends(day_range)]
CohortRangeDep = Annotated[MonthRange, Depends(month_range)]
RaisedWindowDep = Annotated[TimeWindow, Depends(raised_window)]


@router.get("/stages", response_model=StageCountsView, summary="Customers per stage")
async def stages(
    session: SessionDep,
    _: ReadAccess,
    at: Annotated[
        date | None, Query(description="The day to count, at its end (UTC); default: today.")
    ] = None,
) -> StageCountsView:
    """How many customers were in each stage at the end of ``at``: today's figures, or those
    of any past day, from the stored daily counts."""
    on = at or utc_now().date()
    counts = await analytics.stage_counts(session, on)
    return StageCountsView(
        at=on,
        stages=[StageCount(stage=stage, customers=counts[stage]) for stage in Stage],
        total=sum(counts.values()),
    )


@router.get(
    "/stages/monthly",
    response_model=list[StageCountsView],
    summary="Customers per stage at month ends",
)
async def stages_monthly(
    session: SessionDep,
    _: ReadAccess,
    to: Annotated[
        date | None,
        Query(ge=EARLIEST_DAY, description="The last day counted (UTC); default: today."),
    ] = None,
    months: Annotated[
        int, Query(ge=1, le=MAX_COHORTS, description="Points: to, then earlier month ends.")
    ] = 12,
) -> list[StageCountsView]:
    """Customers per stage at the end of each of the ``months - 1`` months before ``to``'s
    month and at the end of ``to``, oldest first: the stage mix over time in one request."""
    last = to or utc_now().date()
    days = [month_end_before(last, back) for back in range(months - 1, -1, -1)]
    views = []
    for on in days:
        counts = await analytics.stage_counts(session, on)
        views.append(
            StageCountsView(
                at=on,
                stages=[StageCount(stage=stage, customers=counts[stage]) for stage in Stage],
                total=sum(counts.values()),
            )
        )
    return views


def month_end_before(day: date, months_back: int) -> date:
    """The last day of the month `months_back` months before `day`'s; `day` itself for 0."""
    if months_back == 0:
        return day
    following = day.year * 12 + day.month - 1 - months_back + 1
    return date(following // 12, following % 12 + 1, 1) - timedelta(days=1)


@router.get("/transitions", response_model=TransitionsView, summary="Stage moves over a period")
async def transitions(session: SessionDep, _: ReadAccess, period: PeriodDep) -> TransitionsView:
    """How many customers moved from each stage to each other stage between ``from`` and
    ``to`` (both included; default: the last 30 days), as a list and as a matrix."""
    moves = await analytics.transitions(session, period)
    return TransitionsView(
        period=_period(period),
        transitions=[
            TransitionCountView(from_stage=source, to_stage=target, customers=count)
            for (source, target), count in sorted(moves.items(), key=_most_customers_first)
        ],
        total=moves.total(),
        matrix=_matrix(moves),
    )


@router.get("/cohorts", response_model=CohortsView, summary="Cohort retention")
async def cohorts(session: SessionDep, _: ReadAccess, months: CohortRangeDep) -> CohortsView:
    """Customers grouped by the month of their first purchase (default: the last 12 months,
    at most 60), and how many of each cohort bought again 0, 1, 2... months later."""
    table = await analytics.cohort_retention(session, months, month_index(utc_now()))
    return CohortsView(
        from_month=month_label(months.first),
        to_month=month_label(months.last),
        through_month=month_label(table.through_month),
        cohorts=[_cohort(row) for row in table.cohorts],
    )


@router.get(
    "/rates", response_model=RetentionRatesView, summary="Retention, churn and repeat purchase"
)
async def rates(session: SessionDep, _: ReadAccess, period: PeriodDep) -> RetentionRatesView:
    """Retention, churn and repeat purchase between ``from`` and ``to`` (both included;
    default: the last 30 days). Retained customers are buyers not churned: new, active, loyal,
    at_risk, dormant or won_back. Retention rate: (retained at the end - new buyers) /
    retained the day before ``from``; churn rate: moves into churned / retained the day before
    ``from``; repeat-purchase rate: customers with 2+ orders / customers with 1+, at the end."""
    found = await analytics.retention_rates(session, period)
    return RetentionRatesView(
        period=_period(period),
        customers_at_start=found.customers_at_start,
        customers_at_end=found.customers_at_end,
        new_buyers=found.new_buyers,
        churned=found.churned,
        reactivated=found.reactivated,
        retention_rate=found.retention_rate,
        churn_rate=found.churn_rate,
        buyers_at_end=found.buyers_at_end,
        repeat_buyers_at_end=found.repeat_buyers_at_end,
        repeat_purchase_rate=found.repeat_purchase_rate,
    )


@router.get(
    "/warnings", response_model=WarningOutcomesView, summary="Churn warnings by tier and outcome"
)
async def warnings(
    session: SessionDep, _: ReadAccess, raised: RaisedWindowDep
) -> WarningOutcomesView:
    """Open, saved and lost churn warnings per value tier, with the save rate: how many of
    the warnings closed were saved by a purchase rather than lost to expiry."""
    outcomes = await analytics.warning_outcomes(session, raised)
    return WarningOutcomesView(
        raised_from=raised.start,
        raised_to=raised.end,
        tiers=[
            TierWarningOutcomeView(value_tier=tier, **_outcome_view(outcome).model_dump())
            for tier, outcome in outcomes.items()
        ],
        total=_outcome_view(sum(outcomes.values(), analytics.WarningOutcome())),
    )


@router.get(
    "/distributions",
    response_model=DistributionsView,
    summary="Customers by predicted CLV and by churn risk",
)
async def customer_distributions(
    session: SessionDep,
    _: ReadAccess,
    bins: Annotated[int, Query(ge=2, le=100, description="Bins of each histogram.")] = 20,
) -> DistributionsView:
    """Histograms of every customer's latest predicted 12-month CLV (0 to the largest) and
    churn risk (0 to 1), from the scores lifecycle-service keeps per customer."""
    found = await distributions.distributions(session, bins)
    return DistributionsView(
        predicted_clv_12m=_histogram(found.predicted_clv_12m),
        churn_risk=_histogram(found.churn_risk),
    )


def _histogram(found: distributions.Histogram) -> HistogramView:
    return HistogramView(edges=found.edges, counts=found.counts, missing=found.missing)


def _period(period: DayPeriod) -> Period:
    return Period(from_=period.first, to=period.last)


def _most_customers_first(move: tuple[tuple[Stage | None, Stage], int]) -> tuple[int, int, int]:
    # Ties in lifecycle order, so both databases list the moves alike.
    (source, target), count = move
    order = list(Stage)
    return -count, order.index(source) if source else -1, order.index(target)


def _matrix(moves: StageMoves) -> TransitionMatrix:
    sources: list[Stage | None] = [None, *Stage]
    return TransitionMatrix(
        from_stages=sources,
        to_stages=list(Stage),
        customers=[[moves[(source, target)] for target in Stage] for source in sources],
    )


def _cohort(row: analytics.CohortRetention) -> CohortView:
    return CohortView(
        cohort=month_label(row.cohort_month),
        size=row.size,
        retention=[
            CohortMonthView(
                month_offset=k,
                month=month_label(row.cohort_month + k),
                customers=customers,
                share=share,
            )
            for k, (customers, share) in enumerate(zip(row.active, row.shares, strict=True))
        ],
    )


def _outcome_view(outcome: analytics.WarningOutcome) -> WarningOutcomeView:
    return WarningOutcomeView(
        open=outcome.open, saved=outcome.saved, lost=outcome.lost, save_rate=outcome.save_rate
    )
