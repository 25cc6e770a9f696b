"""The 360's documents are stored as `json` (the text as given) instead of `jsonb` on PostgreSQL.

They are written on every consumed event and only ever read back whole, as text: `jsonb` parsed
each into its binary form on write and printed it back on read, for nothing. SQLite stores both
the same way: nothing to do there.

Revision ID: 3f7b9d2e6a14
Revises: 994fe61f1642
Create Date: 2026-12-08 08:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '3f7b9d2e6a14'
down_revision: str | None = '994fe61f1642'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOCUMENTS = (
    ('view_scores', 'scores'),
    ('view_stages', 'stage_detail'),
    ('view_stages', 'warning'),
    ('view_notifications', 'detail'),
)


def _retype(to: str) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column in DOCUMENTS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE {to} USING {column}::{to}')


def upgrade() -> None:
    _retype('json')


def downgrade() -> None:
    _retype('jsonb')
