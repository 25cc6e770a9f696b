"""``/v1/customers``: create or attach, read, list, update, erase, export, 360 view."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request, Response, status
from fastapi.responses import JSONResponse

from crm_contracts import QueryTime
from crm_shared import (
    IDEMPOTENCY_HEADER,
    AdminAccess,
    AfterId,
    IdempotencyKeys,
    Page,
    PageLimit,
    ReadAccess,
    ReadCache,
    ServiceRuntime,
    SessionDep,
    StoredResponse,
    WriteAccess,
    decode_cursor,
    problem_responses,
    request_fingerprint,
    runtime_of,
    slice_page,
    utc_now,
)
from crm_shared.errors import UnprocessableContent
from profile_service.api._common import (
    CUSTOMER_PROBLEMS,
    IDENTITY_CONFLICT,
    customer_360_body,
    customer_out,
    profile_changes,
    to_customer_out,
)
from profile_service.api.schemas import (
    Customer360,
    CustomerIn,
    CustomerOut,
    CustomerPatch,
)
from profile_service.db.models import PLUMBING
from profile_service.domain.contact import InvalidContact, normalize_email, normalize_phone
from profile_service.settings import ProfileSettings
from profile_service.workflows import customer_view, gdpr
from profile_service.workflows.customers import (
    CustomerFilter,
    external_ids_of,
    list_customers,
    load_customer_with_external_ids,
    save_profile,
)

router = APIRouter(prefix="/v1/customers", tags=["customers"])
# The 360's path and media type, which the app's cached-read fast path answers too.
CUSTOMER_360_PATH = router.prefix + "/{customer_id}/360"
CUSTOMER_360_MEDIA_TYPE = "application/json"
_idempotency = IdempotencyKeys(PLUMBING)


def _settings(request: Request) -> ProfileSettings:
    settings: ProfileSettings = request.app.state.settings
    return settings


@router.post(
    "",
    response_model=CustomerOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer, or attach to the one its identities match",
    responses={
        200: {"description": "Matched an existing customer, which was updated"},
        **IDENTITY_CONFLICT,
    },
)
async def create_customer(
    body: CustomerIn,
    request: Request,
    session: SessionDep,
    caller: WriteAccess,
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER, max_length=255)] = None,
) -> Response:
    """A profile whose external id, email or phone matches a customer updates that customer."""
    raw = body.model_dump(exclude_unset=True)
    fingerprint = request_fingerprint("POST", request.url.path, raw)
    if idempotency_key:
        stored = await _idempotency.recall(
            session, owner=caller.name, key=idempotency_key, fingerprint=fingerprint
        )
        if stored is not None:
            return JSONResponse(stored.body, status_code=stored.status_code)
    changes = profile_changes(raw, _settings(request).default_phone_region)
    saved = await save_profile(session, changes, now=utc_now())
    out = (await customer_out(session, saved.customer)).model_dump(mode="json")
    code = status.HTTP_201_CREATED if saved.created else status.HTTP_200_OK
    if idempotency_key:
        await _idempotency.remember(
            session,
            owner=caller.name,
            key=idempotency_key,
            fingerprint=fingerprint,
            response=StoredResponse(code, out),
        )
    return JSONResponse(out, status_code=code, headers={"Location": f"{router.prefix}/{out['id']}"})


@router.get("", response_model=Page[CustomerOut], summary="List customers")
async def list_all(
    request: Request,
    session: SessionDep,
    _: ReadAccess,
    email: str | None = None,
    phone: str | None = None,
    external_id: str | None = None,
    tag: str | None = None,
    updated_since: QueryTime | None = None,
    created_before: QueryTime | None = None,
    cursor: str | None = None,
    limit: PageLimit = 50,
) -> Page[CustomerOut]:
    """Active customers, oldest first, filtered by identity, tag or time; cursor-paginated."""
    region = _settings(request).default_phone_region
    try:
        criteria = CustomerFilter(
            email=normalize_email(email) if email else None,
            phone=normalize_phone(phone, region) if phone else None,
            external_id=external_id,
            tag=tag.strip().lower() if tag else None,
            updated_since=updated_since,
            created_before=created_before,
        )
    except InvalidContact as error:
        raise UnprocessableContent(error.reason, field=error.field) from error
    position = decode_cursor(cursor, AfterId)
    rows = await list_customers(
        session, criteria, after_id=position.after if position else None, limit=limit + 1
    )
    page = slice_page(rows, limit, lambda customer: AfterId(after=customer.id))
    ids = await external_ids_of(session, [c.id for c in page.rows])
    return Page[CustomerOut](
        items=[to_customer_out(c, ids[c.id]) for c in page.rows], next_cursor=page.next_cursor
    )


@router.get(
    "/{customer_id}",
    response_model=CustomerOut,
    summary="Read a customer",
    responses=CUSTOMER_PROBLEMS,
)
async def read_customer(customer_id: str, session: SessionDep, _: ReadAccess) -> CustomerOut:
    """A merged customer answers 308 with the surviving customer's URL; an erased one 410."""
    return to_customer_out(*await load_customer_with_external_ids(session, customer_id))


