"""Small translations shared by the routers: domain errors to problems, rows to bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared.errors import UnprocessableContent
from profile_service.api.schemas import CustomerOut
from profile_service.db.models import Customer
from profile_service.domain.contact import InvalidContact
from profile_service.domain.profiles import ProfileChanges, normalise_profile
from profile_service.workflows.customers import external_ids_of


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
