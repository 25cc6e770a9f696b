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
_PHONE = re.compile(r"\+?\d[\d\s().-]{7,}\d")
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    """Mask email addresses and phone numbers in a log text."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


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
