"""Activities keep their type; feedback (complaints, tickets, NPS/CSAT answers) is stored.

Revision ID: 5e0b7c4d9a13
Revises: 5b1e0c7d9a41
Create Date: 2026-12-07 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_shared

revision: str = '5e0b7c4d9a13'
down_revision: str | None = '5b1e0c7d9a41'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'feedback',
        sa.Column('feedback_id', sa.String(length=200), nullable=False),
        sa.Column('customer_id', sa.String(length=36), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('occurred_at', crm_shared._db.UtcDateTime(timezone=True), nullable=False),
        sa.Column('survey', sa.String(length=16), nullable=True),
        sa.Column('score', sa.Integer(), nullable=True),
        sa.Column('ticket_id', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('feedback_id', name=op.f('pk_feedback')),
    )
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_customer_time', ['customer_id', 'occurred_at'], unique=False)
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('activity_type', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_column('activity_type')
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback_customer_time')
    op.drop_table('feedback')
