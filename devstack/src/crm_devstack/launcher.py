"""Run the whole system as local processes: the embedded broker, the mail sink, every service.

`Stack` is what ``python -m crm_devstack run`` uses, and what a test can use to get the same
system: ``with start_stack(data_dir=tmp_path, free_ports=True) as stack: ...``. It wires its
parts together: the broker (`stack_broker`), the databases (`stack_databases`), the mail sink
(`stack_mail`) and the service processes (`stack_services`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from crm_devstack.mail_sink import MailSink
from crm_devstack.services import SERVICES, ServiceSpec, console_spec
from crm_devstack.stack_broker import BrokerStorage, StackBroker
from crm_devstack.stack_databases import StackDatabases
from crm_devstack.stack_errors import StackError, log_tail
from crm_devstack.stack_mail import start_mail_sink
from crm_devstack.stack_services import (
    HEALTH_TIMEOUT_SECONDS,
    MIGRATION_TIMEOUT_SECONDS,
    STOP_GRACE_SECONDS,
    RunningService,
    ServiceExit,
    ServiceProcesses,
)
from crm_devstack.wiring import console_links, deployment_policy, service_links
from crm_shared import ApiKeyRecord, Scope, generate_api_key
from crm_shared.testing import StartedInWith

__all__ = [
    "DEVELOPMENT_KEY_NAME",
    "HEALTH_TIMEOUT_SECONDS",
    "MIGRATION_TIMEOUT_SECONDS",
    "STOP_GRACE_SECONDS",
    "BrokerStorage",
    "RunningService",
    "ServiceExit",
    "Stack",
    "StackError",
    "log_tail",
    "start_stack",
]

DEVELOPMENT_KEY_NAME = "devstack"

_logger = logging.getLogger("crm_devstack")


class Stack(StartedInWith):
    """The embedded broker plus every service, each migrated and answering ``/healthz``.

    Services run as subprocesses in their own process groups, so a Ctrl-C in the terminal
    reaches only the launcher, which then stops them in order: services first (they flush
    and commit offsets against a live broker), the broker last. When a service sends email,
    a local SMTP sink (`MailSink`, in this process) keeps the mail under ``<data_dir>/mail``.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        host: str = "127.0.0.1",
        services: Sequence[ServiceSpec] | None = None,
        free_ports: bool = False,
        broker_port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        health_timeout: float = HEALTH_TIMEOUT_SECONDS,
        python: str = sys.executable,
        postgres: bool = False,
        replicas: int = 1,
        broker_storage: BrokerStorage = "memory",
        console: bool = False,
        extra_api_keys: Sequence[ApiKeyRecord] = (),
    ) -> None:
        """Prepare a stack; nothing starts until `start()` (or ``with``).

        `free_ports` picks unused ports instead of the fixed development ones, so a test can
        run beside a developer's ``make run``. `extra_env` is applied last, over the
        variables the stack sets for each service. `postgres` puts the services on an
        embedded PostgreSQL server (one fresh database each, deleted on stop) instead of
        SQLite files kept in `data_dir`. `replicas` starts that many processes of each
        service on one database and in one consumer group (the service's name), each on its
        own HTTP port; it needs `postgres` (SQLite is one writer's database).
        `broker_storage` ``"s3"`` keeps the broker's topics, records and committed offsets
        in a local S3 server (`LocalObjectStore`) that outlives the broker process, so
        `stop_broker` and `start_broker` are a restart like a Kafka broker's; with
        ``"memory"`` (the default, and fastest) a broker restart loses them all.
        `console` also starts the operator console (``services/console``) once the services
        answer, pointed at them. `extra_api_keys` are accepted by every service beside the
        stack's own all-scope key (a test's read-only key, say).
        """
        if replicas < 1:
            raise StackError(f"replicas must be at least 1, not {replicas}")
        if replicas > 1 and not postgres:
            raise StackError("replicas of a service share its database: use postgres=True")
        self._data_dir = data_dir.resolve()
        self._host = host
        self._specs = tuple(SERVICES if services is None else services)
        self._free_ports = free_ports
        self._extra_env = dict(extra_env or {})
        self._replicas = replicas
        self._console_spec = console_spec() if console else None
        self._console: RunningService | None = None
        self._extra_api_keys = tuple(extra_api_keys)
        self._api_key, self._api_key_record = generate_api_key(DEVELOPMENT_KEY_NAME, list(Scope))
        self._broker = StackBroker(
            data_dir=self._data_dir, port=broker_port, storage=broker_storage, python=python
        )
        self._databases = StackDatabases(data_dir=self._data_dir, postgres=postgres)
        self._mail_sink: MailSink | None = None
        self._processes = ServiceProcesses(
            data_dir=self._data_dir,
            host=host,
            free_ports=free_ports,
            health_timeout=health_timeout,
            python=python,
            environment=self._environment,
        )
        self._planned: dict[str, RunningService] = {}

    @property
    def api_key(self) -> str:
        """The development API key (all scopes) every service of this stack accepts."""
        return self._api_key

    @property
    def api_key_record(self) -> ApiKeyRecord:
        """The stored form of `api_key`, as given to each service's ``*_API_KEYS``."""
        return self._api_key_record

    @property
    def data_dir(self) -> Path:
        """The folder holding the logs, the mail and (without PostgreSQL) the SQLite files."""
        return self._data_dir

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL server's admin URL (for ``psql``); None when the stack uses SQLite."""
        return self._databases.admin_url

    @property
    def broker_log_path(self) -> Path:
        """The embedded broker's log file."""
        return self._broker.log_path

    @property
    def object_store_log_path(self) -> Path:
        """The local S3 server's log file (with ``broker_storage="s3"``)."""
        return self._broker.object_store_log_path

    @property
    def bootstrap_servers(self) -> str:
        """The embedded broker's address for Kafka clients."""
        return self._broker.bootstrap_servers

    @property
    def mail_sink(self) -> MailSink | None:
        """The SMTP server that keeps the services' email; None when no service sends any."""
        return self._mail_sink

    @property
    def services(self) -> Mapping[str, RunningService]:
        """The started services by name."""
        return self._processes.running

    def replicas_of(self, name: str) -> list[RunningService]:
        """Every started replica of service `name`, the first (``services[name]``) first."""
        return self._processes.replicas_of(name)

    @property
    def console(self) -> RunningService | None:
        """The operator console, when the stack was asked to start it."""
        return self._console

    @property
    def urls(self) -> dict[str, str]:
        """Each started service's base URL by name, e.g. ``{"profile-service": "http://..."}``."""
        return {name: service.base_url for name, service in self.services.items()}

    def start(self) -> None:
        """Start the broker, the mail sink and every service (migrated first); wait until healthy.

        On any failure (or a KeyboardInterrupt) everything already started is stopped before
        the exception propagates.
        """
        if self._broker.is_started:
            raise StackError("the stack is already started")
        self._data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._broker.start()
            self._mail_sink = start_mail_sink(
                self._specs, data_dir=self._data_dir, host=self._host, free_port=self._free_ports
            )
            self._databases.start()
            planned = [
                self._processes.plan(spec, self._databases.url_for(spec)) for spec in self._specs
            ]
            self._planned = {service.name: service for service in planned}
            self._processes.migrate(planned)
            instances = [
                self._processes.plan(service.spec, service.database_url, replica=n)
                if n > 1
                else service
                for service in planned
                for n in range(1, self._replicas + 1)
            ]
            for service in instances:
                self._processes.launch(service)
            self._processes.wait_until_healthy(instances)
            self._start_console()
        except BaseException:
            self.stop()
            raise

    def exited_services(self) -> list[ServiceExit]:
        """The services whose process has ended."""
        return self._processes.exited()

    def wait_for_exit(self, poll_interval: float = 0.5) -> ServiceExit:
        """Block until a service process ends and say which (forever if none does)."""
        while True:
            exits = self.exited_services()
            if exits:
                return exits[0]
            time.sleep(poll_interval)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every service (SIGTERM, `grace` seconds, then SIGKILL), the mail sink, the broker.

        Safe to call more than once and after a partial start.
        """
        try:
            self._processes.stop(grace)
        finally:
            self._console = None
            self._planned.clear()
            mail_sink, self._mail_sink = self._mail_sink, None
            try:
                if mail_sink is not None:
                    mail_sink.stop()
            finally:
                try:
                    self._databases.stop()
                finally:
                    self._broker.stop()

    def kill(self, name: str, signum: signal.Signals = signal.SIGKILL, *, replica: int = 1) -> int:
        """Send `signum` to one replica of a service and wait until it has ended; its exit code.

        For fault tests: SIGKILL leaves no chance to finish a batch or commit an offset.
        """
        return self._processes.kill(name, signum, replica=replica)

    def restart(self, name: str, *, replica: int = 1, grace: float = STOP_GRACE_SECONDS) -> None:
        """Start one replica of a service again (stopping it first if it still runs) on the
        same port and database; return once it answers ``/healthz``."""
        self._processes.restart(name, replica=replica, grace=grace)

    def stop_broker(self) -> None:
        """Stop the broker (an outage); the services keep running. Its port stays reserved
        for `start_broker`. With ``broker_storage="s3"`` what it held (topics, records,
        committed offsets) is there again when it comes back, as after a Kafka broker's
        restart; with memory storage it is all gone."""
        self._broker.pause()

    def start_broker(self) -> None:
        """Start the broker stopped by `stop_broker` again, on the same address."""
        self._broker.resume()

    def stop_postgres(self) -> None:
        """Stop the PostgreSQL server (an outage), keeping its data for `start_postgres`."""
        self._databases.pause()

    def start_postgres(self) -> None:
        """Start the PostgreSQL server stopped by `stop_postgres` again, at the same address."""
        self._databases.resume()

    def _start_console(self) -> None:
        spec = self._console_spec
        if spec is None:
            return
        # The console owns no data (it calls the services' APIs): no database, no events.
        console = self._processes.plan(spec, database_url="")
        console.log_path.write_bytes(b"")
        self._processes.launch(console, listed=False)
        self._console = console
        self._processes.wait_until_healthy([console])

    def _environment(self, service: RunningService) -> dict[str, str]:
        if self._console_spec is not None and service.spec is self._console_spec:
            return {
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                **console_links(self.urls),
                **self._extra_env,
            }
        prefix = service.spec.env_prefix
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",  # so the log file keeps up with the process
            f"{prefix}ENVIRONMENT": "development",
            f"{prefix}DATABASE_URL": service.database_url,
            f"{prefix}KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            f"{prefix}API_KEYS": json.dumps(
                [
                    record.model_dump(mode="json")
                    for record in (self._api_key_record, *self._extra_api_keys)
                ]
            ),
            **deployment_policy(service.spec),
            **service_links(
                service.name,
                urls={name: planned.base_url for name, planned in self._planned.items()},
                api_key=self._api_key,
                mail_sink=self._mail_sink,
            ),
            **self._extra_env,
        }


@contextlib.contextmanager
def start_stack(
    *,
    data_dir: Path,
    host: str = "127.0.0.1",
    services: Sequence[ServiceSpec] | None = None,
    free_ports: bool = False,
    broker_port: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    health_timeout: float = HEALTH_TIMEOUT_SECONDS,
    postgres: bool = False,
    replicas: int = 1,
    broker_storage: BrokerStorage = "memory",
    console: bool = False,
    extra_api_keys: Sequence[ApiKeyRecord] = (),
) -> Iterator[Stack]:
    """Start a `Stack` for the body of a ``with`` block and stop it afterwards, whatever happens."""
    stack = Stack(
        data_dir=data_dir,
        host=host,
        services=services,
        free_ports=free_ports,
        broker_port=broker_port,
        extra_env=extra_env,
        health_timeout=health_timeout,
        postgres=postgres,
        replicas=replicas,
        broker_storage=broker_storage,
        console=console,
        extra_api_keys=extra_api_keys,
    )
    with stack:
        yield stack
