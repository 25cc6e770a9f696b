"""Outbox rows wake the relay at commit, and leave the table once published.

A statement trigger notifies ``outbox_added`` from every transaction that inserts outbox rows
(PostgreSQL folds a transaction's notices into one, delivered at commit), so the relay, which
LISTENs while it leads, publishes at once instead of at its next poll. The relay now deletes a
row once the broker has it (nothing reads sent rows), so the rows sent before are deleted here.
The steps are the same in every service: `crm_shared.outbox_migrations`.

Revision ID: 09e3e873338b
Revises: 5c2d8e7a9b31
Create Date: 2026-12-07 05:10:00.000000
"""

from collections.abc import Sequence

from crm_shared.outbox_migrations import add_outbox_notices, drop_outbox_notices

revision: str = '09e3e873338b'
down_revision: str | None = '5c2d8e7a9b31'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_notices()


def downgrade() -> None:
    drop_outbox_notices()
