"""The migration that keeps explanations as json text (not jsonb) keeps every stored one."""

from __future__ import annotations

import asyncio
import json

from alembic import command
from sqlalchemy import text

from crm_shared import create_engine
from crm_shared.migrations import alembic_config
from scoring_service.migrate import SERVICE_DIR

BEFORE_JSON_EXPLANATIONS = "9d4b2a7e6c13"
EXPLANATION = {
    "rfm": {"recency_days": 12.0, "purchase_days": 3, "total_spend": 123.45},
    "health": [{"component": "recency", "sub_score": 0.123456789012345678, "value": None}],
}


async def test_explanations_stored_as_jsonb_read_back_the_same_after_the_migration(
    database_url: str,
) -> None:
    config = alembic_config(SERVICE_DIR, database_url)
    # Alembic's env runs its own event loop: in a thread, as the service's migrate command does.
    await asyncio.to_thread(command.upgrade, config, BEFORE_JSON_EXPLANATIONS)
    engine = create_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    cast = "CAST(:explanation AS JSONB)" if postgres else ":explanation"
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO scores (customer_id, as_of, rfm_segment, payload, explanation)"
                    f" VALUES ('c1', '2026-12-01 00:00:00+00', 'Champions', '{{}}', {cast})"
                ),
                {"explanation": json.dumps(EXPLANATION)},
            )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as connection:
            stored = (
                await connection.execute(text("SELECT CAST(explanation AS TEXT) FROM scores"))
            ).scalar_one()
            kind = None
            if postgres:
                kind = (
                    await connection.execute(
                        text(
                            "SELECT data_type FROM information_schema.columns"
                            " WHERE table_name = 'scores' AND column_name = 'explanation'"
                        )
                    )
                ).scalar_one()
    finally:
        await engine.dispose()
    assert json.loads(stored) == EXPLANATION
    if postgres:
        assert kind == "json"
