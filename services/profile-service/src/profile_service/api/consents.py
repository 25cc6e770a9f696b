"""``/v1/customers/{id}/consents`` and ``/merge``: consent decisions and identity merge."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, status

from crm_contracts import Channel, Purpose
from crm_shared import ReadAccess, SessionDep, WriteAccess, problem_responses, utc_now
from profile_service.api import SettingsDep
from profile_service.api._common import CUSTOMER_PROBLEMS
from profile_service.api.schemas import ConsentIn, ConsentOut, MergeIn, MergeOut
from profile_service.domain.consent import ConsentDecision
from profile_service.workflows._publishing import consent_state
from profile_service.workflows.consent import consents_of, record_consent
from profile_service.workflows.customers import load_customer
from profile_service.workflows.merging import merge_customers, merges_of

router = APIRouter(prefix="/v1/customers/{customer_id}", tags=["consent and merge"])


@router.get(
    "/consents",
    response_model=list[ConsentOut],
    summary="A customer's consents",
    responses=CUSTOMER_PROBLEMS,
)
async def list_consents(customer_id: str, session: SessionDep, _: ReadAccess) -> list[ConsentOut]:
    """Every channel and purpose the customer decided on; absent means never asked."""
    await load_customer(session, customer_id)
    return [
        ConsentOut(**consent_state(row).model_dump())
        for row in await consents_of(session, customer_id)
    ]


@router.put(
    "/consents/{channel}/{purpose}",
    response_model=ConsentOut,
    summary="Record a consent decision",
    responses=CUSTOMER_PROBLEMS,
)
async def put_consent(
    customer_id: str,
    channel: Channel,
    purpose: Purpose,
    body: ConsentIn,
    settings: SettingsDep,
    session: SessionDep,
    _: WriteAccess,
) -> ConsentOut:
    """The newest decision wins; an older one sent late is kept out. Publishes `consent.changed`.

    A `changed_at` in the future (beyond the few minutes of clock skew allowed) is refused.
    """
    now = utc_now()
    skew = timedelta(seconds=settings.max_clock_skew_seconds)
    decision = ConsentDecision(channel, purpose, body.granted, body.source, body.changed_at or now)
    row, _changed = await record_consent(session, customer_id, decision, now=now, max_skew=skew)
    return ConsentOut(**consent_state(row).model_dump())


@router.post(
    "/merge",
    response_model=MergeOut,
    status_code=status.HTTP_201_CREATED,
    summary="Merge another customer into this one",
    responses={
        **CUSTOMER_PROBLEMS,
        **problem_responses(
            {409: "`merged_customer_id` was merged before, into the customer `merged_into` names"}
        ),
    },
)
async def merge(
    customer_id: str, body: MergeIn, session: SessionDep, caller: WriteAccess
) -> MergeOut:
    """Moves identities, fills gaps, keeps the newest consents; publishes `customer.merged`."""
    audit = await merge_customers(
        session,
        surviving_id=customer_id,
        merged_id=body.merged_customer_id,
        requested_by=caller.name,
        reason=body.reason,
        now=utc_now(),
    )
    return MergeOut.model_validate(audit, from_attributes=True)


@router.get("/merges", response_model=list[MergeOut], summary="Merge audit of a customer")
async def list_merges(customer_id: str, session: SessionDep, _: ReadAccess) -> list[MergeOut]:
    """Merges this customer took part in, oldest first."""
    return [
        MergeOut.model_validate(m, from_attributes=True)
        for m in await merges_of(session, customer_id)
    ]
