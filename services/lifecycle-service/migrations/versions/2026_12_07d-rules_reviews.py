"""A rules change records its version only; the sweep's review of every buyer keeps its progress.

Before this version ``replace_rules`` put every buyer up for review itself, so the versions
already stored were reviewed (or are due): they are recorded as completed.

Revision ID: 5c2d8e7a9b31
Revises: 4e8a1c5f7b20
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_shared

revision: str = '5c2d8e7a9b31'
down_revision: str | None = '4e8a1c5f7b20'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rules_reviews',
    sa.Column('rules_version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('started_at', crm_shared._db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_customer_id', sa.String(length=64), nullable=True),
    sa.Column('reviewed', sa.Integer(), nullable=False),
    sa.Column('completed_at', crm_shared._db.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('rules_version', name=op.f('pk_rules_reviews'))
    )
    op.execute(
        sa.text(
            'INSERT INTO rules_reviews (rules_version, started_at, reviewed, completed_at)'
            ' SELECT version, created_at, 0, created_at FROM stage_rules_versions'
            ' WHERE version = (SELECT max(version) FROM stage_rules_versions)'
        )
    )


def downgrade() -> None:
    op.drop_table('rules_reviews')
