"""The satisfaction component of the health index: survey answers, complaints, open tickets.

What the customer told the shop: the most recent NPS and CSAT answers (0-10, averaged when
both are known) over 10, neutral 0.5 without any answer (most customers never answer, so
silence is no evidence either way); minus a penalty per complaint in the last 90 days and per
support ticket still unresolved, floored at 0. Nothing here can raise it above the answers:
a complaint never counts in a customer's favour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
NEUTRAL: Final = 0.5
_ANSWERS: Final = ("latest_nps", "latest_csat")


def satisfaction_sub_score(
    values: Mapping[str, Floats], complaint_penalty: float, ticket_penalty: float
) -> Floats:
    """The 0-1 sub-score of every customer from the checked health input arrays."""
    answers = np.vstack([values[name] for name in _ANSWERS])
    known = np.isfinite(answers)
    count = known.sum(axis=0)
    total = np.where(known, answers, 0.0).sum(axis=0)
    base = np.where(count > 0, total / np.maximum(count, 1) / 10.0, NEUTRAL)
    complaints = np.nan_to_num(values["complaints_90d"], nan=0.0)
    tickets = np.nan_to_num(values["unresolved_tickets"], nan=0.0)
    penalty = complaint_penalty * complaints + ticket_penalty * tickets
    satisfied: Floats = np.clip(base - penalty, 0.0, 1.0)
    return satisfied


def answer_mean(inputs: Mapping[str, Floats], i: int) -> float:
    """Customer ``i``'s survey answers averaged (NaN when they never answered)."""
    return answer_mean_of(*(float(inputs[name][i]) for name in _ANSWERS))


def answer_mean_of(*answers: float) -> float:
    """The known (finite) answers averaged; NaN when none is known."""
    known = [value for value in answers if math.isfinite(value)]
    return sum(known) / len(known) if known else math.nan


def satisfaction_reason(
    inputs: Mapping[str, Floats], i: int, complaint_penalty: float, ticket_penalty: float
) -> str:
    """Why customer ``i`` has their satisfaction sub-score, in words."""
    return satisfaction_reason_of(
        float(inputs["latest_nps"][i]),
        float(inputs["latest_csat"][i]),
        float(np.nan_to_num(inputs["complaints_90d"][i])),
        float(np.nan_to_num(inputs["unresolved_tickets"][i])),
        complaint_penalty,
        ticket_penalty,
    )


def satisfaction_reason_of(
    nps: float,
    csat: float,
    complaints: float,
    tickets: float,
    complaint_penalty: float,
    ticket_penalty: float,
) -> str:
    """The reason from one customer's floats (answers NaN when unknown; complaints and
    tickets already 0 where unknown)."""
    parts = []
    if math.isfinite(nps):
        group = "promoter" if nps >= 9 else "detractor" if nps <= 6 else "passive"
        parts.append(f"last NPS answer {nps:.0f} of 10 ({group})")
    if math.isfinite(csat):
        parts.append(f"last CSAT answer {csat:.0f} of 10")
    if not parts:
        parts.append("no survey answer: counted as neutral")
    if complaints:
        lost = 100 * complaint_penalty * complaints
        parts.append(f"{complaints:.0f} complaint(s) in the last 90 days (-{lost:.0f} %)")
    if tickets:
        lost = 100 * ticket_penalty * tickets
        parts.append(f"{tickets:.0f} support ticket(s) unresolved (-{lost:.0f} %)")
    return "; ".join(parts)
