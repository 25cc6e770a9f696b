"""The baseline of bench/profile_http.py: FastAPI with one route and nothing else.

No middleware, no auth, no database: a small static JSON dict. The route has the same shape
as profile-service's ``GET /v1/customers/{customer_id}`` so the load generator sends the very
same requests to both servers. Run with
``python -m uvicorn --factory lib.bare_app:create_app --app-dir bench``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_BODY: dict[str, Any] = {
    "id": "01J0000000000000000000BARE",
    "status": "active",
    "email": "ada@example.com",
    "first_name": "Ada",
    "tags": ["newsletter"],
}


def create_app() -> FastAPI:
    app = FastAPI(title="bare", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/v1/customers/{customer_id}")
    async def read(customer_id: str) -> dict[str, Any]:
        return _BODY

    return app
