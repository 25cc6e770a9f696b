"""``/v1/notifications``: the delivery log, and send-now to try a template on one customer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from crm_contracts import NotificationChannel, QueryTime
from crm_shared import (
    IDEMPOTENCY_HEADER,
    AdminAccess,
    CursorPosition,
    CursorText,
    Page,
    PageLimit,
    ReadAccess,
    SessionDep,
    TimeWindow,
    decode_cursor,
    page_of,
    problem_responses,
    time_window,
    utc_now,
)
from crm_shared.errors import must_exist
from crm_shared.rule_documents import InvalidRuleDocument
from notification_service.api.schemas import (
    NotificationStatus,
    NotificationView,
    OutcomeCountView,
    SendNowRequest,
)
from notification_service.db.models import Notification
from notification_service.workflows import delivery_log
from notification_service.workflows.send_now import SendNow, send_now

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


class NotificationPosition(CursorPosition):
    """Where a page of the delivery log (newest first) ended."""

    created_at: QueryTime
    id: CursorText


@router.get("", response_model=Page[NotificationView], summary="The delivery log")
async def list_notifications(
    session: SessionDep,
    _: ReadAccess,
    customer_id: str | None = None,
    rule_id: str | None = None,
    channel: Annotated[
        NotificationChannel | None, Query(description="The channel chosen (set once decided).")
    ] = None,
    status_filter: Annotated[NotificationStatus | None, Query(alias="status")] = None,
    created_from: Annotated[
        QueryTime | None, Query(description="Inclusive; a time without offset is UTC.")
    ] = None,
    created_to: Annotated[
        QueryTime | None, Query(description="Exclusive; a time without offset is UTC.")
    ] = None,
    cursor: str | None = None,
    limit: PageLimit = 50,
) -> Page[NotificationView]:
    """Every message decided, newest first: queued, sent, failed or suppressed (with the
    reason), filtered by customer, rule, channel, status or creation time; cursor-paginated."""
    position = decode_cursor(cursor, NotificationPosition)
    criteria = delivery_log.NotificationFilter(
        customer_id=customer_id,
        rule_id=rule_id,
        channel=channel.value if channel is not None else None,
        status=status_filter,
        created=TimeWindow(created_from, created_to),
    )
    rows = await delivery_log.list_notifications(
        session,
        criteria,
        after=(position.created_at, position.id) if position else None,
        limit=limit + 1,
    )
    return page_of(
        rows,
        limit,
        lambda row: NotificationPosition(created_at=row.created_at, id=row.notification_id),
        _view,
    )


@router.get(
    "/outcomes",
    response_model=list[OutcomeCountView],
    summary="Messages per rule, status and suppression reason",
)
async def notification_outcomes(
    session: SessionDep,
    _: ReadAccess,
    created_from: Annotated[
        QueryTime | None, Query(description="Inclusive; a time without offset is UTC.")
    ] = None,
    created_to: Annotated[
        QueryTime | None, Query(description="Exclusive; a time without offset is UTC.")
    ] = None,
) -> list[OutcomeCountView]:
    """How many messages each rule queued, sent, failed or suppressed (per reason), created
    in the window (default: all time); what a playbook editor weighs a rule by."""
    created = time_window(
        created_from, created_to, start_name="created_from", end_name="created_to"
    )
    counts = await delivery_log.outcome_counts(session, created)
    return [OutcomeCountView.model_validate(count, from_attributes=True) for count in counts]


@router.get(
    "/{notification_id}",
    response_model=NotificationView,
    summary="A notification",
    responses=problem_responses({404: "No notification with this id"}),
)
async def read_notification(
    notification_id: str, session: SessionDep, _: ReadAccess
) -> NotificationView:
    """One message and what became of it."""
    row = must_exist(
        await delivery_log.notification_by_id(session, notification_id),
        f"No notification {notification_id!r}.",
    )
    return _view(row)


@router.post(
    "/send",
    response_model=NotificationView,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a template to one customer now",
    responses=problem_responses({404: "notification-service knows no such customer"}),
)
async def send_notification_now(
    body: SendNowRequest,
    response: Response,
    session: SessionDep,
    caller: AdminAccess,
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER, max_length=255)] = None,
) -> NotificationView:
    """Queues the message due now, without a rule; the delivery loop sends it within a
    moment, after the same checks as any message: consent, quiet hours and, for marketing,
    the cap (follow it in the log). 404 for a customer unknown here; 422 when the template
    has no text for a channel. A retry with the same ``Idempotency-Key`` sends nothing more
    and answers with the message the first request queued."""
    request = SendNow(
        customer_id=body.customer_id,
        template_id=body.template_id,
        channels=body.channels_to_try,
        category=body.category,
        requested_by=caller.name,
        idempotency_key=idempotency_key,
    )
    try:
        queued = await send_now(session, request, utc_now())
    except InvalidRuleDocument as invalid:
        raise invalid.as_problem("This message cannot be sent") from invalid
    response.headers["Location"] = f"{router.prefix}/{queued.notification_id}"
    return _view(queued)


def _view(row: Notification) -> NotificationView:
    return NotificationView(
        notification_id=row.notification_id,
        customer_id=row.customer_id,
        rule_id=row.rule_id,
        template_id=row.template_id,
        channels=[NotificationChannel(channel) for channel in row.channels],
        channel=NotificationChannel(row.channel) if row.channel else None,
        category=row.category,
        priority=row.priority,
        status=row.status,
        reason=row.reason,
        detail=row.detail,
        trigger_event_id=row.trigger_event_id,
        trigger_type=row.trigger_type,
        trigger_at=row.trigger_at,
        assignment=row.assignment,
        created_at=row.created_at,
        intended_at=row.intended_at,
        due_at=row.due_at,
        decided_at=row.decided_at,
        finished_at=row.finished_at,
        attempts=row.attempts,
        recipient=row.recipient,
        subject=row.subject,
        provider_id=row.provider_id,
    )
