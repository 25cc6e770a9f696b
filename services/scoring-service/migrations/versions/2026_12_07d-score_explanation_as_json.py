"""A score's explanation is kept as json text, not jsonb: it is only ever read back whole.

Parsing each explanation into jsonb (its dozens of full-precision floats into numerics) was
two thirds of PostgreSQL's CPU when a re-score wrote a million scores; json only checks the
text. Nothing queries inside the explanation.

Revision ID: 7f3c9e1a2b84
Revises: 9d4b2a7e6c13
Create Date: 2026-12-07 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '7f3c9e1a2b84'
down_revision: str | None = '9d4b2a7e6c13'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':  # SQLite has one JSON type
        op.alter_column(
            'scores',
            'explanation',
            type_=sa.JSON(),
            existing_type=postgresql.JSONB(),
            postgresql_using='explanation::json',
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column(
            'scores',
            'explanation',
            type_=postgresql.JSONB(),
            existing_type=sa.JSON(),
            postgresql_using='explanation::jsonb',
        )
