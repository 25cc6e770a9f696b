"""customer_lifecycles leaves room on each page, so a rewritten row stays on its page.

Every update of a customer's row (a consumer's batch, the review of every buyer after a rules
change, which rewrites about a fifth of the buyers' review times) writes a new row version. In
a full page it goes to another page, often a new one at the table's end: two heap pages dirtied
and the table extended, and the walk in physical order meets the row again further on. With 15%
of each page free (five or six ~215-byte rows) the new version stays on the page already being
written; the updates still add their index entries (``next_review_at`` is indexed).

Revision ID: 3b7f0c9e2d15
Revises: 7d41b9e2c6a8
Create Date: 2026-12-10 14:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '3b7f0c9e2d15'
down_revision: str | None = '7d41b9e2c6a8'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        # Applies to pages written from now on; a table rewrite (VACUUM FULL) spreads old rows.
        op.execute('ALTER TABLE customer_lifecycles SET (fillfactor = 85)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE customer_lifecycles RESET (fillfactor)')
