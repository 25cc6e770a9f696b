"""Scores keep their total spend in columns, indexed with the segments, for revenue per segment.

The amount and currency are copied out of each score's payload (backfilled here), so the
console's segment grid sums revenue from an index instead of reading every payload's JSON; the
index holds every segment dimension, so all the segment sizes come from one index-only scan.

Revision ID: 9d4b2a7e6c13
Revises: d268db2ce802
Create Date: 2026-12-07 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '9d4b2a7e6c13'
down_revision: str | None = 'd268db2ce802'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = {
    'postgresql': (
        "UPDATE scores SET total_spend = CAST(payload->'total_spend'->>'amount' AS NUMERIC),"
        " total_spend_currency = payload->'total_spend'->>'currency'"
    ),
    'sqlite': (
        "UPDATE scores SET total_spend = CAST(json_extract(payload, '$.total_spend.amount')"
        " AS NUMERIC), total_spend_currency = json_extract(payload, '$.total_spend.currency')"
    ),
}


def upgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('total_spend', sa.Numeric(precision=18, scale=4), nullable=True))
        batch_op.add_column(sa.Column('total_spend_currency', sa.String(length=3), nullable=True))
    op.execute(_BACKFILL[op.get_bind().dialect.name])
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.create_index(
            'ix_scores_segment_sizes',
            ['rfm_segment', 'total_spend_currency', 'value_tier', 'grade', 'cluster'],
            unique=False,
            postgresql_include=['total_spend'],
        )


def downgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.drop_index('ix_scores_segment_sizes', postgresql_include=['total_spend'])
        batch_op.drop_column('total_spend_currency')
        batch_op.drop_column('total_spend')
