"""Notifications indexed by rule, status and reason: outcome counts read the index, not the table.

Revision ID: 6a9c3e1f5d84
Revises: b86d604ecb7a
Create Date: 2026-12-07 01:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '6a9c3e1f5d84'
down_revision: str | None = 'b86d604ecb7a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        'ix_notifications_outcome', 'notifications', ['rule_id', 'status', 'reason'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_notifications_outcome', table_name='notifications')
