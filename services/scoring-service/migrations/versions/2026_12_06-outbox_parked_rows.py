"""Outbox rows the broker can never take are parked (time and reason) instead of blocking the rest.

Revision ID: 32f033b73219
Revises: 8a2d1485775a
Create Date: 2026-12-06 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_shared

revision: str = '32f033b73219'
down_revision: str | None = '8a2d1485775a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_UNSENT = sa.text('sent_at IS NULL')
_UNSENT = sa.text('sent_at IS NULL AND parked_at IS NULL')
_PARKED = sa.text('parked_at IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parked_at', crm_shared._db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('park_reason', sa.String(length=500), nullable=True))
        batch_op.drop_index('ix_outbox_unsent', postgresql_where=_OLD_UNSENT, sqlite_where=_OLD_UNSENT)
        batch_op.create_index('ix_outbox_unsent', ['id'], unique=False, postgresql_where=_UNSENT, sqlite_where=_UNSENT)
        batch_op.create_index('ix_outbox_parked', ['id'], unique=False, postgresql_where=_PARKED, sqlite_where=_PARKED)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_parked', postgresql_where=_PARKED, sqlite_where=_PARKED)
        batch_op.drop_index('ix_outbox_unsent', postgresql_where=_UNSENT, sqlite_where=_UNSENT)
        batch_op.create_index('ix_outbox_unsent', ['id'], unique=False, postgresql_where=_OLD_UNSENT, sqlite_where=_OLD_UNSENT)
        batch_op.drop_column('park_reason')
        batch_op.drop_column('parked_at')
