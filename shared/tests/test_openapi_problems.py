"""The OpenAPI lists the problem+json answers an operation really gives."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from crm_shared import (
    ReadAccess,
    Scope,
    ServiceMetrics,
    ServiceSettings,
    create_service_app,
    generate_api_key,
    problem_responses,
)
from crm_shared.errors import NotFound


class Thing(BaseModel):
    name: str


def an_app() -> tuple[FastAPI, str]:
    key, record = generate_api_key("reader", [Scope.READ])
    settings = ServiceSettings(environment="test", api_keys=[record], kafka_enabled=False)
    app = create_service_app(
        settings=settings,
        metrics=ServiceMetrics(),
        title="t",
        description="t",
        version="1",
        lifespan=None,  # type: ignore[arg-type]
    )

    @app.post("/things", responses=problem_responses({404: "No such shelf"}))
    async def add(thing: Thing, _: ReadAccess) -> Thing:
        if thing.name == "lost":
            raise NotFound("No shelf for it.")
        return thing

    @app.get("/things")
    async def list_things(_: ReadAccess) -> list[Thing]:
        return []

    return app, key


async def test_a_body_that_is_not_utf8_answers_the_documented_400_problem() -> None:
    app, key = an_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        answered = await client.post(
            "/things",
            content=b'{"name": "\xff"}',
            headers={"X-API-Key": key, "Content-Type": "application/json"},
        )
        document = (await client.get("/openapi.json")).json()

    assert answered.status_code == 400
    assert answered.headers["content-type"] == "application/problem+json"
    reading = document["paths"]["/things"]["post"]["responses"]
    assert reading["400"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    # An operation without a body cannot give it, so it does not list it.
    assert "400" not in document["paths"]["/things"]["get"]["responses"]


async def test_problem_responses_document_each_status_with_the_problem_schema() -> None:
    app, key = an_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        answered = await client.post("/things", json={"name": "lost"}, headers={"X-API-Key": key})
        document = (await client.get("/openapi.json")).json()

    assert answered.status_code == 404
    assert answered.headers["content-type"] == "application/problem+json"
    listed = document["paths"]["/things"]["post"]["responses"]["404"]
    assert listed["description"] == "No such shelf"
    assert listed["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    assert {"type", "title", "status", "detail"} <= answered.json().keys()
