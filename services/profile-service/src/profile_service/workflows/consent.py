"""Recording consent decisions and announcing the ones that change something."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import ConsentChanged, Purpose
from profile_service.db.models import Consent, ScoreView
from profile_service.domain.consent import (
    ConsentDecision,
    check_not_in_future,
    newest_profiling,
    supersedes,
)
from profile_service.workflows._publishing import consent_state, publish
from profile_service.workflows.customers import load_customer


def decision_of(row: Consent) -> ConsentDecision:
    state = consent_state(row)
    return ConsentDecision(
        state.channel, state.purpose, state.granted, state.source, state.changed_at
    )


async def record_consent(
    session: AsyncSession,
    customer_id: str,
    decision: ConsentDecision,
    *,
    now: datetime,
    max_skew: timedelta,
) -> tuple[Consent, bool]:
    """Store a decision unless a newer one is held; return the row and whether it changed.

    A decision dated more than `max_skew` after `now` is refused (422 naming `changed_at`).
    """
    check_not_in_future(decision, now=now, max_skew=max_skew)
    await load_customer(session, customer_id)
    if decision.purpose is Purpose.PROFILING:
        return await _record_profiling(session, customer_id, decision, now=now)
    row = await session.get(Consent, (customer_id, decision.channel.value, decision.purpose.value))
    if not supersedes(decision, decision_of(row) if row else None):
        assert row is not None
        return row, False
    return await _store(session, customer_id, decision, row, now=now), True


async def _record_profiling(
    session: AsyncSession, customer_id: str, decision: ConsentDecision, *, now: datetime
) -> tuple[Consent, bool]:
    """A profiling decision speaks for the customer on every channel: it is compared with the
    newest one on any channel and, when it wins, is the only profiling row kept."""
    held = list(
        await session.scalars(
            select(Consent).where(
                Consent.customer_id == customer_id, Consent.purpose == Purpose.PROFILING.value
            )
        )
    )
    current = newest_profiling([decision_of(row) for row in held])
    if not supersedes(decision, current):
        kept = next(row for row in held if decision_of(row) == current)
        return kept, False
    same_channel = None
    for row in held:
        if row.channel == decision.channel.value:
            same_channel = row
        else:
            await session.delete(row)
    if not decision.granted:
        # Data minimisation: the copy of their scores goes; the 360 withholds any that
        # arrive later (in flight when the objection was made).
        await session.execute(delete(ScoreView).where(ScoreView.customer_id == customer_id))
    return await _store(session, customer_id, decision, same_channel, now=now), True


async def _store(
    session: AsyncSession,
    customer_id: str,
    decision: ConsentDecision,
    row: Consent | None,
    *,
    now: datetime,
) -> Consent:
    """Write the decision into `row` (a new one when None) and publish `consent.changed`."""
    if row is None:
        row = Consent(
            customer_id=customer_id,
            channel=decision.channel.value,
            purpose=decision.purpose.value,
        )
        session.add(row)
    row.granted = decision.granted
    row.source = decision.source
    row.changed_at = decision.changed_at
    await session.flush()
    await publish(
        session, ConsentChanged(customer_id=customer_id, consent=consent_state(row)), time=now
    )
    return row


async def consents_of(session: AsyncSession, customer_id: str) -> list[Consent]:
    """All consent decisions held for a customer."""
    rows = await session.scalars(
        select(Consent)
        .where(Consent.customer_id == customer_id)
        .order_by(Consent.channel, Consent.purpose)
    )
    return list(rows)
