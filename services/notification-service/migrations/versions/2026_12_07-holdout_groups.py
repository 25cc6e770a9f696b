"""Hold-out groups and measured effect: each message's group, and the revenue of every order.

Notifications record the rule's group (treatment or holdout) once its hold-out check ran;
orders keep their total, and refunds get a table of their own (one row per refund id), so the
effect report counts revenue net of refunds and cancellations.

Revision ID: 3b7d2f9e41c6
Revises: 83f1338d9623
Create Date: 2026-12-07 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_shared

revision: str = '3b7d2f9e41c6'
down_revision: str | None = '83f1338d9623'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'contact_order_refunds',
        sa.Column('refund_id', sa.String(length=200), nullable=False),
        sa.Column('order_id', sa.String(length=200), nullable=False),
        sa.Column('amount', sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column('refunded_at', crm_shared._db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('refund_id', name=op.f('pk_contact_order_refunds')),
    )
    with op.batch_alter_table('contact_order_refunds', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_contact_order_refunds_order_id'), ['order_id'], unique=False
        )
    with op.batch_alter_table('contact_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('total', sa.Numeric(precision=18, scale=4), nullable=True))
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assignment', sa.String(length=16), nullable=True))
        batch_op.create_index(
            'ix_notifications_rule_assignment', ['rule_id', 'trigger_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_rule_assignment')
        batch_op.drop_column('assignment')
    with op.batch_alter_table('contact_orders', schema=None) as batch_op:
        batch_op.drop_column('total')
    with op.batch_alter_table('contact_order_refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_order_refunds_order_id'))
    op.drop_table('contact_order_refunds')
