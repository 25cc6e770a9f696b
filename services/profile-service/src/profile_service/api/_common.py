"""Small translations shared by the routers: domain errors to problems, rows to bodies."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Channel, Purpose
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
from profile_service.domain.profiles import ProfileChanges, contact_values, normalise_profile
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
        **contact_values(customer),
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


@dataclass(frozen=True)
class _Parts:
    """A 360 being written: the stored view and its profiling state, worked out once."""

    view: StoredCustomer360
    profiling: ProfilingOut


Section = Callable[[_Parts], bytes]


def customer_360_body(view: StoredCustomer360) -> bytes:
    """The JSON body of ``Customer360``: its fields in their declared order.

    Profile and consents are serialised like any response model, but built with
    ``model_construct``: their values come from columns that only ever held validated
    profiles and consents, so validating them again on every read would only cost time. The
    stored documents are spliced in as the JSON text the database holds (see
    `StoredCustomer360`). A new field is one more entry in `CUSTOMER_360_SECTIONS` (a test
    checks they follow `Customer360`'s fields).
    """
    given = _Parts(view, _profiling_out(view))
    parts = [b"{"]
    for name, section in CUSTOMER_360_SECTIONS:
        parts += (b'"', name.encode(), b'":', section(given), b",")
    parts[-1] = b"}"
    return b"".join(parts)


def _profile_json(parts: _Parts) -> bytes:
    view = parts.view
    customer = view.customer
    profile = CustomerOut.model_construct(
        id=customer["id"],
        external_ids=view.external_ids,
        email=customer["email"],
        phone=customer["phone"],
        first_name=customer["first_name"],
        last_name=customer["last_name"],
        time_zone=customer["time_zone"],
        locale=customer["locale"],
        attributes=_document(customer["attributes"], {}),
        tags=_document(customer["tags"], []),
        created_at=customer["created_at"],
        updated_at=customer["updated_at"],
    )
    return profile.__pydantic_serializer__.to_json(profile)


def _consents_json(parts: _Parts) -> bytes:
    return _CONSENTS.dump_json([_consent_out(row) for row in parts.view.consents])


def _consent_out(row: Mapping[str, Any]) -> ConsentOut:
    return ConsentOut.model_construct(
        channel=Channel(row["channel"]),
        purpose=Purpose(row["purpose"]),
        granted=row["granted"],
        source=row["source"],
        changed_at=row["changed_at"],
    )


def _profiling_out(view: StoredCustomer360) -> ProfilingOut:
    decisions = [
        ConsentDecision(
            Channel(row["channel"]),
            Purpose(row["purpose"]),
            row["granted"],
            row["source"],
            row["changed_at"],
        )
        for row in view.consents
    ]
    if not objects_to_profiling(decisions):
        return ProfilingOut(objected=False)
    newest = newest_profiling(decisions)
    assert newest is not None
    return ProfilingOut(objected=True, since=newest.changed_at, withheld=list(PROFILING_WITHHOLDS))


def _profiling_json(parts: _Parts) -> bytes:
    return parts.profiling.__pydantic_serializer__.to_json(parts.profiling)


def _unless_objecting(document: Callable[[StoredCustomer360], str | None]) -> Section:
    # While the customer objects, documents still in flight when they objected are not shown.
    def section(parts: _Parts) -> bytes:
        return b"null" if parts.profiling.objected else _json_or_null(document(parts.view))

    return section


def _document(text: str | None, empty: Any) -> Any:
    # attributes and tags are stored as JSON; NULL reads as empty, as in `to_customer_out`.
    return empty if text is None else json.loads(text) or empty


def _json_or_null(document: str | None) -> bytes:
    return b"null" if document is None else document.encode()


CUSTOMER_360_SECTIONS: tuple[tuple[str, Section], ...] = (
    ("profile", _profile_json),
    ("consents", _consents_json),
    ("profiling", _profiling_json),
    ("scores", _unless_objecting(lambda view: view.scores_json)),
    ("lifecycle", lambda parts: _json_or_null(parts.view.lifecycle_json)),
    ("churn_warning", _unless_objecting(lambda view: view.churn_warning_json)),
    ("recent_notifications", lambda parts: parts.view.recent_notifications_json.encode()),
)
