"""Activity and feedback intake over HTTP: accept each report once, publish it on crm.activities.

The report names the CRM customer in the path; an unknown, erased or merged customer is refused
as for any other write. The event leaves through the outbox in the same transaction as the
intake row, and a re-post of the same activity or feedback id answers with the first event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    ActivityFacts,
    ActivityRecorded,
    FeedbackFacts,
    FeedbackRecorded,
)
from crm_shared.errors import Conflict
from profile_service.db.models import IntakeActivity
from profile_service.domain.orders import fingerprint
from profile_service.workflows._publishing import publish
from profile_service.workflows.customers import load_customer


@dataclass(frozen=True)
class AcceptedReport:
    """The answer to an activity or feedback post: the event it became, and if it was a repeat."""

    event_id: str
    event_type: str
    report_id: str
    customer_id: str
    duplicate: bool


async def accept_report(
    session: AsyncSession,
    customer_id: str,
    facts: ActivityFacts | FeedbackFacts,
    *,
    now: datetime,
) -> AcceptedReport:
    """Publish ``facts`` about ``customer_id`` once; a repeat returns the first acceptance.

    A repeat with other content (or about another customer) is a conflict: reports are facts,
    so a correction is a new report with its own id.
    """
    payload: ActivityRecorded | FeedbackRecorded
    if isinstance(facts, FeedbackFacts):
        report_id = facts.feedback_id
        payload_type: type[ActivityRecorded | FeedbackRecorded] = FeedbackRecorded
    else:
        report_id = facts.activity_id
        payload_type = ActivityRecorded
    key = f"{payload_type.event_type}:{report_id}"
    digest = fingerprint({"customer_id": customer_id, **facts.model_dump(mode="json")})
    existing = await session.get(IntakeActivity, key)
    if existing is not None:
        if existing.fingerprint != digest:
            raise Conflict(
                f"{key} was already accepted with different content; a report is a fact, "
                "send a new one with its own id instead.",
            )
        return AcceptedReport(
            existing.event_id, existing.event_type, report_id, existing.customer_id, True
        )
    customer = await load_customer(session, customer_id)
    payload = payload_type(customer_id=customer.id, **facts.model_dump())
    event_id = await publish(session, payload, time=facts.occurred_at)
    session.add(
        IntakeActivity(
            intake_key=key,
            event_type=payload.event_type,
            event_id=event_id,
            customer_id=customer.id,
            fingerprint=digest,
            occurred_at=facts.occurred_at,
            received_at=now,
        )
    )
    await session.flush()
    return AcceptedReport(event_id, payload.event_type, report_id, customer.id, False)
