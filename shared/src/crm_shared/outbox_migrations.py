"""Schema steps every service's outbox takes alike, called from each service's migration.

A function here is a migration step already applied to databases in the field: never change
one; a later change to the outbox gets a function of its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crm_shared._outbox_leadership import OUTBOX_CHANNEL

# Room on each page for the one update a row gets (its partition and sequence stamp), so it
# stays a HOT update; vacuum after a few thousand deleted rows, not a fifth of the table, so
# the relay's scan of the unsent-rows index does not walk a long tail of dead entries.
_NOTICE_OPTIONS = (
    "fillfactor = 50, autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000"
)


def add_outbox_notices() -> None:
    """Notify the relay at commit of rows added; delete the rows sent before (SQLite: only that)."""
    op.execute(sa.text("DELETE FROM outbox WHERE sent_at IS NOT NULL"))
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION notify_outbox_added() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{OUTBOX_CHANNEL}', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_added AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox_added()"
    )
    op.execute(f"ALTER TABLE outbox SET ({_NOTICE_OPTIONS})")


def drop_outbox_notices() -> None:
    """Undo `add_outbox_notices` (the deleted rows stay deleted)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE outbox RESET "
        "(fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)"
    )
    op.execute("DROP TRIGGER outbox_added ON outbox")
    op.execute("DROP FUNCTION notify_outbox_added()")


def drop_unread_plumbing_indexes() -> None:
    """Drop the inbox's `processed_at` index and the outbox's unique `event_id` (see
    `crm_shared.plumbing_tables(unread_indexes=False)`): no query reads either."""
    with op.batch_alter_table("processed_events") as batch_op:
        batch_op.drop_index("ix_processed_events_processed_at")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_constraint("uq_outbox_event_id", type_="unique")


def restore_unread_plumbing_indexes() -> None:
    """Undo `drop_unread_plumbing_indexes`."""
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.create_unique_constraint("uq_outbox_event_id", ["event_id"])
    with op.batch_alter_table("processed_events") as batch_op:
        batch_op.create_index("ix_processed_events_processed_at", ["processed_at"], unique=False)
