"""Answers specific to this service's errors."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from crm_shared.errors import Problem
from profile_service.workflows.customers import CustomerMoved


def install_error_handlers(app: FastAPI) -> None:
    """A merged customer's URL redirects (308, method kept) to the surviving customer's."""

    @app.exception_handler(CustomerMoved)
    async def _moved(request: Request, exc: CustomerMoved) -> JSONResponse:
        old_id = request.path_params.get("customer_id", "")
        location = request.url.path.replace(old_id, exc.merged_into, 1) if old_id else None
        body = Problem.body(exc, instance=request.url.path)
        headers = {"Location": location} if location else None
        return JSONResponse(
            body, status_code=exc.status, media_type="application/problem+json", headers=headers
        )
