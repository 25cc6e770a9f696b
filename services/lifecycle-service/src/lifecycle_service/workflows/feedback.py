"""The feedback reports a batch names: each stored once, complaints counted for the surge.

A report is known by its feedback id, so a shop sending one twice (two events, two event ids)
counts once. The complaints of the customers a batch names are loaded once, from the earliest
moment any complaint in the batch could look back to; the batch's own are added as applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import CloudEvent, FeedbackKind, FeedbackRecorded
from crm_shared import as_utc
from lifecycle_service.db.models import CustomerFeedback
from lifecycle_service.domain.stages import CustomerLifecycle

_CHUNK = 500


class BatchFeedback:
    """Feedback ids already stored, complaint times per customer, and the reports to store."""

    def __init__(self, known_ids: set[str], complaints: dict[str, list[datetime]]) -> None:
        self._known = known_ids
        self._complaints = complaints
        self._new: list[dict[str, Any]] = []

    @classmethod
    async def load(
        cls, session: AsyncSession, events: Sequence[CloudEvent], window: timedelta
    ) -> BatchFeedback:
        """What the feedback reports among ``events`` need from the database."""
        reports = [e.data for e in events if isinstance(e.data, FeedbackRecorded)]
        if not reports:
            return cls(set(), {})
        ids = sorted({report.feedback_id for report in reports})
        known: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            known.update(
                await session.scalars(
                    select(CustomerFeedback.feedback_id).where(
                        CustomerFeedback.feedback_id.in_(chunk)
                    )
                )
            )
        complaints: dict[str, list[datetime]] = {}
        complainers = sorted({r.customer_id for r in reports if r.kind is FeedbackKind.COMPLAINT})
        if complainers:
            since = min(as_utc(r.occurred_at) for r in reports) - window
            rows = await session.execute(
                select(CustomerFeedback.customer_id, CustomerFeedback.occurred_at).where(
                    CustomerFeedback.customer_id.in_(complainers),
                    CustomerFeedback.kind == FeedbackKind.COMPLAINT.value,
                    CustomerFeedback.occurred_at >= since,
                )
            )
            for customer_id, occurred_at in rows.all():
                complaints.setdefault(customer_id, []).append(as_utc(occurred_at))
        return cls(known, complaints)

    def record(self, report: FeedbackRecorded, state: CustomerLifecycle | None) -> bool:
        """Keep a report with the customer's stage and tier now; False when seen before."""
        if report.feedback_id in self._known:
            return False
        self._known.add(report.feedback_id)
        at = as_utc(report.occurred_at)
        if report.kind is FeedbackKind.COMPLAINT:
            self._complaints.setdefault(report.customer_id, []).append(at)
        self._new.append(
            {
                "feedback_id": report.feedback_id,
                "customer_id": report.customer_id,
                "kind": report.kind.value,
                "occurred_at": at,
                "survey": report.survey.value if report.survey else None,
                "score": report.score,
                "stage": state.stage.value if state is not None else None,
                "value_tier": state.value_tier.value if state and state.value_tier else None,
            }
        )
        return True

    def complaints_within(self, customer_id: str, since: datetime, until: datetime) -> int:
        """The customer's complaints with ``since < time <= until``."""
        return sum(1 for t in self._complaints.get(customer_id, ()) if since < t <= until)

    def move_customer(self, source: str, target: str) -> None:
        """After a merge, the merged customer's complaints count for the survivor."""
        moved = self._complaints.pop(source, [])
        self._complaints.setdefault(target, []).extend(moved)
        for row in self._new:
            if row["customer_id"] == source:
                row["customer_id"] = target

    def forget_customer(self, customer_id: str) -> None:
        """Erasure: nothing of the customer's feedback is kept."""
        self._complaints.pop(customer_id, None)
        self._new = [row for row in self._new if row["customer_id"] != customer_id]

    async def store(self, session: AsyncSession) -> None:
        """Insert the reports this batch recorded."""
        if self._new:
            await session.execute(insert(CustomerFeedback), self._new)


async def move_feedback(session: AsyncSession, source: str, target: str) -> None:
    """A merge: the merged customer's stored feedback belongs to the survivor."""
    await session.execute(
        update(CustomerFeedback)
        .where(CustomerFeedback.customer_id == source)
        .values(customer_id=target)
    )


async def forget_feedback(session: AsyncSession, customer_id: str) -> None:
    """An erasure: the customer's stored feedback goes."""
    await session.execute(
        delete(CustomerFeedback).where(CustomerFeedback.customer_id == customer_id)
    )
