"""Tables of scoring-service: the purchase ledger it learns from, scores, and model versions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, LargeBinary, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_shared import (
    AutoIncrementId,
    Json,
    MoneyColumn,
    ServiceTables,
    plumbing_tables,
    profiling_decisions_table,
)


class Base(ServiceTables, DeclarativeBase):
    """Declarative base of this service's tables."""


PLUMBING = plumbing_tables(Base.metadata)
# Customers who object to profiling: never scored, segmented or fitted on (see crm_shared).
PROFILING_DECISIONS = profiling_decisions_table(Base.metadata)


class Purchase(Base):
    """One order as the models see it: when, how much is left after refunds, or cancelled."""

    __tablename__ = "purchases"

    order_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    placed_at: Mapped[datetime | None]
    # Whole UTC days since 1970-01-01: the models count purchase days, not timestamps.
    purchase_day: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(MoneyColumn, default=Decimal(0))
    refunded: Mapped[Decimal] = mapped_column(MoneyColumn, default=Decimal(0))
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_purchases_customer_day", "customer_id", "purchase_day"),)


class PurchaseSummary(Base):
    """A customer's counted orders merged per purchase day: what a whole-base fit reads.

    Orders count as the ledger counts them (placed, not cancelled, not refunded in full; see
    workflows/ledger_loading.py), profiling objections aside (applied when read). Packed
    big-endian, one item a purchase day in day order: `days` int4, `amounts` float8 (the day's
    exact net sum, rounded once), `orders` int4. Reading one row a customer in key order
    replaced a sort of every order at each fit (17 s at a million customers). PostgreSQL only:
    kept by workflows/purchase_summaries.py for the customers in `STALE_PURCHASE_SUMMARIES`.
    """

    __tablename__ = "purchase_summaries"

    # Collation "C": byte order of UTF-8 is code point order, Python's sort order, which the
    # ledger's customer numbering follows.
    customer_id: Mapped[str] = mapped_column(
        String(36).with_variant(String(36, collation="C"), "postgresql"), primary_key=True
    )
    days: Mapped[bytes] = mapped_column(LargeBinary)
    amounts: Mapped[bytes] = mapped_column(LargeBinary)
    orders: Mapped[bytes] = mapped_column(LargeBinary)


# Customers whose orders changed since their summary was last refreshed, one row per change
# (duplicates allowed). Filled by triggers on `purchases` (PostgreSQL; migration 2026_12_09b),
# so every write to the orders marks its customers, whatever path made it, in the writing
# statement itself; no key and no index: an append costs the order stream almost nothing and
# never waits on the refresh, which deletes what it has read.
STALE_PURCHASE_SUMMARIES = Table(
    "stale_purchase_summaries",
    Base.metadata,
    Column("customer_id", String(36), nullable=False),
)


class Refund(Base):
    """A refund applied once, whatever order its event arrives in."""

    __tablename__ = "refunds"

    refund_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(200), index=True)
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)


class Activity(Base):
    """An engagement event (page view, email click...) counted by the health index."""

    __tablename__ = "activities"

    activity_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    occurred_at: Mapped[datetime]
    # Kept so that what is not engagement (a complaint sent as an activity) is not counted as it;
    # null for activities stored before the type was kept.
    activity_type: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_activities_customer_time", "customer_id", "occurred_at"),)


class Feedback(Base):
    """A complaint, support ticket event, survey answer or return request of a customer."""

    __tablename__ = "feedback"

    feedback_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    survey: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[int | None]
    ticket_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_feedback_customer_time", "customer_id", "occurred_at"),)


class PendingRescore(Base):
    """A customer whose purchases changed since their last score, and as of when to score."""

    __tablename__ = "pending_rescores"

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    as_of: Mapped[datetime]


class Score(Base):
    """The latest scores of a customer; filter columns are copied out of the payload."""

    __tablename__ = "scores"

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    as_of: Mapped[datetime]
    model_version: Mapped[str | None] = mapped_column(String(40))
    # No index of its own: ix_scores_segment_sizes begins with it.
    rfm_segment: Mapped[str] = mapped_column(String(32))
    value_tier: Mapped[str | None] = mapped_column(String(32), index=True)
    grade: Mapped[str | None] = mapped_column(String(16), index=True)
    cluster: Mapped[str | None] = mapped_column(String(80), index=True)
    churn_risk: Mapped[float | None] = mapped_column(Float, index=True)
    # The payload's total_spend, copied out so revenue per segment is summed from an index
    # (reading every payload's JSON took ~120 ms at 100,000 customers; see bench/RESULTS.md).
    total_spend: Mapped[Decimal | None] = mapped_column(MoneyColumn)
    total_spend_currency: Mapped[str | None] = mapped_column(String(3))
    # json, not jsonb (payload and explanation): only ever read back whole, and parsing their
    # many floats into jsonb numerics was most of PostgreSQL's work in a re-score (see the
    # migrations of 2026-12-07d and 2026-12-07e).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # What the explanation is made of, packed (domain/explanations.py); the API builds the
    # explanation from it. Its JSON text (~1.3 KB) cost a third of a re-score's Python work and
    # pushed every row past PostgreSQL's compression threshold. `explanation`: the text of rows
    # stored before 2026-12-08a, until their next re-score.
    explanation_figures: Mapped[bytes | None] = mapped_column(LargeBinary)
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # What a re-score compares against instead of decoding the payload: the digest of the
    # fields compared exactly and the figures compared within a tolerance, packed
    # (domain/score_changes.ScoreState). Null on rows stored before 2026-12-07e (their payload
    # is compared instead, once).
    change_state: Mapped[bytes | None] = mapped_column(LargeBinary(72))

    __table_args__ = (
        # Every segment size and the revenue per RFM segment and currency, in one index-only
        # scan (GET /v1/segments): one pass instead of one per dimension.
        Index(
            "ix_scores_segment_sizes",
            "rfm_segment",
            "total_spend_currency",
            "value_tier",
            "grade",
            "cluster",
            postgresql_include=["total_spend"],
        ),
    )


class ModelVersion(Base):
    """A fitted set of models and the thresholds scores are computed with."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime]
    as_of: Mapped[datetime]
    customers: Mapped[int]
    fit_seconds: Mapped[float] = mapped_column(Float)
    bg_nbd: Mapped[dict[str, Any]] = mapped_column(Json)
    gamma_gamma: Mapped[dict[str, Any] | None] = mapped_column(Json)
    thresholds: Mapped[dict[str, Any]] = mapped_column(Json)
    # The churn-risk calibration's curves and its figures on the time split; null: uncalibrated.
    churn_calibration: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    notes: Mapped[list[str]] = mapped_column(Json, default=list)
