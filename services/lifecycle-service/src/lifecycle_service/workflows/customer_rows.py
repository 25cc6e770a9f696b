"""Customer states and warnings as rows and back, loaded for update a batch at a time."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Grade, Stage, ValueTier
from crm_shared import BulkWrite, among, among_hashed
from lifecycle_service.db.models import ChurnWarningRow, CustomerLifecycleRow
from lifecycle_service.domain.churn_warnings import ChurnWarningRecord, WarningStatus
from lifecycle_service.domain.stages import CustomerLifecycle

OPEN_STATUSES = (WarningStatus.OPEN.value, WarningStatus.UPDATED.value)
# Rows are read as plain column tuples: ORM objects cost several times more per row, and a
# sweep reads customers by the hundred thousand.
CUSTOMERS = cast(Table, CustomerLifecycleRow.__table__)
WARNINGS = cast(Table, ChurnWarningRow.__table__)


# Whole-batch upserts of customers and warnings (columns in this order: see BulkWrite).
STATE_COLUMNS = (
    "customer_id",
    "stage",
    "stage_since",
    "first_purchase_at",
    "last_purchase_at",
    "order_count",
    "average_order_value",
    "last_order_value",
    "expected_interpurchase_days",
    "churn_risk",
    "value_tier",
    "grade",
    "predicted_clv_12m",
    "scores_as_of",
    "active_months",
    "clv_currency",
    "next_review_at",
)
STORE_CUSTOMERS = BulkWrite(
    CUSTOMERS, STATE_COLUMNS, conflict=STATE_COLUMNS[:1], update=STATE_COLUMNS[1:]
)
WARNING_COLUMNS = (
    "warning_id",
    "customer_id",
    "status",
    "raised_at",
    "changed_at",
    "reasons",
    "churn_risk",
    "value_tier",
    "grade",
    "predicted_clv_12m",
    "recommended_action",
)
STORE_WARNINGS = BulkWrite(
    WARNINGS,
    WARNING_COLUMNS,
    conflict=WARNING_COLUMNS[:1],
    update=WARNING_COLUMNS[1:],
)


@dataclass
class StoredCustomer:
    """One customer as loaded: the state, its purchase months and its current warning.

    The current warning is the open one, or else the latest closed one.
    """

    state: CustomerLifecycle
    active_months: frozenset[int]
    clv_currency: str | None
    warning: ChurnWarningRecord | None
    next_review_at: datetime | None = None


def state_of(row: Any) -> CustomerLifecycle:
    """The domain state stored in ``row`` (an ORM object or a row of the table's columns)."""
    return CustomerLifecycle(
        customer_id=row.customer_id,
        stage=Stage(row.stage),
        stage_since=row.stage_since,
        first_purchase_at=row.first_purchase_at,
        last_purchase_at=row.last_purchase_at,
        order_count=row.order_count,
        average_order_value=row.average_order_value,
        last_order_value=row.last_order_value,
        expected_interpurchase_days=row.expected_interpurchase_days,
        churn_risk=row.churn_risk,
        value_tier=ValueTier(row.value_tier) if row.value_tier else None,
        grade=Grade(row.grade) if row.grade else None,
        predicted_clv_12m=row.predicted_clv_12m,
        scores_as_of=row.scores_as_of,
    )


def state_values(state: CustomerLifecycle) -> dict[str, Any]:
    """The columns of ``state`` (without months, currency and review time)."""
    return {
        "customer_id": state.customer_id,
        "stage": state.stage.value,
        "stage_since": state.stage_since,
        "first_purchase_at": state.first_purchase_at,
        "last_purchase_at": state.last_purchase_at,
        "order_count": state.order_count,
        "average_order_value": state.average_order_value,
        "last_order_value": state.last_order_value,
        "expected_interpurchase_days": state.expected_interpurchase_days,
        "churn_risk": state.churn_risk,
        "value_tier": state.value_tier.value if state.value_tier else None,
        "grade": state.grade.value if state.grade else None,
        "predicted_clv_12m": state.predicted_clv_12m,
        "scores_as_of": state.scores_as_of,
    }


def warning_of(row: Any) -> ChurnWarningRecord:
    """The domain warning stored in ``row`` (an ORM object or a row of the table's columns)."""
    return ChurnWarningRecord(
        warning_id=row.warning_id,
        customer_id=row.customer_id,
        status=WarningStatus(row.status),
        raised_at=row.raised_at,
        changed_at=row.changed_at,
        reasons=tuple(row.reasons),
        churn_risk=row.churn_risk,
        value_tier=ValueTier(row.value_tier) if row.value_tier else None,
        grade=Grade(row.grade) if row.grade else None,
        predicted_clv_12m=row.predicted_clv_12m,
        recommended_action="account_manager_task"
        if row.recommended_action == "account_manager_task"
        else "retention_offer",
    )


def warning_values(warning: ChurnWarningRecord) -> dict[str, Any]:
    """The columns of ``warning``."""
    return {
        "warning_id": warning.warning_id,
        "customer_id": warning.customer_id,
        "status": warning.status.value,
        "raised_at": warning.raised_at,
        "changed_at": warning.changed_at,
        "reasons": list(warning.reasons),
        "churn_risk": warning.churn_risk,
        "value_tier": warning.value_tier.value if warning.value_tier else None,
        "grade": warning.grade.value if warning.grade else None,
        "predicted_clv_12m": warning.predicted_clv_12m,
        "recommended_action": warning.recommended_action,
    }


async def load_customers(
    session: AsyncSession, customer_ids: Collection[str], *, skip_locked: bool = False
) -> dict[str, StoredCustomer]:
    """The stored customers among ``customer_ids`` with their warnings, locked for update.

    On PostgreSQL the rows stay locked until commit, so a sweep and a consumer never both
    move the same customer from the same starting point; ``skip_locked`` (the sweep) passes
    over rows a consumer holds instead of waiting for them.
    """
    if not customer_ids:
        return {}
    table = CUSTOMERS
    query = (
        select(table)
        .where(among(session, table.c.customer_id, sorted(customer_ids)))
        .order_by(table.c.customer_id)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=skip_locked)
    return await customers_with_warnings(session, (await session.execute(query)).all())


async def customers_with_warnings(
    session: AsyncSession, rows: Sequence[Any]
) -> dict[str, StoredCustomer]:
    """Customers from rows of the customer table, with their current warnings."""
    found = {
        row.customer_id: StoredCustomer(
            state=state_of(row),
            active_months=frozenset(row.active_months),
            clv_currency=row.clv_currency,
            warning=None,
            next_review_at=row.next_review_at,
        )
        for row in rows
    }
    if found:
        # The open warning, or else the latest closed one: a warning lost to the same signals
        # must not be raised again (see domain.churn_warnings.raise_or_update).
        # Hashed: a few hundred warnings are read on a sequential scan otherwise, each row
        # compared with every customer id of the batch.
        table = WARNINGS
        warnings = await session.execute(
            select(table)
            .where(among_hashed(session, table.c.customer_id, list(found)))
            .order_by(table.c.raised_at)
        )
        for row in warnings:
            customer = found[row.customer_id]
            if customer.warning is None or not customer.warning.is_open:
                customer.warning = warning_of(row)
    return found
