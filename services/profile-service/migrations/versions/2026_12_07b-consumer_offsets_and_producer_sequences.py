"""Consumers store their offsets with each batch; the outbox stamps rows with producer sequences.

The offsets per (consumer, topic, partition) replace the inbox for records read twice; the
(producer, sequence) stamped on our relays' records replace it for events sent twice. The
processed_events table stays for events of outside producers (shops), known by event id.

Revision ID: 39a2f2cc2b4a
Revises: 9c1f0e5a7d21
Create Date: 2026-12-06 23:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_shared

revision: str = '39a2f2cc2b4a'
down_revision: str | None = '9c1f0e5a7d21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('consumed_sequences',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('producer', sa.String(length=36), nullable=False),
    sa.Column('next_sequence', sa.BigInteger(), nullable=False),
    sa.Column('gaps', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'producer', name=op.f('pk_consumed_sequences'))
    )
    op.create_table('consumer_offsets',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('topic', sa.String(length=249), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('next_offset', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'topic', 'partition', name=op.f('pk_consumer_offsets'))
    )
    op.create_table('outbox_sequences',
    sa.Column('topic', sa.String(length=249), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('producer', sa.String(length=36), nullable=False),
    sa.Column('next_sequence', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('topic', 'partition', name=op.f('pk_outbox_sequences')),
    sa.UniqueConstraint('producer', name=op.f('uq_outbox_sequences_producer'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('partition', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sequence', sa.BigInteger(), nullable=True))

    # Rows waiting now may have been sent by the relay before this version, unstamped: they go
    # out unstamped again (sequence -1), so a consumer checks them by event id, as it did.
    op.execute(sa.text('UPDATE outbox SET sequence = -1 WHERE sent_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('sequence')
        batch_op.drop_column('partition')

    op.drop_table('outbox_sequences')
    op.drop_table('consumer_offsets')
    op.drop_table('consumed_sequences')
