"""The outside world notification-service talks to, run locally for tests.

Each is an async context manager that starts a real server on a free loopback port, hands out
an object describing it, and stops the server on exit:

- :func:`smtp_sink`: an SMTP server (aiosmtpd) that keeps every message it accepts and
  refuses the recipients it is told to;
- :func:`sms_gateway`: an HTTP SMS gateway that checks the credentials and the JSON body;
- :func:`webhook_receiver`: a webhook receiver that verifies the signature as a customer's
  system would (with the ``standardwebhooks`` library), and answers 401 to anything not
  signed with its secret.

Both HTTP servers can answer their first requests with a failure (``fail_first``), to script
a provider that recovers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller  # type: ignore[import-untyped]
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crm_shared.testing import free_loopback_port

__all__ = [
    "ReceivedEmail",
    "RecordedRequest",
    "SmsGateway",
    "SmtpSink",
    "WebhookDelivery",
    "WebhookReceiver",
    "serving",
    "sms_gateway",
    "smtp_sink",
    "webhook_receiver",
]

# --- SMTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedEmail:
    """One message the sink accepted: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes = b""  # as it came over the wire

    def part(self, content_type: str) -> str | None:
        """The decoded ``text/plain`` or ``text/html`` body (``\n`` line ends), if there is one."""
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                content: str = part.get_content()
                return content.replace("\r\n", "\n")
        return None


@dataclass
class SmtpSink:
    """A running SMTP server: where it listens and what it accepted."""

    host: str
    port: int
    messages: list[ReceivedEmail] = field(default_factory=list)


