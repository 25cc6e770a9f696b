"""Tables of lifecycle-service: customer stages, their history, warnings, rules and counts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_shared import (
    AutoIncrementId,
    CustomerIdColumn,
    Json,
    ServiceTables,
    plumbing_tables,
    profiling_decisions_table,
)

StageColumn = String(16)
_OPEN_WARNING = text("status IN ('open', 'updated')")


class Base(ServiceTables, DeclarativeBase):
    """Declarative base of this service's tables."""


PLUMBING = plumbing_tables(Base.metadata, unread_indexes=False)
# Customers who object to profiling: never warned (see domain.profiling and crm_shared).
PROFILING_DECISIONS = profiling_decisions_table(Base.metadata)


class CustomerLifecycleRow(Base):
    """Where one customer stands and everything the stage machine needs to move them."""

    __tablename__ = "customer_lifecycles"

    customer_id: Mapped[str] = mapped_column(CustomerIdColumn, primary_key=True)
    stage: Mapped[str] = mapped_column(StageColumn)
    stage_since: Mapped[datetime]
    first_purchase_at: Mapped[datetime | None]
    last_purchase_at: Mapped[datetime | None]
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    average_order_value: Mapped[float | None] = mapped_column(Float)
    last_order_value: Mapped[float | None] = mapped_column(Float)
    expected_interpurchase_days: Mapped[float | None] = mapped_column(Float)
    churn_risk: Mapped[float | None] = mapped_column(Float)
    value_tier: Mapped[str | None] = mapped_column(String(32))
    grade: Mapped[str | None] = mapped_column(String(16))
    predicted_clv_12m: Mapped[float | None] = mapped_column(Float)
    clv_currency: Mapped[str | None] = mapped_column(String(3))
    scores_as_of: Mapped[datetime | None]
    # Months (year * 12 + month - 1) with a purchase: the customer's cells in cohort retention.
    active_months: Mapped[list[int]] = mapped_column(Json, default=list)
    # The earliest moment time alone could move or warn the customer (domain.review).
    next_review_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_customer_lifecycles_stage_customer", "stage", "customer_id"),
        Index("ix_customer_lifecycles_next_review_at", "next_review_at"),
    )


class LifecycleOrder(Base):
    """An order as lifecycle sees it: when and how much; kept so cancellations can be undone."""

    __tablename__ = "lifecycle_orders"

    order_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(CustomerIdColumn, index=True)
    placed_at: Mapped[datetime | None]
    amount: Mapped[float] = mapped_column(Float, default=0.0)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)


class StageTransition(Base):
    """One stage change: when, from and to which stage, the triggering event (or sweep), why."""

    __tablename__ = "stage_transitions"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(CustomerIdColumn)
    previous_stage: Mapped[str | None] = mapped_column(StageColumn)
    stage: Mapped[str] = mapped_column(StageColumn)
    at: Mapped[datetime]
    cause: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        # The only reads are one customer's history, in time order (and merges and erasures
        # by customer). Nothing reads transitions by time alone: the analytics count them in
        # transition_counts, so no index on `at` is kept up on every transition written.
        Index("ix_stage_transitions_customer_at", "customer_id", "at"),
    )


