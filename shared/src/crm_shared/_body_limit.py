"""Request body limits: a body larger than its route allows is refused with 413, unread.

Without a limit a single request can hold a service's memory and, on SQLite, its write lock
(a 17 MB customer held it for 40 s). The limit is checked twice: on the declared
``Content-Length`` before anything is read, and on the bytes actually received, so a chunked
body is cut off at the chunk that crosses the limit. Plain ASGI, so that nothing past the limit
is ever buffered and no task is added per request.
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_shared._problems import PROBLEM_CONTENT_TYPE
from crm_shared._request_body import fixed_body_length
from crm_shared.errors import ContentTooLarge


class RequestBodyLimits:
    """The largest body a request may carry: one default, and larger limits for named paths."""

    def __init__(self, default_max_bytes: int) -> None:
        self.default_max_bytes = default_max_bytes
        self._by_path: dict[str, int] = {}

    def allow(self, path: str, max_bytes: int) -> None:
        """Let requests to exactly `path` carry up to `max_bytes` (e.g. a streamed import)."""
        self._by_path[path] = max_bytes

    def max_bytes_for(self, path: str) -> int:
        """The limit that applies to a request for `path`."""
        return self._by_path.get(path, self.default_max_bytes)


class _BodyTooLarge(Exception):
    """Raised into the app from `receive` to stop it reading; never rendered by the app."""


class RequestBodyLimitMiddleware:
    """Answer 413 problem+json to a request whose body is larger than its path's limit."""

    def __init__(self, app: ASGIApp, limits: RequestBodyLimits) -> None:
        self._app = app
        self._limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = self._limits.max_bytes_for(scope["path"])
        fixed = fixed_body_length(scope)
        if fixed is not None and fixed <= limit:
            # No body, or one the server reads only up to its declared length: nothing to count.
            await self._app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refusal(scope, limit)(scope, receive, send)
            return
        received = 0
        exceeded = False
        response_started = False

        async def receive_within_limit() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def send_unless_exceeded(message: Message) -> None:
            nonlocal response_started
            # The app's own answer to the cut-off body (FastAPI turns the error into a 400,
            # an import would report a truncated file) is replaced by the 413.
            if exceeded and not response_started:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self._app(scope, receive_within_limit, send_unless_exceeded)
        if exceeded and not response_started:
            await _refusal(scope, limit)(scope, receive, send)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # A malformed length is the server's to refuse; the received bytes still count.
            return int(value) if value.isdigit() else None
    return None


def _refusal(scope: Scope, limit: int) -> JSONResponse:
    problem = ContentTooLarge(
        f"The request body is larger than {limit} bytes, the most this endpoint accepts.",
        max_body_bytes=limit,
    )
    return JSONResponse(
        problem.body(instance=scope["path"]),
        status_code=problem.status,
        media_type=PROBLEM_CONTENT_TYPE,
        # The rest of the body is never read, so the connection cannot carry another request.
        headers={"Connection": "close"},
    )


def install_body_limit(app: FastAPI, default_max_bytes: int) -> RequestBodyLimits:
    """Refuse bodies over `default_max_bytes` on every route; return the limits to widen."""
    limits = RequestBodyLimits(default_max_bytes)
    app.state.body_limits = limits
    app.add_middleware(RequestBodyLimitMiddleware, limits=limits)
    return limits


def allow_larger_body(app: FastAPI, path: str, max_bytes: int) -> None:
    """Let one route of an app built by ``create_service_app`` take bodies up to `max_bytes`."""
    limits: RequestBodyLimits = app.state.body_limits
    limits.allow(path, max_bytes)
