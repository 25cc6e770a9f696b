"""The sweep reviewed on arrays stores what the per-customer domain functions decide.

The property tests prove the array review equals the domain functions in memory; this test
covers the database round trip of the array path on both backends: times converted to
microseconds by SQL (before 1970 too), NULL columns, the current warning chosen among several,
small chunks, and the review times written back.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from crm_contracts import Grade, Stage, ValueTier
from crm_shared import utc_now
from crm_shared.testing import ApiClient
from lifecycle_service.domain.churn_warnings import (
    CHURN_RISK_ABOVE_THRESHOLD,
    SILENCE_PAST_RHYTHM,
    ChurnWarningRecord,
    WarningStatus,
)
from lifecycle_service.domain.review import next_review_at
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.domain.stages import CustomerLifecycle, on_sweep
from lifecycle_service.domain.warning_policy import warning_changes
from lifecycle_service.workflows.customer_rows import (
    CUSTOMERS,
    WARNINGS,
    state_values,
    warning_values,
)
from lifecycle_service.workflows.sweep import sweep

NOW = datetime(2026, 11, 2, 1, 0, 0, 123_457, tzinfo=UTC)
DAY = timedelta(days=1)
RULES = StageRules()


def _buyer(n: int, silent_days: float, **fields: object) -> CustomerLifecycle:
    last = NOW - silent_days * DAY
    values: dict[str, object] = {
        "customer_id": f"c-{n:02d}",
        "stage": Stage.ACTIVE,
        "stage_since": last,
        "first_purchase_at": last - 400 * DAY,
        "last_purchase_at": last,
        "order_count": 4,
        "average_order_value": 80.0,
        "last_order_value": 75.5,
        "expected_interpurchase_days": 30.0,
        "churn_risk": 0.2,
        "value_tier": ValueTier.GROWTH,
        "grade": Grade.MEDIUM,
        "predicted_clv_12m": 310.25,
        "scores_as_of": last,
    }
    values.update(fields)
    return CustomerLifecycle(**values)  # type: ignore[arg-type]


def _warning(state: CustomerLifecycle, status: WarningStatus, raised: datetime,
             reasons: tuple[str, ...], suffix: str = "") -> ChurnWarningRecord:  # fmt: skip
    return ChurnWarningRecord(
        warning_id=f"w-{state.customer_id}{suffix}",
        customer_id=state.customer_id,
        status=status,
        raised_at=raised,
        changed_at=raised,
        reasons=reasons,
        churn_risk=state.churn_risk,
        value_tier=state.value_tier,
        grade=state.grade,
        predicted_clv_12m=state.predicted_clv_12m,
        recommended_action="retention_offer",
    )


def _base() -> list[tuple[CustomerLifecycle, list[ChurnWarningRecord]]]:
    """Customers on and around the thresholds, some with several stored warnings."""
    old = datetime(1969, 7, 20, 20, 17, 40, 999_999, tzinfo=UTC)
    rhythm_at_enter = _buyer(3, 60.0 + 1e-6)  # just past 2x the rhythm: at_risk
    silent_once = _buyer(4, 91.0, order_count=1, expected_interpurchase_days=None)
    expiring = _buyer(5, 50.0, churn_risk=0.8)
    lost_same = _buyer(6, 50.0, churn_risk=0.8)
    open_first = _buyer(13, 50.0, stage=Stage.AT_RISK, churn_risk=0.8)
    lost_last = _buyer(14, 50.0, stage=Stage.AT_RISK, churn_risk=0.8)
    both = (CHURN_RISK_ABOVE_THRESHOLD, SILENCE_PAST_RHYTHM)
    return [
        (CustomerLifecycle("c-01", Stage.PROSPECT, old), []),
        (_buyer(2, 10.0, first_purchase_at=NOW - 90 * DAY + timedelta(microseconds=1)), []),
        (rhythm_at_enter, []),
        (silent_once, []),
        (
            expiring,
            [
                _warning(
                    expiring, WarningStatus.LOST, NOW - 300 * DAY, (SILENCE_PAST_RHYTHM,), "a"
                ),
                _warning(expiring, WarningStatus.OPEN, NOW - 90 * DAY, (SILENCE_PAST_RHYTHM,)),
            ],
        ),
        (
            lost_same,
            [
                _warning(
                    lost_same,
                    WarningStatus.LOST,
                    NOW - 120 * DAY,
                    (CHURN_RISK_ABOVE_THRESHOLD, SILENCE_PAST_RHYTHM),
                ),
            ],
        ),
        (_buyer(7, 20.0, stage=Stage.WON_BACK, stage_since=NOW - 60 * DAY), []),
        (
            _buyer(8, 5.0, stage=Stage.LOYAL, value_tier=ValueTier.PROFIT, churn_risk=0.45),
            [],
        ),
        (
            _buyer(9, 400.0, stage=Stage.DORMANT, average_order_value=None, last_order_value=None),
            [],
        ),
        (_buyer(10, 2.0, stage_since=NOW + DAY), []),  # moved by events after the sweep's moment
        (_buyer(11, 45.0, stage=Stage.AT_RISK, churn_risk=None, value_tier=None, grade=None), []),
        (replace(_buyer(12, 30.0), first_purchase_at=old, stage_since=old), []),
        (
            open_first,  # the open warning is the current one, even with a later closed one
            [
                _warning(open_first, WarningStatus.OPEN, NOW - 89 * DAY, both),
                _warning(open_first, WarningStatus.LOST, NOW - 10 * DAY, both, "b"),
            ],
        ),
        (
            lost_last,  # two closed warnings: the later (saved) is current, so it warns again
            [
                _warning(lost_last, WarningStatus.LOST, NOW - 300 * DAY, both, "b"),
                _warning(lost_last, WarningStatus.SAVED, NOW - 120 * DAY, (SILENCE_PAST_RHYTHM,)),
            ],
        ),
    ]


def _reference(
    state: CustomerLifecycle, warning: ChurnWarningRecord | None
) -> tuple[CustomerLifecycle, list[ChurnWarningRecord], datetime | None]:
    if state.stage_since > NOW:
        return state, [], next_review_at(state, warning, RULES, state.stage_since)
    moved, _ = on_sweep(state, NOW, RULES)
    changes = warning_changes(warning, moved, RULES, NOW, "new")
    current = changes[-1] if changes else warning
    return moved, changes, next_review_at(moved, current, RULES, max(state.stage_since, NOW))


def _stored_form(warning: ChurnWarningRecord) -> tuple[str, tuple[str, ...], datetime]:
    return (warning.status.value, tuple(warning.reasons), warning.changed_at)


async def test_a_sweep_on_arrays_stores_the_domain_s_stages_warnings_and_review_times(
    lifecycle_api: ApiClient,
) -> None:
    runtime = lifecycle_api.app.state.runtime
    base = _base()
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            insert(CUSTOMERS),
            [
                {
                    **state_values(state),
                    "active_months": [],
                    "clv_currency": "USD",
                    "next_review_at": min(state.stage_since, NOW),  # due
                }
                for state, _ in base
            ],
        )
        rows = [warning_values(w) for _, warnings in base for w in warnings]
        await session.execute(insert(WARNINGS), rows)

    report = await sweep(runtime, NOW, chunk_size=5, trigger="test", clock=utc_now)

    async with runtime.sessions() as session:
        stored = {
            row.customer_id: row
            for row in await session.execute(
                select(CUSTOMERS.c.customer_id, CUSTOMERS.c.stage, CUSTOMERS.c.next_review_at)
            )
        }
        warnings = (await session.execute(select(WARNINGS).order_by(WARNINGS.c.raised_at))).all()
    assert report.reviewed == len(base)
    for state, stored_warnings in base:
        current = next((w for w in stored_warnings if w.is_open), None) or (
            stored_warnings[-1] if stored_warnings else None
        )
        moved, changes, review = _reference(state, current)
        row = stored[state.customer_id]
        assert (state.customer_id, row.stage) == (state.customer_id, moved.stage.value)
        assert (state.customer_id, row.next_review_at) == (state.customer_id, review)
        # Every stored warning as the reference leaves it: changed ones replaced, new ones
        # added, and nothing else (a wrongly chosen current warning opens one too many).
        expected = {w.warning_id: _stored_form(w) for w in stored_warnings}
        for change in changes:
            expected[change.warning_id] = _stored_form(change)
        mine = [
            (w.status, tuple(w.reasons), w.changed_at)
            for w in warnings
            if w.customer_id == state.customer_id
        ]
        assert sorted(mine) == sorted(expected.values()), state.customer_id
    assert report.moved == sum(
        _reference(s, None)[0].stage is not s.stage for s, w in base if not w
    ) + sum(_reference(s, w[-1])[0].stage is not s.stage for s, w in base if w)
