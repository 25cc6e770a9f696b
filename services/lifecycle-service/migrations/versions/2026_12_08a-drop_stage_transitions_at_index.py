"""Stage transitions lose their index on `at`: nothing reads them by time alone.

A customer's history is read by customer (`ix_stage_transitions_customer_at`); the analytics
count transitions in `transition_counts`. The index only cost a b-tree insert per transition,
one or two per order consumed.

Revision ID: 7c1e5a9d3b42
Revises: 09e3e873338b
Create Date: 2026-12-08 08:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '7c1e5a9d3b42'
down_revision: str | None = '09e3e873338b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('stage_transitions', schema=None) as batch_op:
        batch_op.drop_index('ix_stage_transitions_at')


def downgrade() -> None:
    with op.batch_alter_table('stage_transitions', schema=None) as batch_op:
        batch_op.create_index('ix_stage_transitions_at', ['at'], unique=False)
