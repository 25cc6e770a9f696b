"""Scores keep what a re-score compares against; the payload becomes json text; one index less.

- `change_state` (a digest of the fields compared exactly and the figures compared within a
  tolerance, 72 bytes): a re-score compares it instead of reading and decoding every stored
  payload. Rows stored before stay null and are compared by their payload once.
- `payload` is json, not jsonb, as the explanation already is: only ever read back whole (the
  filter columns are copied out of it), and parsing ~2.3 KB of JSON into jsonb per written
  score was PostgreSQL's largest cost per row after the explanation.
- `ix_scores_rfm_segment` goes: `ix_scores_segment_sizes` begins with the same column.

Revision ID: 3c5e8f1d7a92
Revises: bc0e882bbc41
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '3c5e8f1d7a92'
down_revision: str | None = 'bc0e882bbc41'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_state', sa.LargeBinary(length=72), nullable=True))
        batch_op.drop_index('ix_scores_rfm_segment')
    if op.get_bind().dialect.name == 'postgresql':  # SQLite has one JSON type
        op.alter_column(
            'scores',
            'payload',
            type_=sa.JSON(),
            existing_type=postgresql.JSONB(),
            postgresql_using='payload::json',
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column(
            'scores',
            'payload',
            type_=postgresql.JSONB(),
            existing_type=sa.JSON(),
            postgresql_using='payload::jsonb',
        )
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.create_index('ix_scores_rfm_segment', ['rfm_segment'], unique=False)
        batch_op.drop_column('change_state')
