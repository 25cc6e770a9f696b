"""Saving many profiles at once (bulk import): one pass in memory, a few statements per batch.

Same rules as `customers.save_profile` (strongest identity wins, conflicting identities are
refused, new identities attach), applied to a whole batch so that rows repeating a customer
earlier in the batch merge into it without a round trip per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import CustomerCreated, CustomerSnapshot, CustomerUpdated, build_event
from crm_shared import add_many_to_outbox, new_id
from profile_service.db.models import PLUMBING, Consent, Customer, CustomerIdentity, CustomerTag
from profile_service.domain.contact import InvalidContact
from profile_service.domain.profiles import (
    Identity,
    IdentityKind,
    Profile,
    ProfileChanges,
    check_external_id_count,
    resolve_identity,
)
from profile_service.workflows._publishing import SOURCE, consent_state
from profile_service.workflows.customers import (
    external_id_counts,
    identity_owners,
    profile_of,
    write_profile,
)

_CHUNK = 500


@dataclass
class _Pending:
    """A customer touched by this batch: its profile so far and what changed."""

    profile: Profile
    created: bool
    created_at: datetime
    identities: list[Identity] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class RowOutcome:
    """What happened to one row: the customer it landed on, or why it was refused."""

    line: int
    customer_id: str | None
    created: bool = False
    refusal: str | None = None
    code: str = "ambiguous_identity"
    field: str | None = None


async def save_profiles(
    session: AsyncSession, rows: Sequence[tuple[int, ProfileChanges]], *, now: datetime
) -> list[RowOutcome]:
    """Create or update the customers of `rows`, in row order; return each row's outcome."""
    owners = await identity_owners(
        session, (identity for _, changes in rows for identity in changes.identities())
    )
    existing = await _load(session, set(owners.values()))
    external_ids_held = await external_id_counts(session, sorted(existing))
    pending: dict[str, _Pending] = {}
    new_identities: list[tuple[Identity, str]] = []
    outcomes: list[RowOutcome] = []
    for line, changes in rows:
        identities = changes.identities()
        resolution = resolve_identity(identities, owners)
        if resolution.is_ambiguous:
            kinds = ", ".join(identity.kind.value for identity, _ in resolution.conflicts)
            outcomes.append(
                RowOutcome(line, None, refusal=f"the {kinds} belong(s) to another customer")
            )
            continue
        customer_id = resolution.customer_id
        adding = sum(
            1 for i in identities if i not in owners and i.kind is IdentityKind.EXTERNAL_ID
        )
        held = external_ids_held.get(customer_id, 0) if customer_id else 0
        try:
            check_external_id_count(held, adding)
        except InvalidContact as error:
            outcomes.append(
                RowOutcome(line, None, refusal=error.reason, code=error.code, field=error.field)
            )
            continue
        created = customer_id is None
        if customer_id is None:
            customer_id = new_id()
            pending[customer_id] = _Pending(Profile(), True, now)
        elif customer_id not in pending:
            stored = existing[customer_id]
            pending[customer_id] = _Pending(profile_of(stored), False, stored.created_at)
        external_ids_held[customer_id] = held + adding
        entry = pending[customer_id]
        entry.profile, changed = entry.profile.apply(changes)
        entry.changed.update(changed)
        for identity in identities:
            if identity not in owners:
                owners[identity] = customer_id
                entry.identities.append(identity)
                new_identities.append((identity, customer_id))
        outcomes.append(RowOutcome(line, customer_id, created=created))
    await _persist(session, pending, existing, new_identities, now)
    return outcomes


async def _load(session: AsyncSession, customer_ids: set[str]) -> dict[str, Customer]:
    found: dict[str, Customer] = {}
    ordered = sorted(customer_ids)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        for customer in await session.scalars(select(Customer).where(Customer.id.in_(chunk))):
            found[customer.id] = customer
    return found


async def _persist(
    session: AsyncSession,
    pending: dict[str, _Pending],
    existing: dict[str, Customer],
    new_identities: list[tuple[Identity, str]],
    now: datetime,
) -> None:
    created = {cid: entry for cid, entry in pending.items() if entry.created}
    updated = {cid: entry for cid, entry in pending.items() if not entry.created and entry.changed}
    if created:
        rows = []
        for cid, entry in created.items():
            customer = Customer(id=cid, status="active", created_at=now, updated_at=now)
            write_profile(customer, entry.profile)
            rows.append({c.key: getattr(customer, c.key) for c in Customer.__table__.columns})
        await session.execute(insert(Customer), rows)
    for cid, entry in updated.items():
        write_profile(existing[cid], entry.profile)
        existing[cid].updated_at = now
    if new_identities:
        await session.execute(
            insert(CustomerIdentity),
            [
                {"kind": i.kind.value, "value": i.value, "customer_id": cid, "created_at": now}
                for i, cid in new_identities
            ],
        )
    retagged = [cid for cid in (*created, *updated) if "tags" in pending[cid].changed]
    await _replace_tags(session, {cid: pending[cid].profile.tags for cid in retagged})
    await session.flush()
    snapshots = await _snapshots(session, {**created, **updated}, now)
    events = [
        build_event(CustomerCreated(customer=snapshots[cid]), source=SOURCE, time=now)
        for cid in created
    ] + [
        build_event(
            CustomerUpdated(customer=snapshots[cid], changed_fields=sorted(entry.changed)),
            source=SOURCE,
            time=now,
        )
        for cid, entry in updated.items()
    ]
    await add_many_to_outbox(session, PLUMBING, events)


async def _replace_tags(session: AsyncSession, tags: dict[str, tuple[str, ...]]) -> None:
    ordered = sorted(tags)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        await session.execute(delete(CustomerTag).where(CustomerTag.customer_id.in_(chunk)))
    rows = [{"customer_id": cid, "tag": tag} for cid in ordered for tag in tags[cid]]
    if rows:
        await session.execute(insert(CustomerTag), rows)


async def _snapshots(
    session: AsyncSession, touched: dict[str, _Pending], now: datetime
) -> dict[str, CustomerSnapshot]:
    ids = sorted(touched)
    external: dict[str, list[str]] = {cid: [] for cid in ids}
    consents: dict[str, list[Consent]] = {cid: [] for cid in ids}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for cid, value in await session.execute(
            select(CustomerIdentity.customer_id, CustomerIdentity.value)
            .where(
                CustomerIdentity.customer_id.in_(chunk),
                CustomerIdentity.kind == IdentityKind.EXTERNAL_ID.value,
            )
            .order_by(CustomerIdentity.created_at, CustomerIdentity.value)
        ):
            external[cid].append(value)
        for consent in await session.scalars(select(Consent).where(Consent.customer_id.in_(chunk))):
            consents[consent.customer_id].append(consent)
    snapshots = {}
    for cid in ids:
        entry, profile = touched[cid], touched[cid].profile
        snapshots[cid] = CustomerSnapshot(
            customer_id=cid,
            external_ids=external[cid],
            email=profile.email,
            phone=profile.phone,
            first_name=profile.first_name,
            last_name=profile.last_name,
            time_zone=profile.time_zone,
            locale=profile.locale,
            tags=list(profile.tags),
            attributes=dict(profile.attributes),
            consents=[consent_state(row) for row in consents[cid]],
            created_at=entry.created_at,
            updated_at=now,
        )
    return snapshots
