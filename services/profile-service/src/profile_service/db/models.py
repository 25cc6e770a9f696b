"""Tables of profile-service. Profiles are the source of truth; the 360 tables are a read model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_shared import AutoIncrementId, ContactColumns, ServiceTables, plumbing_tables

# Ids in the read models come from other services' events, whose contracts bound no length.
EventIdColumn = String(200)


class Base(ServiceTables, DeclarativeBase):
    """Declarative base of this service's tables."""


PLUMBING = plumbing_tables(Base.metadata, unread_indexes=False)


class Customer(ContactColumns, Base):
    """A customer profile. Merged and erased customers keep their row as a tombstone."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    merged_into_id: Mapped[str | None] = mapped_column(String(36))
    external_id: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_customers_status_id", "status", "id"),)


class CustomerIdentity(Base):
    """An identifier that resolves to one customer: an external id, an email or a phone."""

    __tablename__ = "customer_identities"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(320), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]


class CustomerTag(Base):
    """Tags as rows, so a list filtered by tag uses an index."""

    __tablename__ = "customer_tags"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class Consent(Base):
    """The customer's latest consent decision for one channel and purpose."""

    __tablename__ = "consents"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime]


class Merge(Base):
    """Audit record of a merge of two customers."""

    __tablename__ = "merges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    surviving_customer_id: Mapped[str] = mapped_column(String(36), index=True)
    merged_customer_id: Mapped[str] = mapped_column(String(36), index=True)
    merged_at: Mapped[datetime]
    requested_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(500))
    moved_identities: Mapped[int]


class IntakeOrder(Base):
    """An order event accepted over HTTP; its key makes a re-post a no-op."""

    __tablename__ = "intake_orders"

    intake_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(200), index=True)
    event_type: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(36))
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    amount: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str | None] = mapped_column(String(3))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]


class IntakeActivity(Base):
    """An activity or feedback report accepted over HTTP; its key makes a re-post a no-op."""

    __tablename__ = "intake_activities"

    # "activity.recorded:<activity_id>" or "feedback.recorded:<feedback_id>".
    intake_key: Mapped[str] = mapped_column(String(250), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(36))
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]


# The 360's documents are written on every consumed event and only ever read back whole (as
# text): PostgreSQL's plain `json` keeps the text as given, where `jsonb` would parse it into
# its binary form on every write and print it back on every read. Upserting a score document
# costs PostgreSQL about half the CPU as `json` (bench/RESULTS.md, "chaincpu").
ViewDocument = JSON()


class ScoreView(Base):
    """Latest scores of a customer, as published by scoring-service."""

    __tablename__ = "view_scores"

    customer_id: Mapped[str] = mapped_column(EventIdColumn, primary_key=True)
    as_of: Mapped[datetime]
    event_id: Mapped[str] = mapped_column(EventIdColumn)
    scores: Mapped[dict[str, Any]] = mapped_column(ViewDocument)


class StageView(Base):
    """Current lifecycle stage and open churn warning, as published by lifecycle-service."""

    __tablename__ = "view_stages"

    customer_id: Mapped[str] = mapped_column(EventIdColumn, primary_key=True)
    stage: Mapped[str | None] = mapped_column(String(16))
    stage_changed_at: Mapped[datetime | None]
    stage_detail: Mapped[dict[str, Any] | None] = mapped_column(ViewDocument)
    warning: Mapped[dict[str, Any] | None] = mapped_column(ViewDocument)
    warning_at: Mapped[datetime | None]


class NotificationView(Base):
    """A message sent, failed or suppressed for a customer, as published by notification-service."""

    __tablename__ = "view_notifications"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(EventIdColumn)
    customer_id: Mapped[str] = mapped_column(EventIdColumn)
    outcome: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(ViewDocument)

    __table_args__ = (
        Index("ix_view_notifications_customer", "customer_id", "occurred_at"),
        Index("uq_view_notifications_outcome", "notification_id", "outcome", unique=True),
    )
