"""Simulated feedback for the demo: CDNOW has purchases only, so complaints, support tickets,
survey answers and return requests are drawn at random for the replay's customers.

Everything here is made up, and labelled so: feedback ids start with ``sim-``, the events'
source is ``/demo/simulated-feedback``, and the demo's report says so. The draws are seeded,
so every replay simulates the same feedback. Shares per customer (over the month before the
calibration end): 15% answer an NPS survey (scores skewed towards the top, as answers
usually are), 5% a CSAT survey, 3% complain (a third of them twice within two weeks: a
surge), 2% open a support ticket (70% resolved within a week), 1% ask to return an order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from crm_contracts import FeedbackKind, FeedbackRecorded, Survey

SOURCE: Final = "/demo/simulated-feedback"
SEED: Final = 1997
# Relative weights of NPS scores 0-10.
_NPS_WEIGHTS: Final = (3, 2, 3, 4, 5, 7, 8, 13, 17, 18, 20)


def simulated_feedback(
    customer_ids: Sequence[str], month_end: datetime, *, seed: int = SEED
) -> list[FeedbackRecorded]:
    """Feedback for some of ``customer_ids`` in the 30 days before ``month_end``, in time order."""
    draw = random.Random(seed)
    start = month_end.astimezone(UTC) - timedelta(days=30)
    reports: list[FeedbackRecorded] = []

    def report(customer_id: str, kind: FeedbackKind, days: float, **facts: object) -> None:
        reports.append(
            FeedbackRecorded.model_validate(
                {
                    "customer_id": customer_id,
                    "feedback_id": f"sim-{len(reports) + 1:06d}",
                    "kind": kind,
                    "occurred_at": start + timedelta(days=min(days, 29.9)),
                    **facts,
                }
            )
        )

    for customer_id in sorted(customer_ids):
        day = draw.uniform(0, 29)
        if draw.random() < 0.15:
            score = draw.choices(range(11), weights=_NPS_WEIGHTS)[0]
            report(customer_id, FeedbackKind.SURVEY_ANSWER, day, survey=Survey.NPS, score=score)
        if draw.random() < 0.05:
            score = draw.choices(range(11), weights=_NPS_WEIGHTS)[0]
            report(customer_id, FeedbackKind.SURVEY_ANSWER, day, survey=Survey.CSAT, score=score)
        if draw.random() < 0.03:
            report(customer_id, FeedbackKind.COMPLAINT, day, about="late_delivery")
            if draw.random() < 1 / 3:
                again = day + draw.uniform(1, 14)
                report(customer_id, FeedbackKind.COMPLAINT, again, about="damaged_item")
        if draw.random() < 0.02:
            ticket = f"sim-T-{customer_id}"
            report(customer_id, FeedbackKind.TICKET_OPENED, day, ticket_id=ticket)
            if draw.random() < 0.7:
                later = day + draw.uniform(0.1, 7)
                report(customer_id, FeedbackKind.TICKET_RESOLVED, later, ticket_id=ticket)
        if draw.random() < 0.01:
            report(customer_id, FeedbackKind.RETURN_REQUESTED, day)
    return sorted(reports, key=lambda r: (r.occurred_at, r.feedback_id))