class _SinkHandler:
    def __init__(self, sink: SmtpSink, refusals: Mapping[str, str]) -> None:
        self._sink = sink
        self._refusals = refusals

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self._refusals:
            return self._refusals[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        received = ReceivedEmail(
            envelope.mail_from, list(envelope.rcpt_tos), message, bytes(envelope.content)
        )
        self._sink.messages.append(received)
        return "250 Message accepted for delivery"


@asynccontextmanager
async def smtp_sink(*, refuse: Mapping[str, str] | None = None) -> AsyncIterator[SmtpSink]:
    """An SMTP server on 127.0.0.1 keeping what it accepts.

    ``refuse`` maps a recipient address to the reply its RCPT gets, e.g.
    ``{"gone@example.com": "550 5.1.1 <gone@example.com>: mailbox unavailable"}``.
    """
    sink = SmtpSink(host="127.0.0.1", port=free_loopback_port())
    controller = Controller(_SinkHandler(sink, refuse or {}), hostname=sink.host, port=sink.port)
    # aiosmtpd runs its own loop in a thread; starting it blocks until it answers.
    await asyncio.to_thread(controller.start)
    try:
        yield sink
    finally:
        await asyncio.to_thread(controller.stop)


# --- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """A request an HTTP stand-in received, whatever it answered."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


class _QuietServer(uvicorn.Server):
    # Ctrl-C belongs to pytest, not to a server inside a test.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` (any Starlette or FastAPI app whose lifespan already runs) with uvicorn on
    a free loopback port; yields its base URL."""
    port = free_loopback_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why the server did not start
            raise RuntimeError("the test HTTP server stopped before it started")
        await asyncio.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _record(request: Request, into: list[RecordedRequest]) -> RecordedRequest:
    recorded = RecordedRequest(request.url.path, dict(request.headers), await request.body())
    into.append(recorded)
    return recorded


def _scripted_failure(attempt: int, fail_first: int, failure_status: int) -> Response | None:
    if attempt > fail_first:
        return None
    headers = {"Retry-After": "1"} if failure_status in {429, 503} else {}
    return JSONResponse(
        {"error": f"scripted failure {attempt} of {fail_first}"},
        status_code=failure_status,
        headers=headers,
    )


@dataclass
class SmsGateway:
    """A running SMS gateway: its endpoint, everything sent to it, and the SMS it accepted."""

    url: str
    requests: list[RecordedRequest] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    idempotency_keys: list[str | None] = field(default_factory=list)  # one per message

    def unique_messages(self) -> dict[str | None, dict[str, Any]]:
        """The accepted SMS de-duplicated by ``Idempotency-Key``, as a gateway sends them."""
        return dict(zip(self.idempotency_keys, self.messages, strict=True))


@asynccontextmanager
async def sms_gateway(
    *,
    api_token: str | None = "gateway-token",
    username: str | None = None,
    password: str | None = None,
    fail_first: int = 0,
    failure_status: int = 500,
    rejected_numbers: frozenset[str] = frozenset(),
    delay_seconds: float = 0.0,
) -> AsyncIterator[SmsGateway]:
    """An SMS gateway at ``<url>`` (POST) accepting JSON ``{"to", "from", "text", "reference"}``.

    Credentials: a bearer ``api_token`` or, with ``api_token=None``, HTTP basic ``username`` and
    ``password``; anything else gets 401. The first ``fail_first`` requests get
    ``failure_status``; numbers in ``rejected_numbers`` get 400; each answer waits
    ``delay_seconds``. Accepted messages get 202 ``{"id": "sms-<n>"}``.
    """
    if api_token is not None:
        expected_authorization = f"Bearer {api_token}"
    else:
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        expected_authorization = f"Basic {credentials}"
    gateway = SmsGateway(url="")

    async def receive(request: Request) -> Response:
        recorded = await _record(request, gateway.requests)
        if delay_seconds:
            await asyncio.sleep(delay_seconds)
        if recorded.headers.get("authorization") != expected_authorization:
            return JSONResponse({"error": "invalid credentials"}, status_code=401)
        failure = _scripted_failure(len(gateway.requests), fail_first, failure_status)
        if failure is not None:
            return failure
        try:
            payload = recorded.json()
            sms = {key: payload[key] for key in ("to", "from", "text", "reference")}
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "expected to, from, text, reference"}, status_code=400)
        if sms["to"] in rejected_numbers:
            return JSONResponse({"error": "invalid destination number"}, status_code=400)
        gateway.messages.append(sms)
        gateway.idempotency_keys.append(recorded.headers.get("idempotency-key"))
        return JSONResponse({"id": f"sms-{len(gateway.messages)}"}, status_code=202)

    app = Starlette(routes=[Route("/v1/messages", receive, methods=["POST"])])
    async with serving(app) as base_url:
        gateway.url = f"{base_url}/v1/messages"
        yield gateway


@dataclass(frozen=True)
class WebhookDelivery:
    """A webhook whose signature the receiver verified."""

    message_id: str
    signature: str
    timestamp: str
    body: bytes

    def json(self) -> Any:
        """The delivered JSON document."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A running webhook receiver: its URL, every request, what it verified and refused."""

    url: str
    secret: str
    requests: list[RecordedRequest] = field(default_factory=list)
    deliveries: list[WebhookDelivery] = field(default_factory=list)
    rejected: list[RecordedRequest] = field(default_factory=list)  # bad or stale signatures

    def unique_deliveries(self) -> dict[str, WebhookDelivery]:
        """The deliveries de-duplicated by ``webhook-id``, as a receiver keeps them."""
        return {delivery.message_id: delivery for delivery in self.deliveries}


@asynccontextmanager
async def webhook_receiver(
    secret: str,
    *,
    fail_first: int = 0,
    failure_status: int = 500,
    delay_seconds: float = 0.0,
) -> AsyncIterator[WebhookReceiver]:
    """A customer's system receiving CRM webhooks at ``<url>`` (POST), checking signatures.

    ``secret`` is the ``whsec_`` secret. A request that the Standard Webhooks library does not
    verify (signature, or a timestamp more than five minutes off) gets 401; the first
    ``fail_first`` verified requests get ``failure_status``; the rest are recorded as
    deliveries and get 200 ``{"id": "hook-<n>"}``; each answer waits ``delay_seconds``.
    """
    receiver = WebhookReceiver(url="", secret=secret)
    verifier = Webhook(secret)
    attempts = 0

    async def receive(request: Request) -> Response:
        nonlocal attempts
        recorded = await _record(request, receiver.requests)
        if delay_seconds:
            await asyncio.sleep(delay_seconds)
        try:
            verifier.verify(recorded.body, recorded.headers, json_parse=False)
        except (WebhookVerificationError, ValueError):
            receiver.rejected.append(recorded)
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        attempts += 1
        failure = _scripted_failure(attempts, fail_first, failure_status)
        if failure is not None:
            return failure
        delivery = WebhookDelivery(
            message_id=recorded.headers["webhook-id"],
            signature=recorded.headers["webhook-signature"],
            timestamp=recorded.headers["webhook-timestamp"],
            body=recorded.body,
        )
        receiver.deliveries.append(delivery)
        return JSONResponse({"id": f"hook-{len(receiver.deliveries)}"})

    app = Starlette(routes=[Route("/hooks/crm", receive, methods=["POST"])])
    async with serving(app) as base_url:
        receiver.url = f"{base_url}/hooks/crm"
        yield receiver
