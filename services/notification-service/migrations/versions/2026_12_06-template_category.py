"""Templates carry their category (marketing or service), which rules and one-off sends take.

Existing templates become service when every stored rule sending them is service, marketing
otherwise (the safe side: marketing needs consent).

Revision ID: 8e3f6a1c9d27
Revises: 5c1d7e9a2b40
Create Date: 2026-12-06 11:00:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '8e3f6a1c9d27'
down_revision: str | None = '5c1d7e9a2b40'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('templates', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('category', sa.String(length=16), server_default='marketing', nullable=False)
        )
    connection = op.get_bind()
    categories: dict[str, set[str]] = {}
    for (document,) in connection.execute(sa.text("SELECT document FROM playbook_rules")):
        rule = json.loads(document) if isinstance(document, str) else document
        categories.setdefault(rule["template_id"], set()).add(rule["category"])
    service = sorted(t for t, used_as in categories.items() if used_as == {"service"})
    for template_id in service:
        connection.execute(
            sa.text("UPDATE templates SET category = 'service' WHERE template_id = :id"),
            {"id": template_id},
        )


def downgrade() -> None:
    with op.batch_alter_table('templates', schema=None) as batch_op:
        batch_op.drop_column('category')