class ChurnWarningRow(Base):
    """A churn warning in its latest state; at most one open per customer."""

    __tablename__ = "churn_warnings"

    warning_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(CustomerIdColumn)
    status: Mapped[str] = mapped_column(String(16))
    raised_at: Mapped[datetime]
    changed_at: Mapped[datetime]
    reasons: Mapped[list[str]] = mapped_column(Json)
    churn_risk: Mapped[float | None] = mapped_column(Float)
    value_tier: Mapped[str | None] = mapped_column(String(32))
    grade: Mapped[str | None] = mapped_column(String(16))
    predicted_clv_12m: Mapped[float | None] = mapped_column(Float)
    recommended_action: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        Index(
            "uq_churn_warnings_open_customer",
            "customer_id",
            unique=True,
            postgresql_where=_OPEN_WARNING,
            sqlite_where=_OPEN_WARNING,
        ),
        Index("ix_churn_warnings_customer_raised", "customer_id", "raised_at"),
        Index("ix_churn_warnings_status_tier", "status", "value_tier"),
        Index("ix_churn_warnings_raised_at", "raised_at"),
        # The console's work list (open warnings by 12-month CLV at risk, top N) reads this
        # index in order and stops after N rows, instead of sorting every open warning.
        Index(
            "ix_churn_warnings_open_at_risk",
            text("((predicted_clv_12m * churn_risk) IS NULL)"),
            text("(predicted_clv_12m * churn_risk) DESC"),
            text("raised_at DESC"),
            "warning_id",
            postgresql_where=_OPEN_WARNING,
            sqlite_where=_OPEN_WARNING,
        ),
    )


class CustomerFeedback(Base):
    """A feedback report (complaint, ticket, survey answer, return request) once per id.

    Complaints count toward a surge; survey answers make the NPS. The stage and value tier the
    customer had when the report arrived are kept, so NPS by segment means "as they were".
    """

    __tablename__ = "customer_feedback"

    feedback_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(CustomerIdColumn)
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    survey: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[int | None] = mapped_column(Integer)
    stage: Mapped[str | None] = mapped_column(StageColumn)
    value_tier: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_customer_feedback_customer_time", "customer_id", "occurred_at"),
        Index("ix_customer_feedback_survey_time", "survey", "occurred_at"),
    )


class StageRulesVersion(Base):
    """One version of the stage rules; the highest version is in force."""

    __tablename__ = "stage_rules_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rules: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    comment: Mapped[str | None] = mapped_column(Text)


class DailyCount(Base):
    """A day's change in a counted metric (``stage:<stage>``, ``buyers``, ``repeat_buyers``)."""

    __tablename__ = "daily_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    delta: Mapped[int] = mapped_column(Integer, default=0)


class TransitionCount(Base):
    """How many customers moved from one stage to another on a day (``""``: newly known)."""

    __tablename__ = "transition_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    previous_stage: Mapped[str] = mapped_column(StageColumn, primary_key=True)
    stage: Mapped[str] = mapped_column(StageColumn, primary_key=True)
    customers: Mapped[int] = mapped_column(Integer, default=0)


class CohortCell(Base):
    """Customers of a first-purchase month (``cohort_month``) who bought in ``active_month``."""

    __tablename__ = "cohort_cells"

    cohort_month: Mapped[int] = mapped_column(Integer, primary_key=True)
    active_month: Mapped[int] = mapped_column(Integer, primary_key=True)
    customers: Mapped[int] = mapped_column(Integer, default=0)


class SweepRun(Base):
    """One aging sweep: the moment it swept at, what it reviewed and changed, how long it took."""

    __tablename__ = "sweep_runs"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    as_of: Mapped[datetime]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    reviewed: Mapped[int] = mapped_column(Integer)
    moved: Mapped[int] = mapped_column(Integer)
    warnings_raised: Mapped[int] = mapped_column(Integer)
    warnings_closed: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16))


class RulesReview(Base):
    """The review of every buyer under one rules version, and how far it has come.

    ``replace_rules`` stores a version and nothing else; the next sweep walks every buyer under
    it, committing how far it came with each chunk (PostgreSQL: the table in physical order,
    ``walk_position``; SQLite and the per-customer path: by customer id, ``last_customer_id``),
    so a sweep that stops resumes where it stopped. A version whose review is completed needs
    no walk.
    """

    __tablename__ = "rules_reviews"

    rules_version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    started_at: Mapped[datetime]
    # The last customer reviewed (customers are walked in id order); None before the first.
    last_customer_id: Mapped[str | None] = mapped_column(CustomerIdColumn, nullable=True)
    # The walk in physical order: the tuple id "(block,offset)" of the first row not yet
    # reviewed (rows stored before it were); None before the first chunk.
    walk_position: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reviewed: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[datetime | None]
