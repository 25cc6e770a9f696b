"""Answer a hot GET before routing and dependency solving: from a `ReadCache`, or by its loader.

Once its body is cached, what a customer 360 still cost in-process was FastAPI's work around
the handler: matching the path against every route of the included routers, and solving the
key check's dependencies (two thirds of the hit's CPU, three times the whole of a bare app's
read: bench/RESULTS.md). A miss paid the same on top of its database read (30% of a miss's
CPU). `CachedRouteMiddleware` sits inside the shared middlewares (request id, metrics, NUL
guard, body limit) and answers a GET of exactly the route's path with a key that holds the
needed scope: from the cache, else by calling the route's loader (and keeping what it read).
Anything else goes on to the app unchanged: no key, a bad or weak key, another path or method,
and every read the loader declines (it returns None for a read the route refuses: 404, 410, a
redirect), so every refusal stays the route's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette._utils import get_route_path
from starlette.convertors import StringConvertor
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_shared._auth import ApiKeyAuthenticator
from crm_shared._read_cache import ReadCache
from crm_shared._settings import Scope as KeyScope

_KEY_HEADER = b"x-api-key"

Loader = Callable[[str], Awaitable[bytes | None]]
"""Reads the body of one key, as the route would answer it with 200; None for any other answer."""


class CachedRouteMiddleware:
    """Serve GETs of one path template by its one path parameter: cached, else loaded."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        cache: ReadCache,
        load: Loader,
        authenticator: ApiKeyAuthenticator,
        needed: KeyScope,
        media_type: str,
    ) -> None:
        self._app = app
        self._cache = cache
        self._load = load
        self._authenticator = authenticator
        self._needed = needed
        self._media_type = media_type
        self._regex, _, convertors = compile_path(path)
        if len(convertors) != 1 or not all(
            isinstance(convertor, StringConvertor) for convertor in convertors.values()
        ):
            raise ValueError(f"{path}: one text path parameter is needed, the cache's key")
        (self._parameter,) = convertors
        self._route: Any = None  # the route the app matched, known after its first answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self._admitted_key(scope) if self._route is not None else None
        body = None if key is None else await self._body(key)
        if body is None:
            await self._app(scope, receive, send)
            if self._route is None and scope["type"] == "http":
                self._learn_route(scope)
            return
        scope["route"] = self._route  # as the router would set it: metrics name the template
        await Response(body, media_type=self._media_type)(scope, receive, send)

    def _admitted_key(self, scope: Scope) -> str | None:
        # The path parameter of a GET of the route's path by a caller the route admits.
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        matched = self._regex.match(get_route_path(scope))
        if matched is None:
            return None
        principal = self._authenticator.principal_for(_presented_key(scope))
        if principal is None or not principal.allows(self._needed):
            return None  # the route refuses it, with its own problem
        key: str = matched[self._parameter]
        return key

    async def _body(self, key: str) -> bytes | None:
        cache = self._cache
        body = cache.get(key)
        if body is None:
            since = cache.generation()  # before the read: see ReadCache.put
            body = await self._load(key)
            if body is not None:
                cache.put(key, body, since)
        return body

    def _learn_route(self, scope: Scope) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if path is not None and scope["method"] == "GET" and self._regex.match(path):
            self._route = route


def serve_cached_route(
    app: FastAPI,
    path: str,
    cache: ReadCache,
    *,
    load: Loader,
    needed: KeyScope,
    media_type: str,
) -> None:
    """Let `app` answer GETs of `path` before routing (see the module's docstring).

    `load` must answer as the route does when it answers 200 (the same bytes), and return
    None whenever the route would answer otherwise; an exception it raises is the request's,
    as the route's would be. Installed innermost, after the shared middlewares, so an answer
    from here still gets its request id and metrics; call it after `create_service_app`,
    before the app starts.
    """
    authenticator: ApiKeyAuthenticator = app.state.authenticator
    app.user_middleware.append(
        Middleware(
            CachedRouteMiddleware,
            path=path,
            cache=cache,
            load=load,
            authenticator=authenticator,
            needed=needed,
            media_type=media_type,
        )
    )


def _presented_key(scope: Scope) -> str | None:
    # The first X-API-Key header, as the route's APIKeyHeader reads it.
    for name, value in scope["headers"]:
        if name == _KEY_HEADER:
            return str(value.decode("latin-1"))
    return None
