"""Creating, attaching to, updating and listing customers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import CustomerCreated, CustomerUpdated
from crm_shared import in_id_order, new_id
from crm_shared.errors import Conflict, Gone, NotFound, UnprocessableContent
from profile_service.db.models import Customer, CustomerIdentity, CustomerTag
from profile_service.domain.contact import InvalidContact
from profile_service.domain.profiles import (
    Identity,
    IdentityKind,
    IdentityResolution,
    Profile,
    ProfileChanges,
    check_external_id_count,
    contact_values,
    resolve_identity,
)
from profile_service.workflows._publishing import publish, snapshot


@dataclass(frozen=True)
class SavedCustomer:
    """A customer after a write, and whether the write created it."""

    customer: Customer
    created: bool
    changed_fields: tuple[str, ...]


async def identity_owners(
    session: AsyncSession, identities: Iterable[Identity]
) -> dict[Identity, str]:
    """Which customer owns each of these identities (absent ones are left out)."""
    wanted = list({(i.kind.value, i.value) for i in identities})
    if not wanted:
        return {}
    owners: dict[Identity, str] = {}
    # Chunked: a bulk import resolves thousands at a time and SQLite caps bound parameters.
    for start in range(0, len(wanted), 400):
        chunk = wanted[start : start + 400]
        rows = await session.execute(
            select(
                CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id
            ).where(tuple_(CustomerIdentity.kind, CustomerIdentity.value).in_(chunk))
        )
        for kind, value, customer_id in rows:
            owners[Identity(IdentityKind(kind), value)] = customer_id
    return owners


async def external_id_counts(session: AsyncSession, customer_ids: Sequence[str]) -> dict[str, int]:
    """How many external ids each of these customers holds (absent ones hold none)."""
    counts: dict[str, int] = {}
    for start in range(0, len(customer_ids), 400):
        chunk = customer_ids[start : start + 400]
        rows = await session.execute(
            select(CustomerIdentity.customer_id, func.count())
            .where(
                CustomerIdentity.customer_id.in_(chunk),
                CustomerIdentity.kind == IdentityKind.EXTERNAL_ID.value,
            )
            .group_by(CustomerIdentity.customer_id)
        )
        counts.update({customer_id: int(count) for customer_id, count in rows})
    return counts


async def load_customer(
    session: AsyncSession, customer_id: str, *, for_update: bool = False
) -> Customer:
    """An active customer, or 404 (unknown), 410 (erased) or a redirect hint (merged)."""
    query = select(Customer).where(Customer.id == customer_id)
    if for_update:
        query = query.with_for_update()
    return _active(await session.scalar(query), customer_id)


async def load_customer_with_external_ids(
    session: AsyncSession, customer_id: str
) -> tuple[Customer, list[str]]:
    """An active customer and its external ids, in one round trip (the hot read path)."""
    rows = (
        await session.execute(
            select(Customer, CustomerIdentity.value)
            .outerjoin(
                CustomerIdentity,
                (CustomerIdentity.customer_id == Customer.id)
                & (CustomerIdentity.kind == IdentityKind.EXTERNAL_ID.value),
            )
            .where(Customer.id == customer_id)
            .order_by(CustomerIdentity.created_at, CustomerIdentity.value)
        )
    ).all()
    customer = _active(rows[0][0] if rows else None, customer_id)
    return customer, [value for _, value in rows if value is not None]


def _active(customer: Customer | None, customer_id: str) -> Customer:
    if customer is None:
        raise NotFound(f"No customer with id {customer_id}.")
    ensure_active(customer_id, customer.status, customer.merged_into_id)
    return customer


def ensure_active(customer_id: str, status: str | None, merged_into_id: str | None) -> None:
    """404 when there is no such customer (`status` None), 410 when erased, 308 when merged."""
    if status is None:
        raise NotFound(f"No customer with id {customer_id}.")
    if status == "erased":
        raise Gone(f"Customer {customer_id} was erased.")
    if status == "merged":
        raise CustomerMoved(customer_id, merged_into_id or "")


class CustomerMoved(Conflict):
    """The customer was merged into another; clients should follow `merged_into`."""

    status, title, type_slug = 308, "Permanent redirect", "customer-merged"

    def __init__(self, customer_id: str, merged_into: str) -> None:
        super().__init__(
            f"Customer {customer_id} was merged into {merged_into}.", merged_into=merged_into
        )
        self.customer_id = customer_id
        self.merged_into = merged_into


def profile_of(customer: Customer) -> Profile:
    """The profile fields of a stored customer."""
    return Profile(
        external_id=customer.external_id,
        **contact_values(customer),
        attributes=dict(customer.attributes or {}),
        tags=tuple(customer.tags or ()),
    )


def write_profile(customer: Customer, profile: Profile) -> None:
    """Store `profile` in the customer's columns."""
    customer.external_id = profile.external_id
    for name, value in contact_values(profile).items():
        setattr(customer, name, value)
    customer.attributes = dict(profile.attributes)
    customer.tags = list(profile.tags)


def ambiguity_problem(resolution: IdentityResolution) -> Conflict:
    """A 409 saying which identities belong to which other customers."""
    matches = [
        {"identity": identity.kind.value, "customer_id": owner}
        for identity, owner in resolution.conflicts
    ]
    kinds = ", ".join(m["identity"] for m in matches)
    return Conflict(
        f"The {kinds} given belong(s) to another customer than {resolution.customer_id}; "
        "merge the customers first.",
        customer_id=resolution.customer_id,
        conflicts=matches,
    )


