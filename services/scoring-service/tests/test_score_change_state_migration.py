"""The migration of 2026-12-07f keeps every stored payload (now json text) and leaves the
change state empty, so the next re-score compares those rows by their payload."""

from __future__ import annotations

import asyncio
import json

from alembic import command
from sqlalchemy import text

from crm_shared import create_engine
from crm_shared.migrations import alembic_config
from scoring_service.migrate import SERVICE_DIR

BEFORE_CHANGE_STATES = "bc0e882bbc41"
PAYLOAD = {"customer_id": "c1", "p_alive": 0.123456789012345678, "total_spend": None}


async def test_payloads_read_back_the_same_and_states_start_empty(database_url: str) -> None:
    config = alembic_config(SERVICE_DIR, database_url)
    # Alembic's env runs its own event loop: in a thread, as the service's migrate command does.
    await asyncio.to_thread(command.upgrade, config, BEFORE_CHANGE_STATES)
    engine = create_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    cast = "CAST(:payload AS JSONB)" if postgres else ":payload"
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO scores (customer_id, as_of, rfm_segment, payload, explanation)"
                    f" VALUES ('c1', '2026-12-01 00:00:00+00', 'Loyal', {cast}, '{{}}')"
                ),
                {"payload": json.dumps(PAYLOAD)},
            )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as connection:
            payload, state = (
                await connection.execute(
                    text("SELECT CAST(payload AS TEXT), change_state FROM scores")
                )
            ).one()
            kind = None
            if postgres:
                kind = (
                    await connection.execute(
                        text(
                            "SELECT data_type FROM information_schema.columns"
                            " WHERE table_name = 'scores' AND column_name = 'payload'"
                        )
                    )
                ).scalar_one()
    finally:
        await engine.dispose()
    assert json.loads(payload) == PAYLOAD
    assert state is None
    if postgres:
        assert kind == "json"
