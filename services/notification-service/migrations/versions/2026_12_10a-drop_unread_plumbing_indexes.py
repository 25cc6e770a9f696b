"""The inbox's `processed_at` index and the outbox's unique `event_id` go: no query reads them.

Both were kept up on the event path: a b-tree insert per order consumed (the inbox row of a
shop's order, a stage change or a warning) and per event published (the outbox row), with their WAL. Nothing prunes the
inbox by time, nothing looks an outbox row up by its event id, and the id's uniqueness holds by
construction (a UUIDv7 drawn per event; consumers know a re-sent copy by its producer
sequence). The steps are the same in every service: `crm_shared.outbox_migrations`.

Revision ID: 5c7e2a9d4b13
Revises: a2feb0ab4181
Create Date: 2026-12-10 10:00:00.000000
"""

from collections.abc import Sequence

from crm_shared.outbox_migrations import (
    drop_unread_plumbing_indexes,
    restore_unread_plumbing_indexes,
)

revision: str = '5c7e2a9d4b13'
down_revision: str | None = 'a2feb0ab4181'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_unread_plumbing_indexes()


def downgrade() -> None:
    restore_unread_plumbing_indexes()
