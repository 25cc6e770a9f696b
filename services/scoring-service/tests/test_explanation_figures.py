"""Scores keep their explanation's figures; the API answers the explanation built from them
exactly as it answered the stored text, and the migration's downgrade writes that text back."""

from __future__ import annotations

import asyncio

import orjson
from alembic import command
from sqlalchemy import select, text, update
from test_scores_api import a_base, apply, fit

from crm_shared import create_engine
from crm_shared.migrations import alembic_config
from crm_shared.testing import ApiClient
from scoring_service.db.models import Score
from scoring_service.migrate import SERVICE_DIR
from scoring_testing import app_settings, running_api

BEFORE_FIGURES = "3c5e8f1d7a92"


async def answers(api: ApiClient, ids: list[str]) -> dict[str, bytes]:
    found = {}
    for customer_id in ids:
        response = await api.get(f"/v1/scores/{customer_id}")
        assert response.status_code == 200, response.text
        found[customer_id] = response.content
    return found


async def test_an_explanation_from_figures_answers_as_its_stored_text(
    scoring_api: ApiClient,
) -> None:
    await apply(scoring_api, a_base())
    await fit(scoring_api)
    runtime = scoring_api.app.state.runtime
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Score.customer_id, Score.explanation))).all()
    assert rows
    assert all(explanation is None for _, explanation in rows)
    ids = sorted(customer_id for customer_id, _ in rows)
    from_figures = await answers(scoring_api, ids)
    page = (await scoring_api.get("/v1/scores", params={"limit": 200})).content

    # As rows stored before 2026-12-08a are: the explanation's text, no figures.
    async with runtime.sessions() as session, session.begin():
        for customer_id in ids:
            text = orjson.loads(from_figures[customer_id])["explanation"]
            await session.execute(
                update(Score)
                .where(Score.customer_id == customer_id)
                .values(explanation=text, explanation_figures=None)
            )

    assert await answers(scoring_api, ids) == from_figures
    assert (await scoring_api.get("/v1/scores", params={"limit": 200})).content == page


async def test_the_downgrade_writes_each_explanation_as_the_api_answered_it(
    database_url: str,
) -> None:
    async with running_api(app_settings(database_url)) as api:
        await apply(api, a_base(customers=20))
        await fit(api)
        ids = [f"c{n:03d}" for n in range(20)]
        served = {
            cid: orjson.loads(body)["explanation"]
            for cid, body in (await answers(api, ids)).items()
        }
    config = alembic_config(SERVICE_DIR, database_url)
    # Alembic's env runs its own event loop: in a thread, as the service's migrate command does.
    await asyncio.to_thread(command.downgrade, config, BEFORE_FIGURES)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            query = text("SELECT customer_id, CAST(explanation AS TEXT) FROM scores")
            stored = dict((await connection.execute(query)).all())
    finally:
        await engine.dispose()
    assert {cid: orjson.loads(written) for cid, written in stored.items()} == served
    await asyncio.to_thread(command.upgrade, config, "head")
