"""Structured JSON logs carrying request and event ids, with personal data masked."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

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


def redact(text: str) -> str:
    """Mask email addresses and phone numbers in a log text."""
    return _PHONE.sub(_mask_phone, _EMAIL.sub("[email]", text))


def _mask_phone(match: re.Match[str]) -> str:
    candidate = match.group()
    if _NOT_A_PHONE.fullmatch(candidate.strip()):
        return candidate
    digits = sum(character.isdigit() for character in candidate)
    return "[phone]" if digits in _PHONE_DIGITS else candidate


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


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send all logs to stdout as JSON lines."""
    handler = _StdoutHandler()
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every rebalance and reconnect at INFO; keep those for debugging only.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
