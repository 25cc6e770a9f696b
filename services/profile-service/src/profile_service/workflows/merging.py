"""Merging two customers into one, with an audit record and a `customer.merged` event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import CustomerMerged, CustomerUpdated
from crm_shared import new_id
from crm_shared.errors import Conflict, UnprocessableContent
from profile_service.db.models import (
    Consent,
    Customer,
    CustomerIdentity,
    CustomerTag,
    IntakeOrder,
    Merge,
    NotificationView,
    ScoreView,
    StageView,
)
from profile_service.domain.consent import latest
from profile_service.domain.contact import InvalidContact
from profile_service.domain.profiles import Profile, check_merge_limits
from profile_service.workflows._publishing import publish, snapshot
from profile_service.workflows.consent import decision_of
from profile_service.workflows.customers import (
    external_id_counts,
    load_customer,
    profile_of,
    sync_tags,
    write_profile,
)


async def merge_customers(
    session: AsyncSession,
    *,
    surviving_id: str,
    merged_id: str,
    requested_by: str,
    reason: str | None,
    now: datetime,
) -> Merge:
    """Fold `merged_id` into `surviving_id`: identities, gaps in the profile, consents, history."""
    if surviving_id == merged_id:
        raise UnprocessableContent("a customer cannot be merged into itself", field="customer_id")
    # Lock in id order so two opposite merges cannot deadlock each other.
    first, second = sorted([surviving_id, merged_id])
    locked = {cid: await load_customer(session, cid, for_update=True) for cid in (first, second)}
    survivor, merged = locked[surviving_id], locked[merged_id]

    profile, changed = profile_of(survivor).fill_from(profile_of(merged))
    external_ids = sum((await external_id_counts(session, [surviving_id, merged_id])).values())
    try:
        check_merge_limits(profile, external_ids)
    except InvalidContact as error:
        # Nothing is dropped silently: the caller trims one of the two customers first.
        raise Conflict(
            f"The merged customer would pass a limit: {error.reason}.",
            errors=[{"field": error.field, "message": error.reason}],
        ) from error
    moved = await session.execute(
        update(CustomerIdentity)
        .where(CustomerIdentity.customer_id == merged_id)
        .values(customer_id=surviving_id)
    )
    await _merge_consents(session, surviving_id, merged_id)
    await session.execute(
        update(IntakeOrder)
        .where(IntakeOrder.customer_id == merged_id)
        .values(customer_id=surviving_id)
    )
    await session.execute(
        update(NotificationView)
        .where(NotificationView.customer_id == merged_id)
        .values(customer_id=surviving_id)
    )
    # Scores and stages are recomputed for the survivor by their owners after customer.merged.
    await session.execute(delete(ScoreView).where(ScoreView.customer_id == merged_id))
    await session.execute(delete(StageView).where(StageView.customer_id == merged_id))

    write_profile(survivor, profile)
    survivor.updated_at = now
    await sync_tags(session, survivor)
    _tombstone(merged, into=surviving_id, now=now)
    await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == merged_id))

    audit = Merge(
        id=new_id(),
        surviving_customer_id=surviving_id,
        merged_customer_id=merged_id,
        merged_at=now,
        requested_by=requested_by,
        reason=reason,
        moved_identities=int(moved.rowcount or 0),  # type: ignore[attr-defined]
    )
    session.add(audit)
    await session.flush()
    await publish(
        session,
        CustomerMerged(customer_id=surviving_id, merged_customer_id=merged_id, merged_at=now),
        time=now,
    )
    await publish(
        session,
        CustomerUpdated(
            customer=await snapshot(session, survivor),
            changed_fields=sorted({*changed, "external_ids", "consents"}),
        ),
        time=now,
    )
    return audit


async def _merge_consents(session: AsyncSession, surviving_id: str, merged_id: str) -> None:
    rows = list(
        await session.scalars(
            select(Consent).where(Consent.customer_id.in_([surviving_id, merged_id]))
        )
    )
    newest = latest([decision_of(row) for row in rows])
    await session.execute(delete(Consent).where(Consent.customer_id.in_([surviving_id, merged_id])))
    await session.flush()
    for decision in newest.values():
        session.add(
            Consent(
                customer_id=surviving_id,
                channel=decision.channel.value,
                purpose=decision.purpose.value,
                granted=decision.granted,
                source=decision.source,
                changed_at=decision.changed_at,
            )
        )


def _tombstone(customer: Customer, *, into: str, now: datetime) -> None:
    # The survivor now holds this customer's data; the tombstone keeps only the pointer.
    customer.status = "merged"
    customer.merged_into_id = into
    write_profile(customer, Profile())
    customer.updated_at = now


async def merges_of(session: AsyncSession, customer_id: str) -> list[Merge]:
    """Merge audit records in which the customer took part."""
    rows = await session.scalars(
        select(Merge)
        .where(
            (Merge.surviving_customer_id == customer_id) | (Merge.merged_customer_id == customer_id)
        )
        .order_by(Merge.merged_at)
    )
    return list(rows)
