"""Outbox rows wake the relay at commit, and leave the table once published.

A statement trigger notifies ``outbox_added`` from every transaction that inserts outbox rows
(PostgreSQL folds a transaction's notices into one, delivered at commit), so the relay, which
LISTENs while it leads, publishes at once instead of at its next poll. The relay now deletes a
row once the broker has it (nothing reads sent rows), so the rows sent before are deleted here.
The steps are the same in every service: `crm_shared.outbox_migrations`.

Revision ID: bc0e882bbc41
Revises: 7f3c9e1a2b84
Create Date: 2026-12-07 05:10:00.000000
"""

from collections.abc import Sequence

from crm_shared.outbox_migrations import add_outbox_notices, drop_outbox_notices

revision: str = 'bc0e882bbc41'
down_revision: str | None = '7f3c9e1a2b84'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_notices()


def downgrade() -> None:
    drop_outbox_notices()
