"""Prometheus metrics, one registry per app, and the request middleware that feeds them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_shared._logging import request_id_var


@dataclass
class ServiceMetrics:
    """The metrics every service exports; a service may register more on `registry`."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        registry = self.registry
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.events_processed = Counter(
            "events_processed",
            "Consumed events by outcome",
            ["topic", "outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "dead_letters", "Events sent to a dead-letter topic", ["topic"], registry=registry
        )
        self.consumer_lag = Gauge(
            "consumer_lag",
            "Messages behind the partition end",
            ["topic", "partition"],
            registry=registry,
        )
        self.outbox_published = Counter(
            "outbox_published", "Outbox events published", ["topic"], registry=registry
        )
        self.outbox_pending = Gauge(
            "outbox_pending",
            "Outbox events not yet published (parked ones excluded)",
            registry=registry,
        )
        self.outbox_oldest_unsent_age = Gauge(
            "outbox_oldest_unsent_age_seconds",
            "How long the oldest outbox event not yet published has waited",
            registry=registry,
        )
        self.outbox_parked = Counter(
            "outbox_parked",
            "Outbox events set aside because the broker can never take them",
            ["topic"],
            registry=registry,
        )
        self.outbox_parked_rows = Gauge(
            "outbox_parked_rows",
            "Outbox events set aside, waiting for an operator",
            registry=registry,
        )

    def render(self) -> Response:
        """The text exposition for ``/metrics``."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestContextMiddleware:
    """Sets the request id (from ``X-Request-ID`` or new), echoes it, records metrics.

    Plain ASGI rather than BaseHTTPMiddleware: it adds no task per request, which matters
    on the hot read path.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            self._metrics.http_requests.labels(method, template, str(status)).inc()
            self._metrics.http_latency.labels(method, template).observe(
                time.perf_counter() - started
            )
            request_id_var.reset(token)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")[:100]
            return text if text.isprintable() else None
    return None


def metrics_endpoint(request: Request) -> Response:
    """Serve the app's registry."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics.render()
