"""Storing a score table and publishing what changed: `score.updated`, `segment.changed`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    MAX_MONEY_AMOUNT,
    CloudEvent,
    Money,
    ScoreUpdated,
    SegmentChanged,
    Topic,
    build_event,
    encode_event,
)
from crm_shared import add_encoded_to_outbox, upsert_into
from scoring_service.db.models import PLUMBING, Score
from scoring_service.domain.explanations import explanations
from scoring_service.domain.models import FittedModels
from scoring_service.domain.scoring import ScoreTable, changed_beyond_tolerance
from scoring_service.workflows.score_documents import encoded_score_event, score_documents

SOURCE = "/crm/scoring-service"
_SEGMENT_DIMENSIONS = ("rfm_segment", "value_tier", "grade", "cluster")
_CHUNK = 10_000


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

    Each customer's document is compared with the stored one before anything else is built;
    a changed one is serialised once, for its row and its `score.updated` alike. PostgreSQL
    takes the rows by COPY (scores through a temporary table merged by one upsert).
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    changed = 0
    for start in range(0, len(customer_ids), _CHUNK):
        chunk = range(start, min(start + _CHUNK, len(customer_ids)))
        stored = await _stored_payloads(session, [customer_ids[i] for i in chunk])
        documents = score_documents(
            table,
            customer_ids,
            version=version,
            as_of=as_of,
            currency=currency,
            rows=slice(chunk.start, chunk.stop),
        )
        rows: list[dict[str, Any]] = []
        outbox: list[tuple[str, str, str, str]] = []
        news = [
            (i, document, stored.get(customer_ids[i]))
            for i, document in zip(chunk, documents, strict=True)
            if changed_beyond_tolerance(stored.get(customer_ids[i]), document, tolerance)
        ]
        # Explanations only for what changed, column by column (equal to table.explanation).
        explained = explanations(table, models, np.array([i for i, _, _ in news], np.int64))
        for (i, document, previous), explanation in zip(news, explained, strict=True):
            customer_id = customer_ids[i]
            changed += 1
            text = json.dumps(document, separators=(",", ":"))
            rows.append(
                {
                    "customer_id": customer_id,
                    "as_of": as_of,
                    "model_version": version,
                    "rfm_segment": document["rfm_segment"],
                    "value_tier": document["value_tier"],
                    "grade": document["grade"],
                    "cluster": document["cluster"],
                    "churn_risk": document["churn_risk"],
                    **_spend_columns(document["total_spend"]),
                    "payload": text if postgres else document,
                    "explanation": explanation,
                }
            )
            event_id, event = encoded_score_event(text, customer_id, source=SOURCE, as_of=as_of)
            outbox.append((event_id, str(Topic.SCORES), customer_id, event))
            for change in _segment_changes(previous, document, customer_id, as_of):
                encoded = encode_event(change).decode()
                outbox.append((change.id, str(change.data.topic), customer_id, encoded))
        if postgres:
            await _copy_upsert(session, rows)
        else:
            await _upsert(session, rows)
        await add_encoded_to_outbox(session, PLUMBING, outbox)
    return changed


async def _stored_payloads(session: AsyncSession, ids: list[str]) -> dict[str, dict[str, Any]]:
    # Only the payload: the explanation and the ORM's identity map are not needed to compare.
    query = select(Score.customer_id, Score.payload).where(Score.customer_id.in_(ids))
    return dict((await session.execute(query)).all())


def _segment_changes(
    previous: dict[str, Any] | None, current: dict[str, Any], customer_id: str, as_of: datetime
) -> list[CloudEvent]:
    if previous is None:
        return []  # a first score is news by itself: its score.updated carries every segment
    changes = []
    for dimension in _SEGMENT_DIMENSIONS:
        before = previous.get(dimension)
        after = current.get(dimension)
        if before != after:
            change = SegmentChanged(
                customer_id=customer_id,
                as_of=as_of,
                dimension=dimension,
                previous=before,
                current=after,
            )
            changes.append(build_event(change, source=SOURCE, time=as_of))
    return changes


_COLUMNS = (
    "customer_id",
    "as_of",
    "model_version",
    "rfm_segment",
    "value_tier",
    "grade",
    "cluster",
    "churn_risk",
    "total_spend",
    "total_spend_currency",
    "payload",
    "explanation",
)


def _spend_columns(spend: dict[str, str] | None) -> dict[str, Decimal | str | None]:
    """The score's total spend as the two columns revenue per segment is summed from."""
    if spend is None:
        return {"total_spend": None, "total_spend_currency": None}
    return {"total_spend": Decimal(spend["amount"]), "total_spend_currency": spend["currency"]}


async def _copy_upsert(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY the rows into a temporary table, then one INSERT ... ON CONFLICT."""
    if not rows:
        return
    await session.execute(
        text(
            "create temporary table if not exists scores_incoming "
            "(like scores including defaults) on commit drop"
        )
    )
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    records = [
        tuple(_compact(row[c]) if c == "explanation" else row[c] for c in _COLUMNS) for row in rows
    ]
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "scores_incoming", records=records, columns=list(_COLUMNS)
    )
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "customer_id")
    columns = ", ".join(_COLUMNS)
    await session.execute(
        text(
            f"insert into scores ({columns}) select {columns} from scores_incoming "
            f"on conflict (customer_id) do update set {updates}"
        )
    )
    await session.execute(text("truncate scores_incoming"))


async def _upsert(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = cast(Table, Score.__table__)
    statement = upsert_into(session, table)
    updated = {column: statement.excluded[column] for column in rows[0] if column != "customer_id"}
    # One statement run for many rows (executemany): compiled once, batched by the driver,
    # instead of a fresh thousand-row VALUES statement per chunk.
    await session.execute(
        statement.on_conflict_do_update(index_elements=[table.c.customer_id], set_=updated), rows
    )


def _compact(value: Any) -> str:
    # No spaces: the explanation is stored as this json text (see the Score model).
    return json.dumps(value, separators=(",", ":"))
