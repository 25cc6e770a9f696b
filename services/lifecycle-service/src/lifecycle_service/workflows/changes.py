"""A set of customers being changed in one transaction, and how their changes are stored.

Consumed batches and sweep chunks both load their customers, apply domain functions in
memory, then store everything in bulk through :meth:`CustomerChanges.store`: states with their
next review time, transitions, warnings, the running counts behind the analytics, and the
``lifecycle.stage_changed`` and ``churn.warning`` events in the outbox.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import DateTime, String, Table, bindparam, delete, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import ChurnWarning, CloudEvent, Money, StageChanged, build_event
from crm_shared import BulkWrite, add_many_to_outbox, new_id
from lifecycle_service.db.models import (
    PLUMBING,
    CohortCell,
    DailyCount,
    StageTransition,
    TransitionCount,
)
from lifecycle_service.domain.churn_warnings import ChurnWarningRecord
from lifecycle_service.domain.counts import cohort_cells, order_count_deltas, stage_metric
from lifecycle_service.domain.profiling import close_on_objection, without_scores
from lifecycle_service.domain.review import next_review_at
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.domain.stages import CustomerLifecycle, Transition, new_prospect
from lifecycle_service.domain.warning_policy import warning_changes
from lifecycle_service.workflows.customer_rows import (
    CUSTOMERS,
    STATE_COLUMNS,
    STORE_CUSTOMERS,
    STORE_WARNINGS,
    WARNING_COLUMNS,
    StoredCustomer,
    state_values,
    warning_values,
)

SOURCE = "/lifecycle-service"
_CENT = Decimal("0.01")


@dataclass
class TrackedCustomer:
    """A customer as it stands in memory while a batch or a sweep chunk is applied."""

    state: CustomerLifecycle
    active_months: set[int]
    clv_currency: str | None
    warning: ChurnWarningRecord | None
    # The latest moment applied to the customer: the next review is counted from here.
    as_of: datetime


@dataclass
class CustomerChanges:
    """Customers loaded for one transaction and everything that happened to them."""

    rules: StageRules
    stored: dict[str, StoredCustomer]
    customers: dict[str, TrackedCustomer] = field(default_factory=dict)
    removed: dict[str, datetime] = field(default_factory=dict)
    transitions: list[tuple[str, Transition]] = field(default_factory=list)
    warnings: list[ChurnWarningRecord] = field(default_factory=list)
    daily: Counter[tuple[date, str]] = field(default_factory=Counter)
    # Customers who object to profiling: never warned (see domain.profiling).
    objecting: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for customer_id, stored in self.stored.items():
            self.customers[customer_id] = TrackedCustomer(
                state=stored.state,
                active_months=set(stored.active_months),
                clv_currency=stored.clv_currency,
                warning=stored.warning,
                as_of=stored.state.stage_since,
            )

    def get(self, customer_id: str) -> TrackedCustomer | None:
        """The customer, or None when unknown or removed in this transaction."""
        return self.customers.get(customer_id)

    def ensure(self, customer_id: str, at: datetime, cause: str) -> TrackedCustomer:
        """The customer, created as a prospect (with its first transition) when unknown."""
        known = self.customers.get(customer_id)
        if known is not None:
            return known
        state, transition = new_prospect(customer_id, at, cause)
        tracked = TrackedCustomer(state, set(), None, None, at)
        self.customers[customer_id] = tracked
        self.removed.pop(customer_id, None)
        self._record(customer_id, transition)
        return tracked

    def start_with_order(self, customer_id: str, at: datetime) -> TrackedCustomer:
        """A customer first seen through an order: its first transition is the order's."""
        state, _ = new_prospect(customer_id, at, "")
        tracked = TrackedCustomer(state, set(), None, None, at)
        self.customers[customer_id] = tracked
        self.removed.pop(customer_id, None)
        return tracked

    def apply(
        self,
        customer_id: str,
        moved: tuple[CustomerLifecycle, Transition | None],
        at: datetime,
        *,
        first_seen: bool = False,
    ) -> TrackedCustomer:
        """Keep the domain's new state and record its transition, if any."""
        tracked = self.customers[customer_id]
        state, transition = moved
        if state.order_count != tracked.state.order_count:
            self.daily.update(order_count_deltas(tracked.state.order_count, state.order_count, at))
        tracked.state = state
        tracked.as_of = max(tracked.as_of, at)
        if transition is not None:
            if first_seen:
                transition = replace(transition, previous_stage=None)
            self._record(customer_id, transition)
        return tracked

    def review_warning(self, customer_id: str, at: datetime, feedback: Sequence[str] = ()) -> None:
        """Expire, open or update the customer's warning as the signals at ``at`` call for;
        ``feedback``: the feedback signals a report just raised. Nothing for a customer who
        objects to profiling."""
        if customer_id in self.objecting:
            return
        tracked = self.customers[customer_id]
        changes = warning_changes(
            tracked.warning, tracked.state, self.rules, at, new_id(), feedback
        )
        for change in changes:
            self.set_warning(customer_id, change)

    def object_to_profiling(self, customer_id: str, at: datetime) -> None:
        """The customer objected at ``at``: forget their scores, withdraw their open warning."""
        self.objecting.add(customer_id)
        tracked = self.customers.get(customer_id)
        if tracked is None:
            return
        tracked.state = without_scores(tracked.state)
        withdrawn = close_on_objection(tracked.warning, at)
        if withdrawn is not None:
            self.set_warning(customer_id, withdrawn)

    def set_warning(self, customer_id: str, warning: ChurnWarningRecord) -> None:
        """Record a change of the customer's warning (opened, updated, saved or lost)."""
        self.customers[customer_id].warning = warning
        self.warnings.append(warning)

    def remove(self, customer_id: str, at: datetime) -> TrackedCustomer | None:
        """Forget the customer (erased, or merged into another); returns what was held."""
        tracked = self.customers.pop(customer_id, None)
        if tracked is None:
            return None
        self.removed[customer_id] = at
        self.daily[(at.date(), stage_metric(tracked.state.stage))] -= 1
        self.daily.update(order_count_deltas(tracked.state.order_count, 0, at))
        return tracked

    def forget(self, customer_id: str) -> None:
        """Drop what this transaction recorded about the customer (an erasure keeps nothing)."""
        self.transitions = [(cid, t) for cid, t in self.transitions if cid != customer_id]
        self.warnings = [w for w in self.warnings if w.customer_id != customer_id]

    def rekey(self, source: str, target: str) -> None:
        """What this transaction recorded about ``source`` now belongs to ``target`` (a merge)."""
        self.transitions = [(target if cid == source else cid, t) for cid, t in self.transitions]
        self.warnings = [
            replace(w, customer_id=target) if w.customer_id == source else w for w in self.warnings
        ]

    def _record(self, customer_id: str, transition: Transition) -> None:
        self.transitions.append((customer_id, transition))
        day = transition.at.date()
        if transition.previous_stage is not None:
            self.daily[(day, stage_metric(transition.previous_stage))] -= 1
        self.daily[(day, stage_metric(transition.stage))] += 1

    async def store(self, session: AsyncSession) -> None:
        """Write every change in bulk and stage the events in the outbox."""
        await self._store_customers(session)
        await self._store_transitions(session)
        await self._store_warnings(session)
        await self._store_counts(session)
        await add_many_to_outbox(session, PLUMBING, self._events())

    async def _store_customers(self, session: AsyncSession) -> None:
        if self.removed:
            await session.execute(
                delete(CUSTOMERS).where(CUSTOMERS.c.customer_id.in_(list(self.removed)))
            )
        rows: list[tuple[Any, ...]] = []
        reviews: list[dict[str, Any]] = []
        for customer_id, tracked in self.customers.items():
            review = next_review_at(tracked.state, tracked.warning, self.rules, tracked.as_of)
            stored = self.stored.get(customer_id)
            # Most customers a sweep reviews do not move: only their review time is written.
            if stored is not None and customer_id not in self.removed and _same(stored, tracked):
                if review != stored.next_review_at:
                    reviews.append({"key": customer_id, "review": review})
                continue
            values = state_values(tracked.state) | {
                "active_months": sorted(tracked.active_months),
                "clv_currency": tracked.clv_currency,
                "next_review_at": review,
            }
            rows.append(tuple(values[name] for name in STATE_COLUMNS))
        if reviews:
            await _update_review_times(session, reviews)
        await STORE_CUSTOMERS.run(session, rows)

    async def _store_transitions(self, session: AsyncSession) -> None:
        if not self.transitions:
            return
        await _STORE_TRANSITIONS.run(
            session,
            [
                (
                    customer_id,
                    t.previous_stage.value if t.previous_stage else None,
                    t.stage.value,
                    t.at,
                    t.cause,
                    t.reason,
                )
                for customer_id, t in self.transitions
            ],
        )
        matrix: Counter[tuple[date, str, str]] = Counter(
            (t.at.date(), t.previous_stage.value if t.previous_stage else "", t.stage.value)
            for _, t in self.transitions
        )
        await _add_counts(session, _ADD_TRANSITION_COUNTS, matrix)

    async def _store_warnings(self, session: AsyncSession) -> None:
        if not self.warnings:
            return
        latest = {warning.warning_id: warning for warning in self.warnings}
        # Closed warnings first: a customer's new warning may follow one closed in this batch,
        # and the one-open-warning index must never see both open.
        for still_open in (False, True):
            rows = [
                tuple(warning_values(w)[name] for name in WARNING_COLUMNS)
                for w in latest.values()
                if w.is_open is still_open
            ]
            await STORE_WARNINGS.run(session, rows)

    async def _store_counts(self, session: AsyncSession) -> None:
        daily = Counter({key: delta for key, delta in self.daily.items() if delta})
        await _add_counts(session, _ADD_DAILY_COUNTS, daily)
        cells: Counter[tuple[int, int]] = Counter()
        for customer_id, tracked in self.customers.items():
            stored = self.stored.get(customer_id)
            before = stored.active_months if stored is not None else frozenset()
            if tracked.active_months != before:
                cells.subtract(cohort_cells(before))
                cells.update(cohort_cells(tracked.active_months))
        for customer_id in self.removed:
            stored = self.stored.get(customer_id)
            if stored is not None and customer_id not in self.customers:
                cells.subtract(cohort_cells(stored.active_months))
        changed = Counter({key: delta for key, delta in cells.items() if delta})
        await _add_counts(session, _ADD_COHORT_CELLS, changed)

    def _events(self) -> list[CloudEvent]:
        events = [
            build_event(
                StageChanged(
                    customer_id=customer_id,
                    previous_stage=t.previous_stage,
                    stage=t.stage,
                    changed_at=t.at,
                    cause=t.cause,
                    reason=t.reason,
                ),
                source=SOURCE,
                time=t.at,
            )
            for customer_id, t in self.transitions
        ]
        for warning in self.warnings:
            tracked = self.customers.get(warning.customer_id)
            currency = tracked.clv_currency if tracked is not None else None
            events.append(
                build_event(
                    _warning_payload(warning, currency), source=SOURCE, time=warning.changed_at
                )
            )
        return events


