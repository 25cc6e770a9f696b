"""Unsubscribe links: the opt-out applies here at once and is forwarded to profile-service.

profile-service owns consent; once it records the opt-out it publishes ``consent.changed`` and
every service sees it. Until it confirms, the opt-out waits in ``pending_opt_outs`` and is
forwarded again, so a profile-service outage loses nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_contracts import ConsentState
from notification_service.db.models import PendingOptOut
from notification_service.domain.signing import UnsubscribeRequest
from notification_service.workflows.contacts import record_consent
from notification_service.workflows.message_context import CONSENT_CHANNEL

_logger = logging.getLogger("notification.opt_outs")
SOURCE = "unsubscribe-link"


async def record_opt_out(session: AsyncSession, request: UnsubscribeRequest, now: datetime) -> None:
    """Withdraw the consent here and queue it for profile-service."""
    channel = CONSENT_CHANNEL[request.channel]
    consent = ConsentState(
        channel=channel, purpose=request.purpose, granted=False, source=SOURCE, changed_at=now
    )
    await record_consent(session, request.customer_id, consent)
    session.add(
        PendingOptOut(
            customer_id=request.customer_id,
            channel=channel.value,
            purpose=request.purpose.value,
            changed_at=now,
            attempts=0,
        )
    )


async def forward_opt_outs(
    sessions: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    profile_url: str,
    api_key: str | None,
    limit: int = 100,
) -> int:
    """Send pending opt-outs to profile-service; how many it confirmed."""
    if api_key is None:
        return 0
    confirmed = 0
    async with sessions() as session, session.begin():
        query = select(PendingOptOut).order_by(PendingOptOut.id).limit(limit)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for pending in await session.scalars(query):
            url = (
                f"{profile_url.rstrip('/')}/v1/customers/{pending.customer_id}"
                f"/consents/{pending.channel}/{pending.purpose}"
            )
            body = {
                "granted": False,
                "source": SOURCE,
                "changed_at": pending.changed_at.isoformat(),
            }
            try:
                response = await client.put(url, json=body, headers={"X-API-Key": api_key})
            except httpx.HTTPError as error:
                pending.attempts += 1
                pending.last_error = str(error)[:500]
                continue
            # 404: the customer is gone (erased or merged away): nothing left to opt out.
            if response.status_code < 300 or response.status_code == 404:
                await session.delete(pending)
                confirmed += 1
            else:
                pending.attempts += 1
                pending.last_error = f"{response.status_code}: {response.text[:400]}"
                _logger.warning(
                    "profile-service refused an opt-out",
                    extra={"status": response.status_code, "customer_id": pending.customer_id},
                )
    return confirmed
