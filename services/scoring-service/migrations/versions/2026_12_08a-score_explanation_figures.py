"""Scores keep the figures their explanation is made of, not its text.

`explanation_figures` (369 bytes: a layout number and 46 float64s) replaces the ~1.3 KB of
explanation JSON a re-score serialised per changed customer; the API builds the explanation
from the figures when read (`domain/explanations.py`). With it a score row stays below
PostgreSQL's ~2 KB compression threshold. `explanation` becomes nullable: rows stored before
keep their JSON (read as before) until their next re-score writes the figures instead.

Revision ID: 4d7a2c9e5b16
Revises: 3c5e8f1d7a92
Create Date: 2026-12-08 07:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '4d7a2c9e5b16'
down_revision: str | None = '3c5e8f1d7a92'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 10_000


def upgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('explanation_figures', sa.LargeBinary(), nullable=True))
        batch_op.alter_column('explanation', existing_type=sa.JSON(), nullable=True)


def downgrade() -> None:
    # Rows stored with figures only get their explanation's text back, built as the API did.
    from scoring_service.domain.explanations import explanation_of_packed

    connection = op.get_bind()
    scores = sa.table(
        'scores',
        sa.column('customer_id', sa.String()),
        sa.column('explanation', sa.JSON()),
        sa.column('explanation_figures', sa.LargeBinary()),
    )
    after = ''
    while True:
        rows = connection.execute(
            sa.select(scores.c.customer_id, scores.c.explanation_figures)
            .where(scores.c.explanation.is_(None), scores.c.customer_id > after)
            .order_by(scores.c.customer_id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            sa.update(scores)
            .where(scores.c.customer_id == sa.bindparam('id'))
            .values(explanation=sa.bindparam('built')),
            [
                {'id': customer_id, 'built': explanation_of_packed(bytes(packed))}
                for customer_id, packed in rows
            ],
        )
        after = rows[-1][0]
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.alter_column('explanation', existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column('explanation_figures')
