"""What the benchmarks start beside the services: the embedded PostgreSQL server, profile-service
with its settings and API key, and a local SMTP sink process that counts what it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_shared import Scope, generate_api_key
from crm_shared.testing import free_loopback_port
from lib.processes import BENCH_DIR, PYTHON, tail

PROFILE_APP = "profile_service.app:create_app"


def make_api_key(name: str = "bench") -> tuple[str, str]:
    """A key with every scope, and the JSON list of records for ``PROFILE_API_KEYS``."""
    key, record = generate_api_key(name, [Scope.READ, Scope.WRITE, Scope.ADMIN])
    return key, json.dumps([record.model_dump(mode="json")])


def profile_env(database_url: str, api_keys_json: str) -> dict[str, str]:
    """The environment of a profile-service process (and of its migration)."""
    env = dict(os.environ)
    env.update(
        {
            "PROFILE_DATABASE_URL": database_url,
            "PROFILE_KAFKA_ENABLED": "false",
            "PROFILE_ENVIRONMENT": "test",
            "PROFILE_API_KEYS": api_keys_json,
            "PROFILE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def inherited_profile_settings() -> list[str]:
    """``PROFILE_*`` variables set by the caller that the benchmark passes on unchanged."""
    ours = {
        "PROFILE_DATABASE_URL",
        "PROFILE_KAFKA_ENABLED",
        "PROFILE_ENVIRONMENT",
        "PROFILE_API_KEYS",
        "PROFILE_LOG_LEVEL",
    }
    return sorted(
        f"{k}={v}" for k, v in os.environ.items() if k.startswith("PROFILE_") and k not in ours
    )


@contextlib.contextmanager
def embedded_postgres() -> Iterator[Any]:
    """A private PostgreSQL server (crm_shared.testing.EmbeddedPostgres), stopped on exit."""
    from crm_shared.testing import EmbeddedPostgres

    server = EmbeddedPostgres()
    try:
        with warnings.catch_warnings():
            # platformdirs (used by embedded-postgres) warns when XDG_RUNTIME_DIR is unset.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            server.start()
        yield server
    finally:
        server.stop()


def create_postgres_database(server: Any, name: str) -> str:
    """A fresh database on the embedded server; its SQLAlchemy (asyncpg) URL."""
    url: str = asyncio.run(server.create_database(name))
    return url


@dataclass(frozen=True)
class ProfileBackends:
    """The broker and PostgreSQL a profile-service benchmark runs on, and the service's env."""

    env: dict[str, str]
    bootstrap: str
    postgres: Any


def start_profile_backends(
    stack: contextlib.ExitStack, work: Path, api_keys_json: str
) -> ProfileBackends:
    """Start the embedded broker and PostgreSQL (stopped by `stack`) for profile-service with
    Kafka on, so its 360 read model fills from the topics."""
    from crm_shared.testing import EmbeddedBroker

    broker = EmbeddedBroker(log_path=work / "broker.log")
    bootstrap = broker.start()
    stack.callback(broker.stop)
    postgres = stack.enter_context(embedded_postgres())
    env = profile_env(create_postgres_database(postgres, "bench"), api_keys_json)
    env.update({"PROFILE_KAFKA_ENABLED": "true", "PROFILE_KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    return ProfileBackends(env, bootstrap, postgres)


@dataclass(frozen=True)
class SinkReport:
    """What the SMTP sink accepted: one entry per message, in arrival order."""

    notification_ids: list[str]  # the X-CRM-Notification-Id header ("" when missing)
    message_ids: list[str]  # the Message-ID header ("" when missing)
    connections: int  # SMTP sessions opened since the last reset


class SmtpSinkProcess:
    """An aiosmtpd server on a free loopback port, in its own process, keeping only headers.

    The tests' sink (``notification_servers.smtp_sink``) runs in the test's process and parses
    every message with the email package; for a throughput figure that would share the GIL
    with the code under test. This one runs as ``python -c`` in its own session, reads only
    the two id headers of each message, and answers ``report`` and ``reset`` on its stdin.
    """

    def __init__(self, log_path: Path) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "SMTP sink not started"
        return self.process.pid

    def start(self) -> SmtpSinkProcess:
        self.port = free_loopback_port()
        code = (
            f"import sys; sys.path.insert(0, {str(BENCH_DIR)!r}); "
            f"from lib.backends import serve_smtp_sink; serve_smtp_sink({self.port})"
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        try:
            if self._answer() != "ready":
                raise RuntimeError(f"SMTP sink did not start:\n{tail(self.log_path)}")
        except BaseException:
            self.stop()
            raise
        return self

    def _answer(self, command: str | None = None) -> str:
        assert self.process is not None
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def report(self) -> SinkReport:
        data = json.loads(self._answer("report"))
        return SinkReport(data["notification_ids"], data["message_ids"], data["connections"])

    def reset(self) -> None:
        self._answer("reset")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()  # the sink leaves its loop when stdin ends
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def __enter__(self) -> SmtpSinkProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve_smtp_sink(port: int) -> None:
    """The sink process's main (see :class:`SmtpSinkProcess`)."""
    import re
    import threading

    from aiosmtpd.controller import Controller  # type: ignore[import-untyped]

    header = re.compile(rb"^(X-CRM-Notification-Id|Message-ID):[ \t]*(.*?)\r?$", re.I | re.M)
    lock = threading.Lock()
    notification_ids: list[str] = []
    message_ids: list[str] = []
    connections = 0

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
            nonlocal connections
            with lock:
                connections += 1
            session.host_name = hostname
            return responses

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            head = envelope.content.split(b"\r\n\r\n", 1)[0]
            found = {name.lower(): value for name, value in header.findall(head)}
            with lock:
                notification_ids.append(found.get(b"x-crm-notification-id", b"").decode())
                message_ids.append(found.get(b"message-id", b"").decode())
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            with lock:
                if command == "report":
                    report = {
                        "notification_ids": notification_ids,
                        "message_ids": message_ids,
                        "connections": connections,
                    }
                    print(json.dumps(report), flush=True)
                elif command == "reset":
                    notification_ids.clear()
                    message_ids.clear()
                    connections = 0
                    print("ok", flush=True)
    finally:
        controller.stop()