# One statement for a whole chunk: a sweep rewrites thousands of review times at a time, and
# row-by-row updates cost a round trip each.
_REVIEW_TIMES_FROM_ARRAYS = text(
    "UPDATE customer_lifecycles AS c SET next_review_at = v.review"
    " FROM unnest(:keys, :reviews) AS v(key, review) WHERE c.customer_id = v.key"
).bindparams(
    bindparam("keys", type_=postgresql.ARRAY(String())),
    bindparam("reviews", type_=postgresql.ARRAY(DateTime(timezone=True))),
)


async def _update_review_times(session: AsyncSession, reviews: list[dict[str, Any]]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        keys = [row["key"] for row in reviews]
        times = [row["review"] for row in reviews]
        await session.execute(_REVIEW_TIMES_FROM_ARRAYS, {"keys": keys, "reviews": times})
        return
    await session.execute(
        update(CUSTOMERS)
        .where(CUSTOMERS.c.customer_id == bindparam("key"))
        .values(next_review_at=bindparam("review")),
        reviews,
    )


def _same(stored: StoredCustomer, tracked: TrackedCustomer) -> bool:
    """Whether nothing but the review time can have changed since the customer was loaded."""
    return (
        tracked.state == stored.state
        and tracked.active_months == stored.active_months
        and tracked.clv_currency == stored.clv_currency
    )


def _warning_payload(warning: ChurnWarningRecord, currency: str | None) -> ChurnWarning:
    clv = (
        Money(amount=Decimal(str(warning.predicted_clv_12m)).quantize(_CENT), currency=currency)
        if warning.predicted_clv_12m is not None and currency is not None
        else None
    )
    return ChurnWarning(
        warning_id=warning.warning_id,
        customer_id=warning.customer_id,
        raised_at=warning.raised_at,
        status=warning.status.value,
        reasons=list(warning.reasons),
        churn_risk=warning.churn_risk,
        value_tier=warning.value_tier,
        grade=warning.grade,
        predicted_clv_12m=clv,
        recommended_action=warning.recommended_action,
    )


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


async def _add_counts(session: AsyncSession, write: BulkWrite, counts: Counter[Any]) -> None:
    """Add ``counts`` (keyed by tuples of the write's key columns) to the running totals."""
    await write.run(session, [(*key, n) for key, n in sorted(counts.items())])


def _counter(table: Table, keys: tuple[str, ...], counter: str) -> BulkWrite:
    return BulkWrite(table, (*keys, counter), conflict=keys, add=(counter,))


_ADD_DAILY_COUNTS = _counter(_table(DailyCount), ("day", "metric"), "delta")
_ADD_TRANSITION_COUNTS = _counter(
    _table(TransitionCount), ("day", "previous_stage", "stage"), "customers"
)
_ADD_COHORT_CELLS = _counter(_table(CohortCell), ("cohort_month", "active_month"), "customers")
_STORE_TRANSITIONS = BulkWrite(
    _table(StageTransition), ("customer_id", "previous_stage", "stage", "at", "cause", "reason")
)
