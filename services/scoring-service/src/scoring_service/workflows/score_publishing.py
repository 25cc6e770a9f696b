"""Storing a score table and publishing what changed: `score.updated`, `segment.changed`."""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    MAX_MONEY_AMOUNT,
    Money,
    ScoreUpdated,
    Topic,
)
from crm_shared import add_encoded_to_outbox
from scoring_service.db.models import PLUMBING
from scoring_service.domain.explanations import packed_explanations
from scoring_service.domain.models import FittedModels
from scoring_service.domain.score_changes import ScoreState, changed_since
from scoring_service.domain.scoring import ScoreTable, changed_beyond_tolerance
from scoring_service.workflows.score_documents import (
    encoded_score_event,
    encoded_segment_event,
    score_texts,
)
from scoring_service.workflows.score_rows import (
    SEGMENT_DIMENSIONS,
    StoredScore,
    keep_states,
    stored_scores,
    write_scores,
)

SOURCE = "/crm/scoring-service"
_CHUNK = 10_000
_SCORES_TOPIC = str(Topic.SCORES)  # score.updated and segment.changed alike


# The contract bounds every amount below a quadrillion (each order below a trillion), so only
# a customer of a thousand maximal orders reaches it; such a figure is published at the largest
# amount the contract carries rather than failing the whole fit.
_LARGEST_AMOUNT = MAX_MONEY_AMOUNT - Decimal("0.01")


def _money(value: float, currency: str) -> Money:
    amount = Decimal(f"{value:.2f}")
    if abs(amount) > _LARGEST_AMOUNT:
        amount = _LARGEST_AMOUNT.copy_sign(amount)
    return Money(amount=amount, currency=currency)


def _finite(value: float, digits: int = 6) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, digits)


def score_payload(
    table: ScoreTable, i: int, customer_id: str, *, version: str, as_of: datetime, currency: str
) -> ScoreUpdated:
    """The `score.updated` payload of customer `i` of the table."""
    h, p = table.histories, table.predicted
    clv = _finite(float(p.predicted_clv[i]), 2)
    average = float(h.average_order_value[i])
    return ScoreUpdated(
        customer_id=customer_id,
        as_of=as_of,
        model_version=version,
        recency_score=int(table.recency_score[i]),
        frequency_score=int(table.frequency_score[i]),
        monetary_score=int(table.monetary_score[i]),
        rfm_segment=str(table.rfm_segment[i]),
        rfm_segment_caveat=table.rfm_caveat,
        order_count=int(h.order_count[i]),
        first_purchase_at=_day_start(int(h.first_day[i])),
        last_purchase_at=_day_start(int(h.last_day[i])),
        total_spend=_money(float(h.total_spend[i]), currency),
        spend_12m=_money(float(h.spend_12m[i]), currency),
        average_order_value=_money(average, currency),
        p_alive=_finite(float(p.p_alive[i])),
        expected_purchases_30d=_finite(float(p.expected_purchases_30d[i])),
        expected_purchases_90d=_finite(float(p.expected_purchases_90d[i])),
        expected_purchases_365d=_finite(float(p.expected_purchases_365d[i])),
        churn_risk=_finite(float(p.churn_risk[i])),
        expected_interpurchase_days=_finite(float(p.expected_interpurchase_days[i]), 2),
        predicted_clv_12m=_money(clv, currency) if clv is not None else None,
        historic_clv=_money(float(h.total_spend[i]), currency),
        health_index=_finite(float(table.health.score[i]), 2),
        value_tier=str(table.value.tier[i]),
        grade=str(table.value.grade[i]),
        cluster=str(table.cluster[i]) or None,
    )


def _day_start(day: int) -> datetime:
    return datetime.fromtimestamp(day * 86_400, tz=UTC)


