"""A customer's profiling objection (GDPR art. 21/22): their scores go, and come back on withdrawal.

The objection itself travels as ``consent.changed`` on ``crm.customers``, which lifecycle,
notification and profile consume too, so each drops what it built on the scores (warnings,
messages, the 360 copy) from that one event; no separate "score withdrawn" event is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import ProfilingChange
from scoring_service.db.models import PendingRescore, Score
from scoring_service.workflows.pending_rescores import queue_rescores


async def apply_profiling_changes(
    session: AsyncSession, changes: Sequence[ProfilingChange]
) -> None:
    """Delete objecting customers' scores (segments and clusters are columns of them);
    queue customers who withdrew their objection for scoring as of the withdrawal."""
    objecting = sorted(c.customer_id for c in changes if c.objected)
    if objecting:
        await session.execute(delete(Score).where(Score.customer_id.in_(objecting)))
        await session.execute(
            delete(PendingRescore).where(PendingRescore.customer_id.in_(objecting))
        )
    await queue_rescores(session, {c.customer_id: c.changed_at for c in changes if not c.objected})
