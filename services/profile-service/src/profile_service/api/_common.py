"""Small translations shared by the routers: domain errors to problems, rows to bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import problem_responses
from crm_shared.errors import UnprocessableContent
from profile_service.api.schemas import ConsentOut, CustomerOut, ProfilingOut
from profile_service.db.models import Customer
from profile_service.domain.consent import (
    PROFILING_WITHHOLDS,
    ConsentDecision,
    newest_profiling,
    objects_to_profiling,
)
from profile_service.domain.contact import InvalidContact
from profile_service.domain.profiles import ProfileChanges, normalise_profile
from profile_service.workflows.customer_view import StoredCustomer360
from profile_service.workflows.customers import external_ids_of

# What every operation on one customer may answer besides its success.
CUSTOMER_PROBLEMS = problem_responses(
    {
        308: "The customer was merged into another: `merged_into` (and Location) names it",
        404: "No customer with this id",
        410: "The customer was erased",
    }
)
IDENTITY_CONFLICT = problem_responses(
    {409: "An external id, email or phone given belongs to another customer: merge first"}
)


def profile_changes(raw: Mapping[str, Any], region: str | None) -> ProfileChanges:
    """Normalise a request's profile fields, or answer 422 naming the field."""
    try:
        return normalise_profile(raw, default_phone_region=region)
    except InvalidContact as error:
        raise UnprocessableContent(error.reason, field=error.field) from error


def to_customer_out(customer: Customer, external_ids: list[str]) -> CustomerOut:
    """The response body of a customer."""
    return CustomerOut(
        id=customer.id,
        external_ids=external_ids,
        email=customer.email,
        phone=customer.phone,
        first_name=customer.first_name,
        last_name=customer.last_name,
        time_zone=customer.time_zone,
        locale=customer.locale,
        attributes=dict(customer.attributes or {}),
        tags=list(customer.tags or []),
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


async def customer_out(session: AsyncSession, customer: Customer) -> CustomerOut:
    """The response body of one customer, with its external ids."""
    ids = await external_ids_of(session, [customer.id])
    return to_customer_out(customer, ids[customer.id])


_CONSENTS = TypeAdapter(list[ConsentOut])


def customer_360_body(view: StoredCustomer360) -> bytes:
    """The JSON body of ``Customer360``: its fields in their declared order.

    Profile and consents are validated and serialised like any response model; the stored
    documents are spliced in as the JSON text the database holds (see `StoredCustomer360`).
    """
    customer = view.customer
    profile = CustomerOut(
        id=customer["id"],
        external_ids=view.external_ids,
        email=customer["email"],
        phone=customer["phone"],
        first_name=customer["first_name"],
        last_name=customer["last_name"],
        time_zone=customer["time_zone"],
        locale=customer["locale"],
        attributes=dict(customer["attributes"] or {}),
        tags=list(customer["tags"] or []),
        created_at=customer["created_at"],
        updated_at=customer["updated_at"],
    )
    consents = [_consent_out(row) for row in view.consents]
    profiling = _profiling_out(consents)
    # While the customer objects, documents still in flight when they objected are not shown.
    withheld = profiling.objected
    return b"".join(
        (
            b'{"profile":',
            profile.__pydantic_serializer__.to_json(profile),
            b',"consents":',
            _CONSENTS.dump_json(consents),
            b',"profiling":',
            profiling.__pydantic_serializer__.to_json(profiling),
            b',"scores":',
            b"null" if withheld else _json_or_null(view.scores_json),
            b',"lifecycle":',
            _json_or_null(view.lifecycle_json),
            b',"churn_warning":',
            b"null" if withheld else _json_or_null(view.churn_warning_json),
            b',"recent_notifications":',
            view.recent_notifications_json.encode(),
            b"}",
        )
    )


def _profiling_out(consents: list[ConsentOut]) -> ProfilingOut:
    decisions = [
        ConsentDecision(c.channel, c.purpose, c.granted, c.source, c.changed_at) for c in consents
    ]
    if not objects_to_profiling(decisions):
        return ProfilingOut(objected=False)
    newest = newest_profiling(decisions)
    assert newest is not None
    return ProfilingOut(objected=True, since=newest.changed_at, withheld=list(PROFILING_WITHHOLDS))


def _consent_out(row: RowMapping) -> ConsentOut:
    return ConsentOut(
        channel=row["channel"],
        purpose=row["purpose"],
        granted=row["granted"],
        source=row["source"],
        changed_at=row["changed_at"],
    )


def _json_or_null(document: str | None) -> bytes:
    return b"null" if document is None else document.encode()
