"""Scores updated in place: no index on churn_risk, half of each page left free.

A refit changes almost every customer's churn risk, so with an index on it every updated row
took a new entry in all six indexes of `scores`. Without it, an update that changes no
segment (the rule) is a heap-only tuple update when its page has room for the new version:
no index is touched and PostgreSQL's update work falls by about a third (bench/RESULTS.md,
rescore4). `fillfactor = 50` leaves that room (a row is ~1.4 KB; a table every row of which
is updated each re-score holds about two versions of each row anyway); the old versions are
pruned from their page by the next update. A churn-risk filter of `GET /v1/scores` now reads
in customer-id order, filtering as it goes.

Revision ID: 8028106d7f56
Revises: 4d7a2c9e5b16
Create Date: 2026-12-09 10:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '8028106d7f56'
down_revision: str | None = '4d7a2c9e5b16'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scores_churn_risk'))
    if op.get_bind().dialect.name == 'postgresql':
        # Applies to pages written from now on (a first fit's COPY, every page a refit touches).
        op.execute('ALTER TABLE scores SET (fillfactor = 50)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE scores RESET (fillfactor)')
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scores_churn_risk'), ['churn_risk'], unique=False)
