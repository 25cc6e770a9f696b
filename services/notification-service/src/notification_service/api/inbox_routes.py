"""``/v1/customers/{customer_id}/inbox``: in-app messages, for the shop's frontends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from crm_contracts import Category, PositiveInt64
from crm_shared import (
    CursorPosition,
    ReadAccess,
    SessionDep,
    WriteAccess,
    decode_cursor,
    problem_responses,
    slice_page,
    utc_now,
)
from crm_shared.errors import must_exist
from notification_service.api.schemas import InboxMessageView, InboxPage, InboxReadAll
from notification_service.db.models import InboxMessage
from notification_service.workflows import inbox

router = APIRouter(prefix="/v1/customers/{customer_id}/inbox", tags=["inbox"])


class InboxPosition(CursorPosition):
    """Where a page of an inbox (newest first) ended: the last message id shown."""

    before: PositiveInt64


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
    position = decode_cursor(cursor, InboxPosition)
    rows = await inbox.inbox_messages(
        session,
        customer_id,
        unread_only=unread_only,
        before_id=position.before if position else None,
        limit=limit + 1,
    )
    page = slice_page(rows, limit, lambda row: InboxPosition(before=row.id))
    return InboxPage(
        items=[_view(row) for row in page.rows],
        next_cursor=page.next_cursor,
        unread_count=await inbox.unread_count(session, customer_id),
    )


@router.post(
    "/{message_id}/read",
    response_model=InboxMessageView,
    summary="Mark a message read",
    responses=problem_responses({404: "The customer has no message with this id"}),
)
async def mark_read(
    customer_id: str, message_id: PositiveInt64, session: SessionDep, _: WriteAccess
) -> InboxMessageView:
    """Marking it again changes nothing: the first reading's time stays. 404 when the
    message is not this customer's."""
    message = must_exist(
        await inbox.mark_read(session, customer_id, message_id, utc_now()),
        f"Customer {customer_id} has no message {message_id}.",
    )
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
