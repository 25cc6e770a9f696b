"""A customer's in-app inbox: the messages delivery put there, newest first, and reading them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.db.models import InboxMessage


async def inbox_messages(
    session: AsyncSession,
    customer_id: str,
    *,
    unread_only: bool,
    before_id: int | None,
    limit: int,
) -> list[InboxMessage]:
    """The customer's messages newest first, those older than ``before_id`` when given."""
    query = select(InboxMessage).where(InboxMessage.customer_id == customer_id)
    if unread_only:
        query = query.where(InboxMessage.read_at.is_(None))
    if before_id is not None:
        query = query.where(InboxMessage.id < before_id)
    query = query.order_by(InboxMessage.id.desc()).limit(limit)
    return list(await session.scalars(query))


async def unread_count(session: AsyncSession, customer_id: str) -> int:
    """How many of the customer's messages are unread."""
    count = await session.scalar(
        select(func.count())
        .select_from(InboxMessage)
        .where(InboxMessage.customer_id == customer_id, InboxMessage.read_at.is_(None))
    )
    return int(count or 0)


async def mark_read(
    session: AsyncSession, customer_id: str, message_id: int, now: datetime
) -> InboxMessage | None:
    """Mark one of the customer's messages read (the first reading's time stays); None when
    the customer has no such message."""
    await session.execute(
        update(InboxMessage)
        .where(
            InboxMessage.id == message_id,
            InboxMessage.customer_id == customer_id,
            InboxMessage.read_at.is_(None),
        )
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )
    return await session.scalar(
        select(InboxMessage)
        .where(InboxMessage.id == message_id, InboxMessage.customer_id == customer_id)
        .execution_options(populate_existing=True)
    )


async def mark_all_read(session: AsyncSession, customer_id: str, now: datetime) -> int:
    """Mark every unread message of the customer read; how many were unread."""
    result = await session.execute(
        update(InboxMessage)
        .where(InboxMessage.customer_id == customer_id, InboxMessage.read_at.is_(None))
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
