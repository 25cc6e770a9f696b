"""Activity and feedback reports taken over HTTP, kept so a re-post publishes nothing new.

Revision ID: 9c1f0e5a7d21
Revises: 3b82a47864b0
Create Date: 2026-12-07 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_shared

revision: str = '9c1f0e5a7d21'
down_revision: str | None = '3b82a47864b0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'intake_activities',
        sa.Column('intake_key', sa.String(length=250), nullable=False),
        sa.Column('event_type', sa.String(length=32), nullable=False),
        sa.Column('event_id', sa.String(length=36), nullable=False),
        sa.Column('customer_id', sa.String(length=36), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('occurred_at', crm_shared._db.UtcDateTime(timezone=True), nullable=False),
        sa.Column('received_at', crm_shared._db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('intake_key', name=op.f('pk_intake_activities')),
    )
    with op.batch_alter_table('intake_activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intake_activities_customer_id'), ['customer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('intake_activities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_intake_activities_customer_id'))
    op.drop_table('intake_activities')
