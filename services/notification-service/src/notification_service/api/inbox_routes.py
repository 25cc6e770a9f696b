"""``/v1/customers/{customer_id}/inbox``: in-app messages, for the shop's frontends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from crm_shared import (
    ReadAccess,
    SessionDep,
    WriteAccess,
    decode_cursor,
    encode_cursor,
    problem_responses,
    utc_now,
)
from crm_shared.contracts import Category
from crm_shared.errors import NotFound, UnprocessableContent
from notification_service.api.schemas import InboxMessageView, InboxPage, InboxReadAll
from notification_service.db.models import InboxMessage
from notification_service.workflows import inbox

router = APIRouter(prefix="/v1/customers/{customer_id}/inbox", tags=["inbox"])


@router.get("", response_model=InboxPage, summary="A customer's inbox")
async def read_inbox(
    customer_id: str,
    session: SessionDep,
    _: ReadAccess,
    unread_only: bool = False,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> InboxPage:
    """Messages newest first, cursor-paginated, with the unread count of the whole inbox (for
    a badge). A customer with no messages, or unknown here, has an empty inbox."""
    before = None
    if cursor:
        position = decode_cursor(cursor).get("before")
        if isinstance(position, bool) or not isinstance(position, int):
            raise UnprocessableContent("cursor is not one this API issued", field="cursor")
        before = position
    rows = await inbox.inbox_messages(
        session, customer_id, unread_only=unread_only, before_id=before, limit=limit + 1
    )
    page = rows[:limit]
    return InboxPage(
        items=[_view(row) for row in page],
        next_cursor=encode_cursor({"before": page[-1].id}) if len(rows) > limit else None,
        unread_count=await inbox.unread_count(session, customer_id),
    )


@router.post(
    "/{message_id}/read",
    response_model=InboxMessageView,
    summary="Mark a message read",
    responses=problem_responses({404: "The customer has no message with this id"}),
)
async def mark_read(
    customer_id: str, message_id: int, session: SessionDep, _: WriteAccess
) -> InboxMessageView:
    """Marking it again changes nothing: the first reading's time stays. 404 when the
    message is not this customer's."""
    message = await inbox.mark_read(session, customer_id, message_id, utc_now())
    if message is None:
        raise NotFound(f"Customer {customer_id} has no message {message_id}.")
    return _view(message)


@router.post("/read-all", response_model=InboxReadAll, summary="Mark every message read")
async def mark_all_read(customer_id: str, session: SessionDep, _: WriteAccess) -> InboxReadAll:
    """Every unread message of the customer, at once."""
    marked = await inbox.mark_all_read(session, customer_id, utc_now())
    return InboxReadAll(marked=marked, unread_count=0)


def _view(row: InboxMessage) -> InboxMessageView:
    return InboxMessageView(
        message_id=row.id,
        notification_id=row.notification_id,
        title=row.title,
        body=row.body,
        category=Category(row.category),
        created_at=row.created_at,
        read_at=row.read_at,
    )
