"""Answers specific to this service's errors."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from crm_shared.errors import Conflict, Problem, UnprocessableContent
from profile_service.domain.orders import ChangedOrder, OrderRefused
from profile_service.workflows.customers import CustomerMoved


def order_problem(error: OrderRefused) -> Problem:
    """The problem an order refusal answers: a changed repeat conflicts, the rest is invalid."""
    if isinstance(error, ChangedOrder):
        return Conflict(error.reason)
    return UnprocessableContent(error.reason, field=error.field)


def install_error_handlers(app: FastAPI) -> None:
    """A merged customer's URL redirects (308, method kept) to the surviving customer's; a
    merged customer named in the body is a 409, as there is no URL to send the client to.
    An order refusal of the domain answers as its problem (see `order_problem`)."""

    @app.exception_handler(OrderRefused)
    async def _refused(request: Request, exc: OrderRefused) -> JSONResponse:
        problem = order_problem(exc)
        return JSONResponse(
            problem.body(instance=request.url.path),
            status_code=problem.status,
            media_type="application/problem+json",
        )

    @app.exception_handler(CustomerMoved)
    async def _moved(request: Request, exc: CustomerMoved) -> JSONResponse:
        body = Problem.body(exc, instance=request.url.path)
        if request.path_params.get("customer_id") != exc.customer_id:
            body.update(status=Conflict.status, title=Conflict.title)
            return JSONResponse(
                body, status_code=Conflict.status, media_type="application/problem+json"
            )
        location = request.url.path.replace(exc.customer_id, exc.merged_into, 1)
        return JSONResponse(
            body,
            status_code=exc.status,
            media_type="application/problem+json",
            headers={"Location": location},
        )
