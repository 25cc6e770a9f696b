"""The tables a customer 360 is read from notify ``customer_360_changes`` after each write.

Each profile-service process keeps finished 360 bodies and empties them on every notice
(crm_shared.ReadCache), so a change made through any process (HTTP, consumers, imports,
erasure, or by hand) reaches every cache at commit. One notice per writing statement; PostgreSQL
folds identical notices of a transaction into one. SQLite has no LISTEN: nothing to do there.

Revision ID: 6d0c4f1e8a23
Revises: 39a2f2cc2b4a
Create Date: 2026-12-07 02:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '6d0c4f1e8a23'
down_revision: str | None = '39a2f2cc2b4a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = 'customer_360_changes'
TABLES = (
    'customers',
    'customer_identities',
    'consents',
    'view_scores',
    'view_stages',
    'view_notifications',
)


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(
        f"""
        CREATE FUNCTION notify_customer_360_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f'CREATE TRIGGER {table}_360_change '
            f'AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} '
            'FOR EACH STATEMENT EXECUTE FUNCTION notify_customer_360_change()'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TABLES:
        op.execute(f'DROP TRIGGER {table}_360_change ON {table}')
    op.execute('DROP FUNCTION notify_customer_360_change()')
