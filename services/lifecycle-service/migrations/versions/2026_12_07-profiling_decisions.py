"""Profiling decisions: customers who object to profiling (GDPR art. 21/22); they are never warned.

Revision ID: 7c2f4e9a1d63
Revises: 3cf63af44eef
Create Date: 2026-12-07 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_shared

revision: str = '7c2f4e9a1d63'
down_revision: str | None = '3cf63af44eef'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('profiling_decisions',
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('objected', sa.Boolean(), nullable=False),
    sa.Column('changed_at', crm_shared._db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_profiling_decisions'))
    )


def downgrade() -> None:
    op.drop_table('profiling_decisions')
