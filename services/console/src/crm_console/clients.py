"""The console's only way to data: the four services' HTTP APIs, called with the operator's key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from crm_console.settings import ConsoleSettings
from crm_shared import API_KEY_HEADER

QueryParams = Mapping[str, str | int | float | None]


class Service(StrEnum):
    """The services the console reads from and writes to."""

    PROFILE = "profile-service"
    SCORING = "scoring-service"
    LIFECYCLE = "lifecycle-service"
    NOTIFICATION = "notification-service"


@dataclass(frozen=True)
class FieldError:
    """One field a service refused, with its message (from problem+json ``errors``)."""

    field: str
    message: str


@dataclass
class ServiceError(Exception):
    """A service answered with an error (problem+json), or did not answer at all."""

    service: Service
    status: int
    detail: str
    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.service} answered {self.status}: {self.detail}"

    def message_for(self, form_field: str) -> str | None:
        """The service's message about `form_field`: its error whose path ends with it."""
        for error in self.errors:
            parts = error.field.split(".")
            if error.field == form_field or form_field in parts[-2:]:
                return error.message
        return None


def base_urls(settings: ConsoleSettings) -> dict[Service, str]:
    """Each service's base URL from the settings."""
    return {
        Service.PROFILE: settings.profile_service_url.rstrip("/"),
        Service.SCORING: settings.scoring_service_url.rstrip("/"),
        Service.LIFECYCLE: settings.lifecycle_service_url.rstrip("/"),
        Service.NOTIFICATION: settings.notification_service_url.rstrip("/"),
    }


class ServiceClients:
    """HTTP calls to the services on behalf of one operator (one API key)."""

    def __init__(self, http: httpx.AsyncClient, urls: Mapping[Service, str], api_key: str) -> None:
        self._http = http
        self._urls = urls
        self._headers = {API_KEY_HEADER: api_key}

    def url(self, service: Service, path: str) -> str:
        """The full URL of `path` at `service`."""
        return self._urls[service] + path

    async def get(self, service: Service, path: str, params: QueryParams | None = None) -> Any:
        """GET JSON; a non-2xx answer raises `ServiceError`."""
        return await self._send("GET", service, path, params=params)

    async def get_or_none(
        self, service: Service, path: str, params: QueryParams | None = None
    ) -> Any:
        """GET JSON, or None when the service answers 404 (it does not know the thing)."""
        try:
            return await self.get(service, path, params)
        except ServiceError as error:
            if error.status == 404:
                return None
            raise

    async def probe(self, service: Service, path: str) -> httpx.Response | None:
        """GET an operations endpoint (``/readyz``, ``/metrics``); None when nothing answers."""
        try:
            return await self._http.get(self.url(service, path), headers=self._headers)
        except httpx.HTTPError:
            return None

    async def send(self, method: str, service: Service, path: str, body: object) -> Any:
        """POST or PUT a JSON body; a non-2xx answer raises `ServiceError`."""
        return await self._send(method, service, path, json=body)

    async def pages(
        self, service: Service, path: str, params: QueryParams, *, page_size: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a cursor-paginated list, page by page."""
        cursor: str | None = None
        while True:
            query: dict[str, str | int | float | None] = {**params, "limit": page_size}
            if cursor:
                query["cursor"] = cursor
            page = await self.get(service, path, query)
            for item in page["items"]:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def _send(
        self,
        method: str,
        service: Service,
        path: str,
        *,
        params: QueryParams | None = None,
        json: object = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        try:
            response = await self._http.request(
                method, self.url(service, path), params=query, json=json, headers=self._headers
            )
        except httpx.HTTPError as error:
            raise ServiceError(service, 503, f"{service} did not answer: {error}") from error
        if response.is_success:
            return response.json() if response.content else None
        raise _problem(service, response)


def _problem(service: Service, response: httpx.Response) -> ServiceError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    errors = [
        FieldError(str(e.get("field", "")), str(e.get("message", "")))
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    detail = str(body.get("detail") or response.reason_phrase or "error")
    return ServiceError(service, response.status_code, detail, errors)
