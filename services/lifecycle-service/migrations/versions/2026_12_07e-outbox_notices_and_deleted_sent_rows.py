"""Outbox rows wake the relay at commit, and leave the table once published.

A statement trigger notifies ``outbox_added`` from every transaction that inserts outbox rows
(PostgreSQL folds a transaction's notices into one, delivered at commit), so the relay, which
LISTENs while it leads, publishes at once instead of at its next poll. The relay now deletes a
row once the broker has it (nothing reads sent rows), so the rows sent before are deleted here.
A fillfactor of 50 leaves room on each page for the one update a row gets (its partition and
sequence stamp) to stay a HOT update, adding no index entries; and the table is vacuumed
after a few thousand deleted rows rather than a fifth of the table, so the relay's scan of
the unsent-rows index does not walk a long tail of dead entries. SQLite: only the delete.

Revision ID: 09e3e873338b
Revises: 5c2d8e7a9b31
Create Date: 2026-12-07 05:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '09e3e873338b'
down_revision: str | None = '5c2d8e7a9b31'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = 'outbox_added'
OPTIONS = (
    'fillfactor = 50, autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000'
)


def upgrade() -> None:
    op.execute(sa.text('DELETE FROM outbox WHERE sent_at IS NOT NULL'))
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(
        f"""
        CREATE FUNCTION notify_outbox_added() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        'CREATE TRIGGER outbox_added AFTER INSERT ON outbox '
        'FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox_added()'
    )
    op.execute(f'ALTER TABLE outbox SET ({OPTIONS})')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(
        'ALTER TABLE outbox RESET '
        '(fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)'
    )
    op.execute('DROP TRIGGER outbox_added ON outbox')
    op.execute('DROP FUNCTION notify_outbox_added()')
