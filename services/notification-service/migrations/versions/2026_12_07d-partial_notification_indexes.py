"""Notifications indexed only while a query looks for them; contacts leave room for HOT updates.

Each queue row (3.2 per order in the pipeline) was an entry in eight indexes at insert and
eight more at its decision. The claim, recovery, frequency cap and effect report each read one
kind of row, so their indexes become partial: scheduled rows by due time, sending rows by
sender, marketing sends by customer and decision time, assigned rows by rule and trigger time.
A queue row now enters six indexes at insert, and a decision adds only the partial ones that
match the decided row. The contacts table, rewritten by every batch that touches a customer,
keeps a fifth of each page free so those updates stay on the page (no primary-key entry).

Revision ID: 9e4b7c2a1f30
Revises: 6a9c3e1f5d84
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '9e4b7c2a1f30'
down_revision: str | None = '6a9c3e1f5d84'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SCHEDULED = sa.text("status = 'scheduled'")
_SENDING = sa.text("status = 'sending'")
_MARKETING_SENDS = sa.text("category = 'marketing' AND status IN ('sending', 'sent')")
_ASSIGNED = sa.text('assignment IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_status_due')
        batch_op.drop_index('ix_notifications_customer_decided')
        batch_op.drop_index('ix_notifications_rule_assignment')
        batch_op.create_index(
            'ix_notifications_scheduled_due',
            ['due_at'],
            unique=False,
            postgresql_where=_SCHEDULED,
            sqlite_where=_SCHEDULED,
        )
        batch_op.create_index(
            'ix_notifications_sending',
            ['sender'],
            unique=False,
            postgresql_where=_SENDING,
            sqlite_where=_SENDING,
        )
        batch_op.create_index(
            'ix_notifications_marketing_sends',
            ['customer_id', 'decided_at'],
            unique=False,
            postgresql_where=_MARKETING_SENDS,
            sqlite_where=_MARKETING_SENDS,
        )
        batch_op.create_index(
            'ix_notifications_rule_assignment',
            ['rule_id', 'trigger_at'],
            unique=False,
            postgresql_where=_ASSIGNED,
            sqlite_where=_ASSIGNED,
        )
    if op.get_bind().dialect.name == 'postgresql':
        # Applies to pages written from now on; a table rewrite (VACUUM FULL) spreads old rows.
        op.execute('ALTER TABLE contacts SET (fillfactor = 80)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE contacts RESET (fillfactor)')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(
            'ix_notifications_rule_assignment', postgresql_where=_ASSIGNED, sqlite_where=_ASSIGNED
        )
        batch_op.drop_index(
            'ix_notifications_marketing_sends',
            postgresql_where=_MARKETING_SENDS,
            sqlite_where=_MARKETING_SENDS,
        )
        batch_op.drop_index(
            'ix_notifications_sending', postgresql_where=_SENDING, sqlite_where=_SENDING
        )
        batch_op.drop_index(
            'ix_notifications_scheduled_due', postgresql_where=_SCHEDULED, sqlite_where=_SCHEDULED
        )
        batch_op.create_index(
            'ix_notifications_rule_assignment', ['rule_id', 'trigger_at'], unique=False
        )
        batch_op.create_index(
            'ix_notifications_customer_decided',
            ['customer_id', 'category', 'decided_at'],
            unique=False,
        )
        batch_op.create_index('ix_notifications_status_due', ['status', 'due_at'], unique=False)
