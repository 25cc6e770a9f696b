"""Notifications record their sending process and when they were handed to the channel, so
the sends a crash interrupts are recovered by channel.

Revision ID: 5c1d7e9a2b40
Revises: 29e2416e598c
Create Date: 2026-12-06 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_shared

revision: str = '5c1d7e9a2b40'
down_revision: str | None = '29e2416e598c'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sender', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('handed_at', crm_shared._db.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('handed_at')
        batch_op.drop_column('sender')
