"""Tables of notification-service: the contact replica, playbooks, templates, deliveries, inbox."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Final, cast

from sqlalchemy import Boolean, Float, Index, Integer, String, Table, Text, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_contracts import Category
from crm_shared import (
    AutoIncrementId,
    ContactColumns,
    CustomerIdColumn,
    Json,
    MoneyColumn,
    ServiceTables,
    plumbing_tables,
)
from notification_service.domain.notification_status import NotificationStatus


class Base(ServiceTables, DeclarativeBase):
    """Declarative base of this service's tables."""


PLUMBING = plumbing_tables(Base.metadata, unread_indexes=False)


class Contact(ContactColumns, Base):
    """What this service knows of a customer: how to reach them and what to say (a replica)."""

    __tablename__ = "contacts"

    customer_id: Mapped[str] = mapped_column(CustomerIdColumn, primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    # The latest score.updated payload, for templates; the columns below are what rules read.
    scores: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    stage: Mapped[str | None] = mapped_column(String(16))
    previous_stage: Mapped[str | None] = mapped_column(String(16))
    value_tier: Mapped[str | None] = mapped_column(String(32))
    grade: Mapped[str | None] = mapped_column(String(16))
    churn_risk: Mapped[float | None] = mapped_column(Float)
    rfm_segment: Mapped[str | None] = mapped_column(String(32))
    cluster: Mapped[str | None] = mapped_column(String(80))
    predicted_clv_12m: Mapped[str | None] = mapped_column(String(40))
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    last_order_at: Mapped[datetime | None]
    # Known to profile-service (a customer.* event arrived), so an account with an inbox; a
    # contact seen only in orders or scores has nowhere in-app to read a message.
    known_from_profile: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime]


class ContactOrder(Base):
    """An order of a contact: enough to tell a first order, a purchase since a trigger, and
    the revenue the effect report counts (its refunds are :class:`ContactOrderRefund` rows)."""

    __tablename__ = "contact_orders"

    order_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(CustomerIdColumn, index=True)
    placed_at: Mapped[datetime]
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The order's total; null for orders stored before the service kept it.
    total: Mapped[Decimal | None] = mapped_column(MoneyColumn)


class ContactOrderRefund(Base):
    """Money given back on an order; one row per refund id, so a re-sent refund counts once."""

    __tablename__ = "contact_order_refunds"

    refund_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(200), index=True)
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    refunded_at: Mapped[datetime]


CONTACT_ORDER_REFUNDS = cast(Table, ContactOrderRefund.__table__)


# The table itself, for the stream's bulk statements: plain inserts and updates of a few
# hundred rows skip the ORM's per-object work (typed as a Table, which it is).
CONTACTS = cast(Table, Contact.__table__)
CONTACT_ORDERS = cast(Table, ContactOrder.__table__)


class ContactConsent(Base):
    """A customer's decision for one channel and purpose; the newest decision wins."""

    __tablename__ = "contact_consents"

    customer_id: Mapped[str] = mapped_column(CustomerIdColumn, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(100))


CONTACT_CONSENTS = cast(Table, ContactConsent.__table__)


class PlaybookRuleRow(Base):
    """A playbook rule as a document (see domain.playbooks); editable through the API."""

    __tablename__ = "playbook_rules"

    rule_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(Json)
    updated_at: Mapped[datetime]


class TemplateRow(Base):
    """A template id's text for one channel (a rule falling back through channels needs one
    per channel); rejected on save if it cannot render."""

    __tablename__ = "templates"

    template_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    parts: Mapped[dict[str, str]] = mapped_column(Json)
    # marketing or service, the same on every channel's row of a template id.
    category: Mapped[str] = mapped_column(String(16), server_default="marketing")
    updated_at: Mapped[datetime]


class NotificationStates:
    """The partial indexes' predicates, as SQL: a query uses one by naming it word for word."""

    # Waiting for their due time: what a delivery round claims.
    SCHEDULED: Final = f"status = '{NotificationStatus.SCHEDULED.value}'"
    # Being handed to a channel: what recovery looks through after a crash.
    SENDING: Final = f"status = '{NotificationStatus.SENDING.value}'"
    # Marketing messages decided for sending: what the frequency cap counts.
    MARKETING_SENDS: Final = (
        f"category = '{Category.MARKETING.value}' "
        f"AND status IN ('{NotificationStatus.SENDING.value}', '{NotificationStatus.SENT.value}')"
    )
    # Rows whose hold-out check ran: what the effect report reads.
    ASSIGNED: Final = "assignment IS NOT NULL"


