"""Feedback reports: complaints for the surge warning, survey answers for the NPS.

Revision ID: 7d3e9b1c2f40
Revises: 7c2f4e9a1d63
Create Date: 2026-12-07 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_shared

revision: str = '7d3e9b1c2f40'
down_revision: str | None = '7c2f4e9a1d63'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'customer_feedback',
        sa.Column('feedback_id', sa.String(length=200), nullable=False),
        sa.Column('customer_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('occurred_at', crm_shared._db.UtcDateTime(timezone=True), nullable=False),
        sa.Column('survey', sa.String(length=16), nullable=True),
        sa.Column('score', sa.Integer(), nullable=True),
        sa.Column('stage', sa.String(length=16), nullable=True),
        sa.Column('value_tier', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('feedback_id', name=op.f('pk_customer_feedback')),
    )
    with op.batch_alter_table('customer_feedback', schema=None) as batch_op:
        batch_op.create_index('ix_customer_feedback_customer_time', ['customer_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_customer_feedback_survey_time', ['survey', 'occurred_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customer_feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_feedback_survey_time')
        batch_op.drop_index('ix_customer_feedback_customer_time')
    op.drop_table('customer_feedback')
