"""Reading what customers told the shop into the health index's satisfaction inputs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import FeedbackKind, Survey
from scoring_service.db.models import Feedback
from scoring_service.domain.purchase_history import Floats

_CHUNK: Final = 500
_WHOLE_BASE: Final = 20_000
COMPLAINT_WINDOW: Final = timedelta(days=90)
# An answer older than a year says little about the relationship today.
ANSWER_WINDOW: Final = timedelta(days=365)


async def feedback_inputs(
    session: AsyncSession,
    customer_ids: Sequence[str],
    as_of: datetime,
    *,
    whole_base: int = _WHOLE_BASE,
) -> dict[str, Floats]:
    """``latest_nps``, ``latest_csat``, ``complaints_90d`` and ``unresolved_tickets`` as of
    ``as_of``, aligned with ``customer_ids`` (NaN where no answer is known).

    Feedback after ``as_of`` is left out, so a replay scores as it would have at the time.
    A ticket is unresolved when it was opened and not yet resolved at ``as_of``. Beyond
    ``whole_base`` customers the table is read in one pass instead of by lists of ids.
    """
    index = {customer_id: i for i, customer_id in enumerate(customer_ids)}
    size = len(customer_ids)
    nps = np.full(size, np.nan)
    csat = np.full(size, np.nan)
    complaints = np.zeros(size)
    opened: dict[str, set[str]] = {}
    resolved: dict[str, set[str]] = {}
    wanted = sorted(index)
    # Scoring (nearly) everyone: one pass over the table beats thousands of IN lists.
    chunks = (
        [None]
        if size > _WHOLE_BASE
        else [wanted[start : start + _CHUNK] for start in range(0, len(wanted), _CHUNK)]
    )
    for chunk in chunks:
        customers = () if chunk is None else (Feedback.customer_id.in_(chunk),)
        rows = await session.execute(
            select(
                Feedback.customer_id,
                Feedback.kind,
                Feedback.occurred_at,
                Feedback.survey,
                Feedback.score,
                Feedback.ticket_id,
            )
            .where(*customers, Feedback.occurred_at <= as_of)
            .order_by(Feedback.occurred_at, Feedback.feedback_id)
        )
        for customer_id, kind, occurred_at, survey, score, ticket_id in rows.all():
            i = index.get(customer_id)
            if i is None:  # feedback of a customer without purchases: nobody to score
                continue
            if kind == FeedbackKind.SURVEY_ANSWER and occurred_at > as_of - ANSWER_WINDOW:
                # Ordered by time: the last answer read is the most recent.
                (nps if survey == Survey.NPS else csat)[i] = score
            elif kind == FeedbackKind.COMPLAINT and occurred_at > as_of - COMPLAINT_WINDOW:
                complaints[i] += 1
            elif kind == FeedbackKind.TICKET_OPENED and ticket_id is not None:
                opened.setdefault(customer_id, set()).add(ticket_id)
            elif kind == FeedbackKind.TICKET_RESOLVED and ticket_id is not None:
                resolved.setdefault(customer_id, set()).add(ticket_id)
    tickets = np.zeros(size)
    for customer_id, ticket_ids in opened.items():
        tickets[index[customer_id]] = len(ticket_ids - resolved.get(customer_id, set()))
    return {
        "latest_nps": nps,
        "latest_csat": csat,
        "complaints_90d": complaints,
        "unresolved_tickets": tickets,
    }
