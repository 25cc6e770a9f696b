"""The migration that copies each score's total spend out of its payload keeps stored scores."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from alembic import command
from sqlalchemy import text

from crm_shared import create_engine
from crm_shared.migrations import alembic_config
from scoring_service.migrate import SERVICE_DIR

BEFORE_SPEND_COLUMNS = "5b1e0c7d9a41"


async def test_scores_stored_before_the_spend_columns_get_them_from_their_payload(
    database_url: str,
) -> None:
    config = alembic_config(SERVICE_DIR, database_url)
    # Alembic's env runs its own event loop: in a thread, as the service's migrate command does.
    await asyncio.to_thread(command.upgrade, config, BEFORE_SPEND_COLUMNS)
    engine = create_engine(database_url)
    payload = {"rfm_segment": "Champions", "total_spend": {"amount": "1234.50", "currency": "EUR"}}
    json_value = "CAST(:payload AS JSONB)" if engine.dialect.name == "postgresql" else ":payload"
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO scores (customer_id, as_of, rfm_segment, payload, explanation)"
                    f" VALUES ('c1', '2026-12-01 00:00:00+00', 'Champions', {json_value}, '{{}}')"
                ),
                {"payload": json.dumps(payload)},
            )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT total_spend, total_spend_currency FROM scores")
                )
            ).one()
    finally:
        await engine.dispose()
    assert (Decimal(str(row[0])), row[1]) == (Decimal("1234.50"), "EUR")
