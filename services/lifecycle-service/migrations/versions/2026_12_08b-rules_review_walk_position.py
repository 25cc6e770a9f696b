"""The review of every buyer walks the table in physical order on PostgreSQL: its position.

A walk by customer id reads the rows in the primary key's order, which for random ids is a
random order of the heap's pages; the walk by ranges of blocks reads each page once. Where it
has come is a tuple id, kept next to the id walk's ``last_customer_id``.

Revision ID: 7d41b9e2c6a8
Revises: 7c1e5a9d3b42
Create Date: 2026-12-08 07:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '7d41b9e2c6a8'
down_revision: str | None = '7c1e5a9d3b42'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('rules_reviews') as batch_op:
        batch_op.add_column(sa.Column('walk_position', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rules_reviews') as batch_op:
        batch_op.drop_column('walk_position')
