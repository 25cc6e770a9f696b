"""Customers a sweep reviews through the domain functions, loaded and locked.

The few customers a chunk's array review finds moving or changing their warning, every
customer on the ``per_customer`` path, and the customers a consumer changed while the review
of every buyer read them: loaded fresh (locked on PostgreSQL, waiting for a consumer's batch
to commit), moved by ``on_sweep`` and their warnings reviewed, stored through
:class:`CustomerChanges` (reasons worded, transitions, warnings, counts, events).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import objecting_customers
from lifecycle_service.db.models import PROFILING_DECISIONS
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.domain.stages import on_sweep
from lifecycle_service.workflows.changes import CustomerChanges
from lifecycle_service.workflows.customer_rows import StoredCustomer, load_customers


@dataclass(frozen=True)
class ChunkDone:
    """What a sweep chunk did."""

    reviewed: int
    moved: int
    raised: int
    closed: int

    def __add__(self, other: ChunkDone) -> ChunkDone:
        return ChunkDone(
            self.reviewed + other.reviewed,
            self.moved + other.moved,
            self.raised + other.raised,
            self.closed + other.closed,
        )

    @property
    def changed_anything(self) -> bool:
        """Whether events were staged (the relay is worth waking)."""
        return bool(self.moved or self.raised or self.closed)


NOTHING = ChunkDone(0, 0, 0, 0)


async def review_locked(
    session: AsyncSession, rules: StageRules, as_of: datetime, customer_ids: Collection[str]
) -> ChunkDone:
    """Review ``customer_ids`` at ``as_of`` as they stand now, locked; counts only movers."""
    if not customer_ids:
        return NOTHING
    return await review_stored(session, rules, as_of, await load_customers(session, customer_ids))


async def review_stored(
    session: AsyncSession, rules: StageRules, as_of: datetime, stored: dict[str, StoredCustomer]
) -> ChunkDone:
    """Review the loaded (and locked) customers at ``as_of`` and store what changed."""
    changes = CustomerChanges(rules, stored)
    changes.objecting = await objecting_customers(session, PROFILING_DECISIONS, stored)
    for customer_id, tracked in changes.customers.items():
        last_purchase = tracked.state.last_purchase_at
        if tracked.state.stage_since > as_of or (last_purchase and last_purchase > as_of):
            continue  # already moved by events after ``as_of`` (a sweep of a past moment)
        changes.apply(customer_id, on_sweep(tracked.state, as_of, rules), as_of)
        changes.review_warning(customer_id, as_of)
    # Every loaded customer's review time is counted again, under ``rules``, by store().
    await changes.store(session)
    return ChunkDone(
        reviewed=len(stored),
        moved=len(changes.transitions),
        raised=sum(1 for warning in changes.warnings if warning.is_open),
        closed=sum(1 for warning in changes.warnings if not warning.is_open),
    )