@dataclass
class _Chunk:
    """What one chunk of a re-score writes: score rows, outbox rows, states of kept rows."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    outbox: list[tuple[str, str, str, str]] = field(default_factory=list)
    kept: list[tuple[str, ScoreState]] = field(default_factory=list)
    none_stored: bool = False  # none of the chunk's customers had a score


async def store_scores(
    session: AsyncSession,
    table: ScoreTable,
    customer_ids: Sequence[str],
    models: FittedModels,
    *,
    version: str,
    as_of: datetime,
    currency: str,
    tolerance: float,
) -> int:
    """Upsert every customer's scores; publish for those that changed. Returns how many did.

    Each customer's document is compared with the stored score's change state (a digest and
    a few figures, not the stored payload) before anything else is built; a changed one is
    serialised once, for its row and its `score.updated` alike. Chunk N+1 is built in a
    thread while PostgreSQL writes chunk N (the machine's second core), in one transaction.
    """
    build = functools.partial(
        _built_chunk,
        table,
        customer_ids,
        models,
        version=version,
        as_of=as_of,
        currency=currency,
        tolerance=tolerance,
    )
    chunks = [
        range(start, min(start + _CHUNK, len(customer_ids)))
        for start in range(0, len(customer_ids), _CHUNK)
    ]
    if not chunks:
        return 0
    stored = await stored_scores(session, [customer_ids[i] for i in chunks[0]])
    if len(chunks) == 1:
        built = build(chunks[0], stored)  # a consumer batch: no thread hop
    else:
        built = await asyncio.to_thread(build, chunks[0], stored)
    changed = len(built.rows)
    for chunk in chunks[1:]:
        # The connection serves one statement at a time: the next chunk's stored states are
        # read before this chunk's write starts, never while it runs.
        stored = await stored_scores(session, [customer_ids[i] for i in chunk])
        writing = asyncio.create_task(_write_chunk(session, built))
        try:
            following = await asyncio.to_thread(build, chunk, stored)
        finally:
            # A failed build: the write in flight ends before the transaction unwinds (the
            # build's error is the one raised).
            await asyncio.wait([writing])
        writing.result()
        built = following
        changed += len(built.rows)
    await _write_chunk(session, built)
    return changed


async def _write_chunk(session: AsyncSession, chunk: _Chunk) -> None:
    await keep_states(session, chunk.kept)
    await write_scores(session, chunk.rows, none_stored=chunk.none_stored)
    await add_encoded_to_outbox(session, PLUMBING, chunk.outbox)


def _built_chunk(
    table: ScoreTable,
    customer_ids: Sequence[str],
    models: FittedModels,
    chunk: range,
    stored: dict[str, StoredScore],
    *,
    version: str,
    as_of: datetime,
    currency: str,
    tolerance: float,
) -> _Chunk:
    """The rows of the customers `chunk` of the table whose scores changed against `stored`."""
    texts = score_texts(
        table,
        customer_ids,
        version=version,
        as_of=as_of,
        currency=currency,
        rows=slice(chunk.start, chunk.stop),
    )
    built = _Chunk(none_stored=not stored)
    news = []
    for j, (i, state) in enumerate(zip(chunk, texts.states, strict=True)):
        previous = stored.get(customer_ids[i])
        if _changed(previous, texts.documents[j], state, tolerance):
            news.append((i, j, previous))
        elif previous is not None and previous.state is None:
            built.kept.append((customer_ids[i], state))
    # Explanations only for what changed, as their figures (the API builds the text).
    explained = packed_explanations(table, models, np.array([i for i, *_ in news], np.int64))
    for (i, j, previous), explanation in zip(news, explained, strict=True):
        customer_id = customer_ids[i]
        text = texts.documents[j]
        spend = texts.total_spend[j]
        segments = (texts.rfm_segment[j], texts.value_tier[j], texts.grade[j], texts.cluster[j])
        built.rows.append(
            (
                customer_id,
                as_of,
                version,
                *segments,
                texts.churn_risk[j],
                None if spend is None else Decimal(spend),
                None if spend is None else currency,
                text,
                None,  # the explanation's text of rows stored before its figures were
                explanation,
                texts.states[j].packed(),
            )
        )
        event_id, event = encoded_score_event(text, customer_id, source=SOURCE, as_of=as_of)
        built.outbox.append((event_id, _SCORES_TOPIC, customer_id, event))
        if previous is not None:
            built.outbox += _segment_changes(previous.segments, segments, customer_id, as_of)
    return built


def _changed(
    previous: StoredScore | None, document_json: str, state: ScoreState, tolerance: float
) -> bool:
    if previous is None:
        return True
    if previous.state is None:  # stored before change states were kept: compare the payload
        document = orjson.loads(document_json)
        return changed_beyond_tolerance(previous.payload, document, tolerance)
    return changed_since(previous.state, state, tolerance)


def _segment_changes(
    before: dict[str, str | None],
    current: tuple[str | None, ...],
    customer_id: str,
    as_of: datetime,
) -> list[tuple[str, str, str, str]]:
    """Outbox rows of the `segment.changed` events of a customer scored before (a first score
    is news by itself: its score.updated carries every segment); `current` in the order of
    `SEGMENT_DIMENSIONS`."""
    changes = []
    for dimension, after in zip(SEGMENT_DIMENSIONS, current, strict=True):
        if before[dimension] != after:
            event_id, event = encoded_segment_event(
                customer_id, dimension, before[dimension], after, source=SOURCE, as_of=as_of
            )
            changes.append((event_id, _SCORES_TOPIC, customer_id, event))
    return changes
