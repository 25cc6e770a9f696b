"""RFC 9457 problem+json errors: domain errors carry their status, one handler renders them."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from crm_shared.errors import Problem, UnprocessableContent

PROBLEM_CONTENT_TYPE = "application/problem+json"
_logger = logging.getLogger("crm.problems")


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    """Render a problem for a request."""
    return JSONResponse(
        problem.body(instance=request.url.path),
        status_code=problem.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers={"WWW-Authenticate": "ApiKey"} if problem.status == 401 else None,
    )


def _field_path(location: tuple[int | str, ...]) -> str:
    # ("body", "customer", "email") -> "customer.email"; the leading part says where, not what.
    parts = [str(part) for part in location]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] or parts
    return ".".join(parts)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of the app answer as problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_path(tuple(err["loc"])), "message": err["msg"], "in": err["loc"][0]}
            for err in exc.errors()
        ]
        detail = "invalid request"
        if errors:
            detail = f"{errors[0]['field']}: {errors[0]['message']}"
        return problem_response(UnprocessableContent(detail, errors=errors), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        problem = Problem(str(exc.detail))
        problem.status = exc.status_code
        problem.title = HTTPStatus(exc.status_code).phrase
        problem.type_slug = problem.title.lower().replace(" ", "-")
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _logger.exception("unhandled error", extra={"error_type": type(exc).__name__})
        problem = Problem("An unexpected error occurred; it has been logged.")
        problem.status, problem.title, problem.type_slug = 500, "Internal error", "internal"
        return problem_response(problem, request)