async def save_profile(
    session: AsyncSession,
    changes: ProfileChanges,
    *,
    now: datetime,
    customer_id: str | None = None,
    owners: dict[Identity, str] | None = None,
) -> SavedCustomer:
    """Create a customer, or attach the changes to the one its identities (or id) resolve to."""
    identities = changes.identities()
    if owners is None:
        owners = await identity_owners(session, identities)
    if customer_id is None:
        resolution = resolve_identity(identities, owners)
        if resolution.is_ambiguous:
            raise ambiguity_problem(resolution)
        customer_id = resolution.customer_id
    else:
        foreign = tuple(
            (i, owners[i]) for i in identities if owners.get(i, customer_id) != customer_id
        )
        if foreign:
            raise ambiguity_problem(IdentityResolution(customer_id, foreign))
    if customer_id is None:
        customer = await _create(session, changes, now=now)
        for identity in identities:
            owners[identity] = customer.id
        return SavedCustomer(customer, True, tuple(sorted(changes.provided)))
    customer = await load_customer(session, customer_id)
    profile, changed = profile_of(customer).apply(changes)
    new_identities = [i for i in identities if i not in owners]
    adding = sum(1 for i in new_identities if i.kind is IdentityKind.EXTERNAL_ID)
    if adding:
        held = await external_id_counts(session, [customer.id])
        try:
            check_external_id_count(held.get(customer.id, 0), adding)
        except InvalidContact as error:
            raise UnprocessableContent(error.reason, field=error.field) from error
    if changed:
        write_profile(customer, profile)
        customer.updated_at = now
        await sync_tags(session, customer)
    await _add_identities(session, customer.id, new_identities, now=now)
    if changed:
        await session.flush()
        await publish(
            session,
            CustomerUpdated(customer=await snapshot(session, customer), changed_fields=changed),
            time=now,
        )
    for identity in new_identities:
        owners[identity] = customer.id
    return SavedCustomer(customer, False, tuple(changed))


async def _create(session: AsyncSession, changes: ProfileChanges, *, now: datetime) -> Customer:
    profile, _ = Profile().apply(changes)
    customer = Customer(id=new_id(), status="active", created_at=now, updated_at=now)
    write_profile(customer, profile)
    session.add(customer)
    await session.flush()
    await _add_identities(session, customer.id, changes.identities(), now=now)
    await sync_tags(session, customer)
    await publish(session, CustomerCreated(customer=await snapshot(session, customer)), time=now)
    return customer


async def _add_identities(
    session: AsyncSession, customer_id: str, identities: Sequence[Identity], *, now: datetime
) -> None:
    if identities:
        await session.execute(
            insert(CustomerIdentity),
            [
                {
                    "kind": i.kind.value,
                    "value": i.value,
                    "customer_id": customer_id,
                    "created_at": now,
                }
                for i in identities
            ],
        )


async def sync_tags(session: AsyncSession, customer: Customer) -> None:
    await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == customer.id))
    if customer.tags:
        await session.execute(
            insert(CustomerTag), [{"customer_id": customer.id, "tag": t} for t in customer.tags]
        )


@dataclass(frozen=True)
class CustomerFilter:
    """What a customer list is narrowed to."""

    email: str | None = None
    phone: str | None = None
    external_id: str | None = None
    tag: str | None = None
    updated_since: datetime | None = None
    created_before: datetime | None = None


async def list_customers(
    session: AsyncSession, criteria: CustomerFilter, *, after_id: str | None, limit: int
) -> list[Customer]:
    """Active customers in id (= creation) order, after a cursor position."""
    query = select(Customer).where(Customer.status == "active")
    for kind, value in (
        (IdentityKind.EMAIL, criteria.email),
        (IdentityKind.PHONE, criteria.phone),
        (IdentityKind.EXTERNAL_ID, criteria.external_id),
    ):
        if value is not None:
            query = query.where(
                Customer.id.in_(
                    select(CustomerIdentity.customer_id).where(
                        CustomerIdentity.kind == kind.value, CustomerIdentity.value == value
                    )
                )
            )
    if criteria.tag is not None:
        query = query.where(
            Customer.id.in_(select(CustomerTag.customer_id).where(CustomerTag.tag == criteria.tag))
        )
    if criteria.updated_since is not None:
        query = query.where(Customer.updated_at >= criteria.updated_since)
    if criteria.created_before is not None:
        query = query.where(Customer.created_at < criteria.created_before)
    rows = await session.scalars(in_id_order(query, Customer.id, after_id).limit(limit))
    return list(rows)


async def external_ids_of(
    session: AsyncSession, customer_ids: Sequence[str]
) -> dict[str, list[str]]:
    """External ids per customer, for list and read responses."""
    found: dict[str, list[str]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return found
    rows = await session.execute(
        select(CustomerIdentity.customer_id, CustomerIdentity.value)
        .where(
            CustomerIdentity.customer_id.in_(customer_ids),
            or_(CustomerIdentity.kind == IdentityKind.EXTERNAL_ID.value),
        )
        .order_by(CustomerIdentity.created_at, CustomerIdentity.value)
    )
    for customer_id, value in rows:
        found[customer_id].append(value)
    return found
