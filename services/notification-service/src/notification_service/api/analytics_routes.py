"""``/v1/analytics/effects``: what each playbook rule achieved against its held-out customers."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Final

from fastapi import APIRouter, Query

from crm_contracts import Money
from crm_shared import EARLIEST_DAY, ReadAccess, SessionDep, day_period, problem_responses, utc_now
from crm_shared.errors import UnprocessableContent
from notification_service.api import SettingsDep
from notification_service.api.effect_schemas import (
    DEFINITIONS,
    EffectPeriod,
    EffectReport,
    GroupView,
    IntervalView,
    MoneyIntervalView,
    RateUpliftView,
    RevenueUpliftView,
    RuleEffectView,
    WarningOutcomesView,
)
from notification_service.domain.effects import GroupOutcome, RuleEffect
from notification_service.domain.uplift_statistics import Interval
from notification_service.settings import NotificationSettings
from notification_service.workflows import playbook_store
from notification_service.workflows.effects import EffectQuery, measure_rules

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

DEFAULT_WINDOW_DAYS: Final = 30
MAX_WINDOW_DAYS: Final = 365
DEFAULT_PERIOD_DAYS: Final = 90
MAX_PERIOD_DAYS: Final = 731
LATEST_DAY: Final = date(9998, 12, 31)  # a window added to it still fits in a datetime
_CENT: Final = Decimal("0.01")


@router.get(
    "/effects",
    response_model=EffectReport,
    summary="Each rule's measured effect against its hold-out group",
    responses=problem_responses({422: "A bound or the period is out of range."}),
)
async def rule_effects(
    settings: SettingsDep,
    session: SessionDep,
    _: ReadAccess,
    rule_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=80,
            pattern=r"^[a-z0-9][a-z0-9._-]*$",
            description="One rule; absent: every rule with assigned customers in the period.",
            examples=["retention-offer"],
        ),
    ] = None,
    from_: Annotated[
        date | None,
        Query(
            alias="from",
            ge=EARLIEST_DAY,
            le=LATEST_DAY,
            description="First trigger day, included (UTC); default: 89 days before to.",
            examples=["1997-01-01"],
        ),
    ] = None,
    to: Annotated[
        date | None,
        Query(
            ge=EARLIEST_DAY,
            le=LATEST_DAY,
            description="Last trigger day, included (UTC); default: today. At most 731 days"
            " after from.",
            examples=["1997-09-30"],
        ),
    ] = None,
    window_days: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_WINDOW_DAYS,
            description="Days after each trigger in which a repurchase and revenue count.",
        ),
    ] = DEFAULT_WINDOW_DAYS,
) -> EffectReport:
    """Per rule: customers treated and held out, their repurchase rate, revenue per customer
    and (for churn-warning rules) warnings saved and lost within the window after the
    trigger, and the uplift with 95% confidence intervals. `definitions` in the response
    says how each figure is counted."""
    period = day_period(from_, to, default_days=DEFAULT_PERIOD_DAYS, today=utc_now().date())
    if (period.last - period.first).days + 1 > MAX_PERIOD_DAYS:
        raise UnprocessableContent(
            f"at most {MAX_PERIOD_DAYS} days of triggers per request; ask for a shorter period",
            field="from",
        )
    as_of = utc_now()
    query = EffectQuery(
        rule_id=rule_id,
        triggered_from=period.start,
        triggered_to=period.end,
        window=timedelta(days=window_days),
    )
    measured = await measure_rules(session, query, as_of)
    shares = {
        rule.rule_id: rule.effective_holdout_share
        for rule in await playbook_store.all_rules(session)
    }
    return EffectReport(
        period=EffectPeriod(
            from_=period.first, to=period.last, window_days=window_days, as_of=as_of
        ),
        definitions=DEFINITIONS,
        rules=[
            _rule_view(m.rule_id, shares.get(m.rule_id), m.trigger_types, m.effect, settings)
            for m in measured
        ],
    )


def _rule_view(
    rule_id: str,
    share: float | None,
    trigger_types: tuple[str, ...],
    effect: RuleEffect,
    settings: NotificationSettings,
) -> RuleEffectView:
    currency = settings.currency
    repurchase = revenue = None
    if effect.repurchase is not None:
        repurchase = RateUpliftView(
            absolute=_interval(effect.repurchase.absolute),
            relative=_optional_interval(effect.repurchase.relative),
            p_value=effect.repurchase.p_value,
        )
    if effect.revenue is not None:
        absolute = effect.revenue.absolute
        revenue = RevenueUpliftView(
            absolute=MoneyIntervalView(
                estimate=_money(absolute.estimate),
                low=_money(absolute.low),
                high=_money(absolute.high),
                currency=currency,
            ),
            relative=_optional_interval(effect.revenue.relative),
            p_value=effect.revenue.p_value,
        )
    return RuleEffectView(
        rule_id=rule_id,
        holdout_share=share,
        trigger_types=list(trigger_types),
        treated=_group(effect.treated, effect.warnings_judged, currency),
        held_out=_group(effect.held_out, effect.warnings_judged, currency),
        pending_customers=effect.pending,
        repurchase_uplift=repurchase,
        revenue_per_customer_uplift=revenue,
    )


def _group(group: GroupOutcome, warnings: bool, currency: str) -> GroupView:
    per_customer = group.revenue_per_customer
    return GroupView(
        customers=group.customers,
        repurchased=group.repurchased,
        repurchase_rate=group.repurchase_rate,
        revenue=Money(amount=group.revenue.quantize(_CENT), currency=currency),
        revenue_per_customer=(
            Money(amount=per_customer.quantize(_CENT), currency=currency)
            if per_customer is not None
            else None
        ),
        churn_warnings=(
            WarningOutcomesView(saved=group.warnings_saved, lost=group.warnings_lost)
            if warnings
            else None
        ),
    )


def _interval(interval: Interval) -> IntervalView:
    return IntervalView(estimate=interval.estimate, low=interval.low, high=interval.high)


def _optional_interval(interval: Interval | None) -> IntervalView | None:
    return _interval(interval) if interval is not None else None


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(_CENT)