@router.patch(
    "/{customer_id}",
    response_model=CustomerOut,
    summary="Change a customer's details",
    responses={**CUSTOMER_PROBLEMS, **IDENTITY_CONFLICT},
)
async def update_customer(
    customer_id: str, body: CustomerPatch, request: Request, session: SessionDep, _: WriteAccess
) -> CustomerOut:
    """Absent fields stay as they are; null clears a field. A new email or phone must be free."""
    changes = profile_changes(
        body.model_dump(exclude_unset=True), _settings(request).default_phone_region
    )
    saved = await save_profile(session, changes, now=utc_now(), customer_id=customer_id)
    return await customer_out(session, saved.customer)


@router.delete(
    "/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Erase a customer (GDPR)",
    responses=problem_responses(
        {404: "No customer with this id", 410: "The customer was already erased"}
    ),
)
async def erase_customer(customer_id: str, session: SessionDep, _: AdminAccess) -> Response:
    """Deletes personal data, keeps an anonymous tombstone, publishes `customer.erased`."""
    await gdpr.erase_customer(session, customer_id, now=utc_now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{customer_id}/export",
    summary="Export everything held about a customer (GDPR)",
    responses=CUSTOMER_PROBLEMS,
)
async def export_customer(customer_id: str, session: SessionDep, _: AdminAccess) -> dict[str, Any]:
    """Profile, identities, consents, merges, orders taken over HTTP, scores, stage, messages."""
    return await gdpr.export_customer(session, customer_id, now=utc_now())


@router.get(
    CUSTOMER_360_PATH.removeprefix(router.prefix),
    response_model=Customer360,
    summary="Customer 360 view",
    responses=CUSTOMER_PROBLEMS,
)
async def customer_360(customer_id: str, request: Request, _: ReadAccess) -> Response:
    """The profile with its latest scores, lifecycle stage, churn warning and recent messages."""
    # A body read since the last change to this customer's rows is served as it was (see
    # crm_shared.ReadCache); 404, 410 and redirects are never kept, they are read each time.
    cache: ReadCache = request.app.state.customer_360_cache
    body = cache.get(customer_id)
    if body is None:
        since = cache.generation()
        # No SessionDep: the 360 is one statement, run on a pooled connection of its own (see
        # stored_360), which saves the session, its transaction and the ORM's execution path.
        view = await customer_view.stored_360(
            runtime_of(request).engine,
            customer_id,
            recent=_settings(request).recent_notifications_in_360,
        )
        body = customer_360_body(view)
        cache.put(customer_id, body, since)
    # The body is assembled from stored JSON (see customer_360_body); `response_model` still
    # documents it, and returning a Response skips validating the assembled body once more.
    return Response(body, media_type=CUSTOMER_360_MEDIA_TYPE)


def customer_360_loader(app: FastAPI) -> Callable[[str], Awaitable[bytes | None]]:
    """What the app answers a 360 with before routing: the route's 200 body, None otherwise.

    Once the app runs, most 360s are answered by `crm_shared.serve_cached_route`, cached or
    read by this; the route answers the rest (its refusals: no key, 404, 410, 308).
    """
    settings: ProfileSettings = app.state.settings
    reads: customer_view.Customer360Reads | None = None

    async def load(customer_id: str) -> bytes | None:
        nonlocal reads
        if reads is None:  # the engine exists once the app runs
            runtime: ServiceRuntime = app.state.runtime
            reads = customer_view.Customer360Reads(
                runtime.engine, recent=settings.recent_notifications_in_360
            )
            app.state.customer_360_reads = reads  # its batch counts, for tests and probes
        view = await reads.active(customer_id)
        return None if view is None else customer_360_body(view)

    return load