class Notification(Base):
    """One message decided for one customer: the delivery queue and the delivery log.

    ``dedup_key`` (rule, customer, triggering event) is unique: a redelivered or replayed
    event finds its notification already there and creates nothing.
    """

    __tablename__ = "notifications"

    notification_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(400), unique=True)
    customer_id: Mapped[str] = mapped_column(CustomerIdColumn)
    rule_id: Mapped[str | None] = mapped_column(String(80))
    template_id: Mapped[str] = mapped_column(String(80))
    channels: Mapped[list[str]] = mapped_column(Json)
    channel: Mapped[str | None] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    trigger_event_id: Mapped[str | None] = mapped_column(String(64))
    trigger_type: Mapped[str | None] = mapped_column(String(40))
    trigger_at: Mapped[datetime | None]
    # What the trigger said (stage, warning reasons...), for the template and the log.
    trigger_facts: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # scheduled -> sending -> sent | failed; or suppressed. A deferral moves due_at.
    status: Mapped[str] = mapped_column(String(16))
    # When the rule wanted it sent; deferrals move ``due_at`` only, so the longest deferral
    # is counted from the rule's intent.
    intended_at: Mapped[datetime]
    due_at: Mapped[datetime]
    # When it was decided and rendered (marketing sends count against the cap from then).
    decided_at: Mapped[datetime | None]
    # While ``sending``: the process sending it (its liveness is a PostgreSQL advisory lock),
    # and when it was handed to the channel; a crash leaves both for recovery to read.
    sender: Mapped[str | None] = mapped_column(String(40))
    handed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    # treatment or holdout once the rule's hold-out check has run (see domain.holdout); null
    # for one-off sends and messages stopped before it (rule disabled, no longer applies).
    assignment: Mapped[str | None] = mapped_column(String(16))

    # Every queue row is inserted once and decided once, so each index costs an entry per
    # insert and per decision (a decision changes ``status``: never a HOT update). The indexes
    # only their queries read are partial, so a row enters them only while it is what the
    # query looks for: the claim reads scheduled rows, recovery sending rows, the frequency cap
    # marketing sends, the effect report rows whose hold-out check ran. Their queries name the
    # predicate word for word (:class:`NotificationStates`), or a generic plan could not use
    # them.
    __table_args__ = (
        Index(
            "ix_notifications_scheduled_due",
            "due_at",
            postgresql_where=text(NotificationStates.SCHEDULED),
            sqlite_where=text(NotificationStates.SCHEDULED),
        ),
        Index(
            "ix_notifications_sending",
            "sender",
            postgresql_where=text(NotificationStates.SENDING),
            sqlite_where=text(NotificationStates.SENDING),
        ),
        Index(
            "ix_notifications_rule_assignment",
            "rule_id",
            "trigger_at",
            postgresql_where=text(NotificationStates.ASSIGNED),
            sqlite_where=text(NotificationStates.ASSIGNED),
        ),
        Index("ix_notifications_customer_created", "customer_id", "created_at"),
        Index(
            "ix_notifications_marketing_sends",
            "customer_id",
            "decided_at",
            postgresql_where=text(NotificationStates.MARKETING_SENDS),
            sqlite_where=text(NotificationStates.MARKETING_SENDS),
        ),
        Index("ix_notifications_created", "created_at"),
        # Messages per rule, status and reason (the console's Playbooks page) are counted from
        # this narrow index alone (an index-only scan, already in group order), not the table.
        Index("ix_notifications_outcome", "rule_id", "status", "reason"),
    )


NOTIFICATIONS = cast(Table, Notification.__table__)


class InboxMessage(Base):
    """An in-app message in a customer's inbox; frontends read it and mark it read."""

    __tablename__ = "inbox_messages"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(String(40), unique=True)
    customer_id: Mapped[str] = mapped_column(CustomerIdColumn)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_inbox_messages_customer_id", "customer_id", "id"),)


INBOX_MESSAGES = cast(Table, InboxMessage.__table__)


class PendingOptOut(Base):
    """An unsubscribe recorded here and not yet confirmed by profile-service."""

    __tablename__ = "pending_opt_outs"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(CustomerIdColumn)
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
