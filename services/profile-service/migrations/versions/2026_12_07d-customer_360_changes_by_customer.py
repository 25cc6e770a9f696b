"""The 360's tables name the customers each writing statement touched in their change notices.

Before, every writing statement on a table a customer 360 is read from sent an empty
``customer_360_changes`` notice, and every process emptied its whole 360 cache on it: under a
steady order stream each consumer batch emptied it (bench/RESULTS.md). Now statement-level
triggers with transition tables send the distinct customer ids of the statement's old and new
rows (for ``customers`` also the customer it was merged into), as JSON arrays of strings in
payloads of at most ~7 KB (NOTIFY's limit is 8000 bytes), so each process forgets only those
customers' bodies (crm_shared.ReadCache, the protocol in crm_shared._read_cache_changes). An
empty payload still means every customer: a TRUNCATE, a statement touching more than
MAX_NAMED customers, or an id too long to name. A merge or an erasure touches every customer
involved (the merged and the surviving one, their identities and consents), each named.

A session with ``crm.read_cache_notices = 'on'`` (the pool's connections of a process keeping
360s) also gets each payload as a NOTICE, so that process invalidates its own writes at once.

PostgreSQL allows transition tables only on single-event triggers: each table gets one trigger
per event. SQLite has no LISTEN: nothing to do there.

Revision ID: 8b6e2d7c4f19
Revises: 6d0c4f1e8a23
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '8b6e2d7c4f19'
down_revision: str | None = '6d0c4f1e8a23'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = 'customer_360_changes'
# A statement touching more customers than this empties every cache instead: past it the
# notices would cost more than re-reading (1,000 ids are ~40 KB, ten notices).
MAX_NAMED = 1000
# Ids are cut into payloads by the running sum of their JSON lengths in steps of CHUNK_BYTES;
# a payload then holds at most CHUNK_BYTES + one id (+ brackets), so ids are named only up to
# LONGEST_ID bytes: 4000 + 3000 + 2 stays under NOTIFY's 8000.
CHUNK_BYTES = 4000
LONGEST_ID = 3000
# The id columns of each table whose values name the customers a row belongs to.
CUSTOMER_COLUMNS = {
    'customers': ('id', 'merged_into_id'),
    'customer_identities': ('customer_id',),
    'consents': ('customer_id',),
    'view_scores': ('customer_id',),
    'view_stages': ('customer_id',),
    'view_notifications': ('customer_id',),
}
EVENTS = {
    # event: (trigger suffix, REFERENCING clause, transition tables read)
    'INSERT': ('inserted', 'REFERENCING NEW TABLE AS new_rows', ('new_rows',)),
    'UPDATE': (
        'updated',
        'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows',
        ('old_rows', 'new_rows'),
    ),
    'DELETE': ('deleted', 'REFERENCING OLD TABLE AS old_rows', ('old_rows',)),
}

NOTIFY_FUNCTION = f"""
CREATE FUNCTION customer_360_changed(ids text[]) RETURNS void LANGUAGE plpgsql AS $$
-- Tell the 360 caches that the customers `ids` changed; NULL means every customer.
DECLARE
    payload text;
    tell_session boolean := coalesce(current_setting('crm.read_cache_notices', true), '') = 'on';
BEGIN
    IF ids IS NOT NULL AND cardinality(ids) = 0 THEN
        RETURN;  -- the statement touched no row
    END IF;
    IF ids IS NULL OR cardinality(ids) > {MAX_NAMED}
            OR EXISTS (SELECT FROM unnest(ids) AS id WHERE octet_length(id) > {LONGEST_ID}) THEN
        PERFORM pg_notify('{CHANNEL}', '');
        IF tell_session THEN
            RAISE NOTICE USING MESSAGE = '{CHANNEL}', DETAIL = '';
        END IF;
        RETURN;
    END IF;
    FOR payload IN
        SELECT '[' || string_agg(item, ',') || ']'
        FROM (
            SELECT item,
                   sum(octet_length(item) + 1) OVER (ORDER BY item ROWS UNBOUNDED PRECEDING)
                       / {CHUNK_BYTES} AS chunk
            FROM (SELECT to_json(id)::text AS item FROM unnest(ids) AS id) AS named
        ) AS numbered
        GROUP BY chunk
    LOOP
        PERFORM pg_notify('{CHANNEL}', payload);
        IF tell_session THEN
            RAISE NOTICE USING MESSAGE = '{CHANNEL}', DETAIL = payload;
        END IF;
    END LOOP;
END
$$
"""


def _ids(columns: Sequence[str], transition_tables: Sequence[str]) -> str:
    # The distinct non-null ids, one more than MAX_NAMED at most: enough to know it is too many.
    rows = ' UNION '.join(
        f'SELECT {column}::text AS id FROM {table}'
        for table in transition_tables
        for column in columns
    )
    return f'ARRAY(SELECT id FROM ({rows}) AS touched WHERE id IS NOT NULL LIMIT {MAX_NAMED + 1})'


def _trigger_function(table: str) -> str:
    columns = CUSTOMER_COLUMNS[table]
    branches = '\n'.join(
        f"    {'IF' if n == 0 else 'ELSIF'} TG_OP = '{op_name}' THEN\n"
        f'        PERFORM customer_360_changed({_ids(columns, tables)});'
        for n, (op_name, (_, _, tables)) in enumerate(EVENTS.items())
    )
    return f"""
CREATE FUNCTION {table}_360_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{branches}
    ELSE
        PERFORM customer_360_changed(NULL);  -- TRUNCATE: every customer
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in CUSTOMER_COLUMNS:
        op.execute(f'DROP TRIGGER {table}_360_change ON {table}')
    op.execute('DROP FUNCTION notify_customer_360_change()')
    op.execute(NOTIFY_FUNCTION)
    for table in CUSTOMER_COLUMNS:
        op.execute(_trigger_function(table))
        for event, (suffix, referencing, _) in EVENTS.items():
            op.execute(
                f'CREATE TRIGGER {table}_360_{suffix} AFTER {event} ON {table} {referencing} '
                f'FOR EACH STATEMENT EXECUTE FUNCTION {table}_360_changed()'
            )
        op.execute(
            f'CREATE TRIGGER {table}_360_truncated AFTER TRUNCATE ON {table} '
            f'FOR EACH STATEMENT EXECUTE FUNCTION {table}_360_changed()'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in CUSTOMER_COLUMNS:
        for suffix in (*(names[0] for names in EVENTS.values()), 'truncated'):
            op.execute(f'DROP TRIGGER {table}_360_{suffix} ON {table}')
        op.execute(f'DROP FUNCTION {table}_360_changed()')
    op.execute('DROP FUNCTION customer_360_changed(text[])')
    # Back to one empty notice per writing statement (2026_12_07c-customer_360_change_notices).
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
    for table in CUSTOMER_COLUMNS:
        op.execute(
            f'CREATE TRIGGER {table}_360_change '
            f'AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} '
            'FOR EACH STATEMENT EXECUTE FUNCTION notify_customer_360_change()'
        )
