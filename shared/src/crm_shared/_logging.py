"""Structured JSON logs carrying request and event ids, with personal data masked."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
event_id_var: ContextVar[str | None] = ContextVar("event_id", default=None)

# A last line of defence: code logs ids, never contact details, but a message built from
# an exception text (e.g. an IntegrityError quoting a row) could carry one.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"\+?\(?\d[\d\s().-]{7,}\d")
# Digit runs that look like a phone number but are what operators need to read: IPv4
# addresses ("127.0.0.1"), dates with an hour ("2026-11-24 10" of a timestamp) and decimal
# numbers ("29.968155" seconds).
_NOT_A_PHONE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|\d{4}-\d{2}-\d{2}(?:[ T]\d{2})?|\d+\.\d+")
# E.164 numbers have at most 15 digits; fewer than 8 is no reachable number.
_PHONE_DIGITS = range(8, 16)
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Path segments that are credentials: the signed token of an unsubscribe link.
_CREDENTIAL_IN_PATH = re.compile(r"(/unsubscribe/)[^/]+")
# A query parameter name kept in an access log line (its value never is).
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,39}")
_ACCESS_LOGGER = "uvicorn.access"


def redact(text: str) -> str:
    """Mask email addresses and phone numbers in a log text."""
    return _PHONE.sub(_mask_phone, _EMAIL.sub("[email]", text))


def _mask_phone(match: re.Match[str]) -> str:
    candidate = match.group()
    if _NOT_A_PHONE.fullmatch(candidate.strip()):
        return candidate
    digits = sum(character.isdigit() for character in candidate)
    return "[phone]" if digits in _PHONE_DIGITS else candidate


def redact_request_target(target: str) -> str:
    """A request's path and query as an access log may show them.

    Query values are dropped (``?email=…&limit=…``): any of them may be an address, a phone
    number or a token, and a log reader needs the names only. In the path, an unsubscribe
    token becomes ``[token]`` and contact details are masked as `redact` does.
    """
    path, has_query, query = target.partition("?")
    path = redact(_CREDENTIAL_IN_PATH.sub(r"\1[token]", unquote(path)))
    # Quoted again as uvicorn writes it, so a %0A in the path cannot forge a log line.
    shown = quote(path, safe="/[]")
    if has_query:
        shown += "?" + "&".join(_masked_parameter(pair) for pair in query.split("&"))
    return shown


def _masked_parameter(pair: str) -> str:
    name, has_value, _ = pair.partition("=")
    name = unquote_plus(name)
    return f"{name}=…" if has_value and _PARAMETER_NAME.fullmatch(name) else "…"


class AccessLogRedactor(logging.Filter):
    """Rewrites uvicorn's access log lines through `redact_request_target`.

    Production runs uvicorn without an access log; `make run` keeps it for developers, and
    this keeps personal data and tokens out of it as the JSON logs keep them out.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Always let the line through, with its request target masked."""
        args = record.args
        # uvicorn logs (client, method, path with query, HTTP version, status).
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], redact_request_target(args[2]), *args[3:])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, extra fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if (request_id := request_id_var.get()) is not None:
            document["request_id"] = request_id
        if (event_id := event_id_var.get()) is not None:
            document["event_id"] = event_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                document[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            document["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(document, default=str)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time (test runners swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class RepeatLimiter(logging.Filter):
    """Lets each message of the chosen loggers through once per ``window_seconds``.

    During a broker outage aiokafka logs the same connection error about ten times a second
    per service; one line per window says the same, and the next one let through carries
    ``repeated``: how many were held back meanwhile.
    """

    def __init__(
        self,
        logger_prefixes: tuple[str, ...],
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._prefixes = logger_prefixes
        self._window = window_seconds
        self._clock = clock
        self._last_passed: dict[tuple[str, int, str], float] = {}
        self._held: dict[tuple[str, int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is written (and, if some were held back, how many)."""
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        last = self._last_passed.get(key)
        if last is not None and now - last < self._window:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last_passed[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.repeated = held
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send all logs to stdout as JSON lines."""
    handler = _StdoutHandler()
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RepeatLimiter(("aiokafka",), window_seconds=10.0))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every rebalance and reconnect at INFO; keep those for debugging only.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    access = logging.getLogger(_ACCESS_LOGGER)
    if not any(isinstance(f, AccessLogRedactor) for f in access.filters):
        access.addFilter(AccessLogRedactor())
