"""Open churn warnings indexed by 12-month CLV at risk, for the console's top-N work list.

Revision ID: 4e8a1c5f7b20
Revises: a91f2c8d3fad
Create Date: 2026-12-07 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '4e8a1c5f7b20'
down_revision: str | None = 'a91f2c8d3fad'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN_WARNING = sa.text("status IN ('open', 'updated')")


def upgrade() -> None:
    op.create_index(
        'ix_churn_warnings_open_at_risk',
        'churn_warnings',
        [
            sa.text("((predicted_clv_12m * churn_risk) IS NULL)"),
            sa.text('(predicted_clv_12m * churn_risk) DESC'),
            sa.text('raised_at DESC'),
            'warning_id',
        ],
        unique=False,
        postgresql_where=_OPEN_WARNING,
        sqlite_where=_OPEN_WARNING,
    )


def downgrade() -> None:
    op.drop_index(
        'ix_churn_warnings_open_at_risk',
        table_name='churn_warnings',
        postgresql_where=_OPEN_WARNING,
        sqlite_where=_OPEN_WARNING,
    )
