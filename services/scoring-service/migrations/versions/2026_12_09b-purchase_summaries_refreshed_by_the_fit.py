"""Purchase summaries per customer, marked stale by triggers and refreshed by the fit.

`purchase_summaries`: one row a customer, their counted orders merged per purchase day,
packed (see db/models.py). `stale_purchase_summaries`: customers whose orders changed since
their summary was derived, appended to by statement-level triggers on `purchases` (every
insert, update and delete, from any path: orders, refunds, cancellations, merges, erasures),
so the order stream pays an append per touched customer and nothing else. The whole-base read
refreshes the marked customers' summaries first (workflows/purchase_summaries.py).

On PostgreSQL the summaries are backfilled from every order here; SQLite gets the tables but
neither triggers nor rows (its fit reads the orders).

Revision ID: 6e1f0b3a8d27
Revises: 4d7a2c9e5b16
Create Date: 2026-12-09 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '6e1f0b3a8d27'
down_revision: str | None = '4d7a2c9e5b16'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Transition tables need one trigger per kind of statement.
_TRIGGERS = {
    'inserted': (
        'insert',
        'new table as changed_purchases',
        'select customer_id from changed_purchases',
    ),
    'updated': (
        'update',
        'old table as purchases_before new table as changed_purchases',
        'select customer_id from purchases_before union select customer_id from changed_purchases',
    ),
    'deleted': (
        'delete',
        'old table as purchases_before',
        'select customer_id from purchases_before',
    ),
}

_BACKFILL = """
insert into purchase_summaries (customer_id, days, amounts, orders)
select customer_id,
       string_agg(int4send(purchase_day), ''::bytea order by purchase_day),
       string_agg(float8send(net), ''::bytea order by purchase_day),
       string_agg(int4send(orders), ''::bytea order by purchase_day)
from (
    select customer_id, purchase_day,
           sum(amount - refunded)::float8 as net, count(*)::int4 as orders
    from purchases
    where placed_at is not null and not cancelled and (refunded = 0 or amount - refunded > 0)
    group by customer_id, purchase_day
) as per_day
group by customer_id
"""


def upgrade() -> None:
    op.create_table(
        'purchase_summaries',
        sa.Column(
            'customer_id',
            sa.String(length=36).with_variant(sa.String(length=36, collation='C'), 'postgresql'),
            nullable=False,
        ),
        sa.Column('days', sa.LargeBinary(), nullable=False),
        sa.Column('amounts', sa.LargeBinary(), nullable=False),
        sa.Column('orders', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_purchase_summaries')),
    )
    op.create_table(
        'stale_purchase_summaries',
        sa.Column('customer_id', sa.String(length=36), nullable=False),
    )
    if op.get_bind().dialect.name != 'postgresql':
        return
    for name, (event, transition, customers) in _TRIGGERS.items():
        op.execute(
            f"""
            create function purchases_{name}_mark_summaries() returns trigger
            language plpgsql as $$
            begin
                insert into stale_purchase_summaries (customer_id)
                select distinct customer_id from ({customers}) as changed;
                return null;
            end
            $$
            """
        )
        op.execute(
            f'create trigger purchases_{name}_mark_summaries after {event} on purchases'
            f' referencing {transition} for each statement'
            f' execute function purchases_{name}_mark_summaries()'
        )
    op.execute(_BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name in _TRIGGERS:
            op.execute(f'drop trigger purchases_{name}_mark_summaries on purchases')
            op.execute(f'drop function purchases_{name}_mark_summaries()')
    op.drop_table('stale_purchase_summaries')
    op.drop_table('purchase_summaries')
