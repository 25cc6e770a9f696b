"""Run the whole system as local processes: the embedded broker, the mail sink, every service.

`Stack` is what ``python -m crm_devstack run`` uses, and what a test can use to get the same
system: ``with start_stack(data_dir=tmp_path, free_ports=True) as stack: ...``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import httpx

from crm_devstack.databases import DatabaseStartError, StackPostgres, sqlite_url
from crm_devstack.mail_sink import DEVELOPMENT_SMTP_PORT, MailSink, MailSinkError
from crm_devstack.object_store import LocalObjectStore, ObjectStoreError
from crm_devstack.services import SERVICES, ServiceSpec, console_spec
from crm_devstack.wiring import console_links, deployment_policy, sends_mail, service_links
from crm_shared import ApiKeyRecord, Scope, StartedInWith, generate_api_key
from crm_shared.testing import BrokerStartError, EmbeddedBroker, free_loopback_port

HEALTH_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
MIGRATION_TIMEOUT_SECONDS = 300.0
DEVELOPMENT_KEY_NAME = "devstack"

_logger = logging.getLogger("crm_devstack")
_HEALTH_POLL_SECONDS = 0.2
_LOG_TAIL_LINES = 20

BrokerStorage = Literal["memory", "s3"]
"""Where the embedded broker keeps its log: in its own memory, or in a local S3 server."""


class StackError(RuntimeError):
    """The stack could not start; the message names the part that failed and shows its log."""


@dataclass(frozen=True)
class RunningService:
    """A service the stack started: where it answers and where its output goes."""

    spec: ServiceSpec
    base_url: str
    log_path: Path
    database_url: str
    replica: int = 1

    @property
    def name(self) -> str:
        """The service's name, e.g. ``profile-service``."""
        return self.spec.name

    @property
    def instance(self) -> str:
        """This process's name: the service's for the first replica, ``<name>-<n>`` after."""
        return self.name if self.replica == 1 else f"{self.name}-{self.replica}"

    @property
    def docs_url(self) -> str:
        """The service's OpenAPI docs."""
        return f"{self.base_url}/docs"


@dataclass(frozen=True)
class ServiceExit:
    """A service process that ended while the stack was meant to be running."""

    service: RunningService
    returncode: int


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file (empty if it does not exist yet)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


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
        self._broker_port = broker_port
        self._extra_env = dict(extra_env or {})
        self._health_timeout = health_timeout
        self._python = python
        self._postgres = StackPostgres() if postgres else None
        self._replicas = replicas
        self._broker_storage = broker_storage
        self._console_spec = console_spec() if console else None
        self._console: RunningService | None = None
        self._extra_api_keys = tuple(extra_api_keys)
        self._api_key, self._api_key_record = generate_api_key(DEVELOPMENT_KEY_NAME, list(Scope))
        self._broker: EmbeddedBroker | None = None
        self._object_store: LocalObjectStore | None = None
        self._mail_sink: MailSink | None = None
        self._planned: dict[str, RunningService] = {}
        self._running: dict[str, RunningService] = {}
        # Every replica by instance name (``scoring-service``, ``scoring-service-2``, ...).
        self._instances: dict[str, RunningService] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

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
        if self._postgres is None or not self._postgres.is_running:
            return None
        return self._postgres.admin_url

    @property
    def broker_log_path(self) -> Path:
        """The embedded broker's log file."""
        return self._data_dir / "broker.log"

    @property
    def object_store_log_path(self) -> Path:
        """The local S3 server's log file (with ``broker_storage="s3"``)."""
        return self._data_dir / "object-store.log"

    @property
    def bootstrap_servers(self) -> str:
        """The embedded broker's address for Kafka clients."""
        if self._broker is None:
            raise StackError("the stack has not been started")
        return self._broker.bootstrap_servers

    @property
    def mail_sink(self) -> MailSink | None:
        """The SMTP server that keeps the services' email; None when no service sends any."""
        return self._mail_sink

    @property
    def services(self) -> Mapping[str, RunningService]:
        """The started services by name."""
        return MappingProxyType(self._running)

    def replicas_of(self, name: str) -> list[RunningService]:
        """Every started replica of service `name`, the first (``services[name]``) first."""
        return [s for s in self._instances.values() if s.name == name]

    @property
    def console(self) -> RunningService | None:
        """The operator console, when the stack was asked to start it."""
        return self._console

    @property
    def urls(self) -> dict[str, str]:
        """Each started service's base URL by name, e.g. ``{"profile-service": "http://..."}``."""
        return {name: service.base_url for name, service in self._running.items()}

    def start(self) -> None:
        """Start the broker, the mail sink and every service (migrated first); wait until healthy.

        On any failure (or a KeyboardInterrupt) everything already started is stopped before
        the exception propagates.
        """
        if self._broker is not None:
            raise StackError("the stack is already started")
        self._data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_broker()
            self._start_mail_sink()
            self._start_postgres()
            planned = [self._plan(spec) for spec in self._specs]
            self._planned = {service.name: service for service in planned}
            self._migrate(planned)
            instances = [
                replace(
                    self._plan(service.spec, database_url=service.database_url),
                    replica=n,
                    log_path=self._data_dir / f"{service.name}-{n}.log",
                )
                if n > 1
                else service
                for service in planned
                for n in range(1, self._replicas + 1)
            ]
            for service in instances:
                self._launch(service)
            self._wait_until_healthy(instances)
            self._start_console()
        except BaseException:
            self.stop()
            raise

    def exited_services(self) -> list[ServiceExit]:
        """The services whose process has ended."""
        exits = []
        for name, process in self._processes.items():
            returncode = process.poll()
            if returncode is not None:
                exits.append(ServiceExit(self._instances[name], returncode))
        return exits

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
        processes, self._processes = self._processes, {}
        try:
            for process in processes.values():
                _signal_group(process, signal.SIGTERM)
            # One deadline for all: they shut down in parallel, so the total wait stays `grace`.
            deadline = time.monotonic() + grace
            for name, process in processes.items():
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _logger.warning("%s did not stop within %.0f s; killing it", name, grace)
                # Also sweeps any child the service left behind in its group.
                _signal_group(process, signal.SIGKILL)
                process.wait()
        except BaseException:
            # Interrupted while waiting (e.g. a KeyboardInterrupt): leave nothing running.
            for process in processes.values():
                _signal_group(process, signal.SIGKILL)
            raise
        finally:
            self._running.clear()
            self._instances.clear()
            self._console = None
            self._planned.clear()
            mail_sink, self._mail_sink = self._mail_sink, None
            broker, self._broker = self._broker, None
            object_store, self._object_store = self._object_store, None
            try:
                if mail_sink is not None:
                    mail_sink.stop()
            finally:
                try:
                    self._stop_postgres()
                finally:
                    try:
                        if broker is not None:
                            broker.stop()
                    finally:
                        # After the broker: it writes to the store until it stops.
                        if object_store is not None:
                            object_store.stop()

    def kill(self, name: str, signum: signal.Signals = signal.SIGKILL, *, replica: int = 1) -> int:
        """Send `signum` to one replica of a service and wait until it has ended; its exit code.

        For fault tests: SIGKILL leaves no chance to finish a batch or commit an offset.
        """
        process = self._process_of(name, replica)
        _signal_group(process, signum)
        return process.wait(self._health_timeout)

    def restart(self, name: str, *, replica: int = 1, grace: float = STOP_GRACE_SECONDS) -> None:
        """Start one replica of a service again (stopping it first if it still runs) on the
        same port and database; return once it answers ``/healthz``."""
        process = self._process_of(name, replica)
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        service = self._instance(name, replica)
        self._launch(service)
        self._wait_until_healthy([service])

    def stop_broker(self) -> None:
        """Stop the broker (an outage); the services keep running. Its port stays reserved
        for `start_broker`. With ``broker_storage="s3"`` what it held (topics, records,
        committed offsets) is there again when it comes back, as after a Kafka broker's
        restart; with memory storage it is all gone."""
        if self._broker is None:
            raise StackError("the stack has not been started")
        _logger.info("stopping the embedded Kafka broker")
        self._broker.stop()

    def start_broker(self) -> None:
        """Start the broker stopped by `stop_broker` again, on the same address."""
        if self._broker is None:
            raise StackError("the stack has not been started")
        _logger.info("starting the embedded Kafka broker again")
        try:
            self._broker.start()
        except BrokerStartError as error:
            raise StackError(
                f"the embedded Kafka broker did not start again: {error}\n"
                + _tail_report(self.broker_log_path)
            ) from error

    def stop_postgres(self) -> None:
        """Stop the PostgreSQL server (an outage), keeping its data for `start_postgres`."""
        if self._postgres is None:
            raise StackError("this stack runs on SQLite; start it with postgres=True")
        _logger.info("stopping the embedded PostgreSQL server")
        self._postgres.pause()

    def start_postgres(self) -> None:
        """Start the PostgreSQL server stopped by `stop_postgres` again, at the same address."""
        if self._postgres is None:
            raise StackError("this stack runs on SQLite; start it with postgres=True")
        _logger.info("starting the embedded PostgreSQL server again")
        self._postgres.resume()

    def _instance(self, name: str, replica: int) -> RunningService:
        for service in self.replicas_of(name):
            if service.replica == replica:
                return service
        raise StackError(f"no replica {replica} of {name} was started")

    def _process_of(self, name: str, replica: int) -> subprocess.Popen[bytes]:
        return self._processes[self._instance(name, replica).instance]

    def _start_console(self) -> None:
        spec = self._console_spec
        if spec is None:
            return
        port = free_loopback_port() if self._free_ports else spec.port
        _ensure_port_is_free(spec.name, self._host, port)
        console = RunningService(
            spec=spec,
            base_url=f"http://{_client_host(self._host)}:{port}",
            log_path=self._data_dir / f"{spec.name}.log",
            database_url="",  # the console owns no data: it calls the services' APIs
        )
        console.log_path.write_bytes(b"")
        self._launch(console, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                   **console_links(self.urls), **self._extra_env})  # fmt: skip
        self._running.pop(spec.name, None)  # not one of `services`: no events, no database
        self._console = console
        self._wait_until_healthy([console])

    def _start_broker(self) -> None:
        # EmbeddedBroker appends to its log; start each run with an empty one so the tail
        # shown on failure is about this run.
        self.broker_log_path.write_bytes(b"")
        store = self._start_object_store()
        if store is None:
            self._broker = EmbeddedBroker(port=self._broker_port, log_path=self.broker_log_path)
        else:
            self._broker = EmbeddedBroker(
                port=self._broker_port,
                log_path=self.broker_log_path,
                storage_url=store.storage_url,
                storage_env=store.broker_environment,
            )
        _logger.info("starting the embedded Kafka broker")
        try:
            self._broker.start()
        except BrokerStartError as error:
            raise StackError(
                f"the embedded Kafka broker did not start: {error}\n"
                + _tail_report(self.broker_log_path)
            ) from error

    def _start_object_store(self) -> LocalObjectStore | None:
        if self._broker_storage != "s3":
            return None
        self.object_store_log_path.write_bytes(b"")
        store = LocalObjectStore(log_path=self.object_store_log_path, python=self._python)
        _logger.info("starting the local S3 server for the broker's storage")
        # Kept before starting, so stop() ends it even if the start fails half-way.
        self._object_store = store
        try:
            store.start()
        except ObjectStoreError as error:
            raise StackError(f"{error}\n" + _tail_report(self.object_store_log_path)) from error
        return store

    def _start_mail_sink(self) -> None:
        if not sends_mail([spec.name for spec in self._specs]):
            return
        # On the loopback address the services are reached at: never wider than they are.
        host = _loopback_host(self._host)
        port = free_loopback_port() if self._free_ports else DEVELOPMENT_SMTP_PORT
        _ensure_port_is_free("the mail sink", host, port)
        sink = MailSink(directory=self._data_dir / "mail", host=host, port=port)
        _logger.info("starting the mail sink on %s:%d", host, port)
        try:
            sink.start()
        except MailSinkError as error:
            raise StackError(str(error)) from error
        self._mail_sink = sink

    def _start_postgres(self) -> None:
        if self._postgres is None:
            return
        _logger.info("starting the embedded PostgreSQL server")
        try:
            self._postgres.start()
        except DatabaseStartError as error:
            raise StackError(str(error)) from error

    def _stop_postgres(self) -> None:
        if self._postgres is not None:
            self._postgres.stop()

    def _database_url(self, spec: ServiceSpec) -> str:
        if self._postgres is None:
            return sqlite_url(self._data_dir, spec)
        try:
            return self._postgres.create_database(spec)
        except Exception as error:  # asyncpg and OS errors alike: say which service's database
            raise StackError(
                f"{spec.name}: could not create its PostgreSQL database: {error}"
            ) from error

    def _plan(self, spec: ServiceSpec, *, database_url: str | None = None) -> RunningService:
        # Replicas after the first always take free ports: the fixed ones are one per service.
        port = free_loopback_port() if self._free_ports or database_url else spec.port
        _ensure_port_is_free(spec.name, self._host, port)
        return RunningService(
            spec=spec,
            base_url=f"http://{_client_host(self._host)}:{port}",
            log_path=self._data_dir / f"{spec.name}.log",
            database_url=database_url or self._database_url(spec),
        )

    def _environment(self, service: RunningService) -> dict[str, str]:
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

    def _migrate(self, services: Sequence[RunningService]) -> None:
        """Migrate every service's database, all at once (each is its own database)."""
        migrations: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for service in services:
                _logger.info("%s: migrating %s", service.name, service.database_url)
                # "wb": each run's log starts here, so a failure's tail is about this run.
                with service.log_path.open("wb") as log:
                    migrations[service.name] = subprocess.Popen(
                        [self._python, "-m", service.spec.migrate_module],
                        cwd=service.spec.directory,
                        env=self._environment(service),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
            deadline = time.monotonic() + MIGRATION_TIMEOUT_SECONDS
            for service in services:
                self._wait_for_migration(service, migrations[service.name], deadline)
        finally:
            # After a failure (or a Ctrl-C), the other migrations are not left running.
            for process in migrations.values():
                if process.poll() is None:
                    _signal_group(process, signal.SIGKILL)
                    process.wait()

    @staticmethod
    def _wait_for_migration(
        service: RunningService, process: subprocess.Popen[bytes], deadline: float
    ) -> None:
        try:
            returncode = process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as error:
            raise StackError(
                f"{service.name}: migrations did not finish within "
                f"{MIGRATION_TIMEOUT_SECONDS:.0f} s\n" + _tail_report(service.log_path)
            ) from error
        if returncode != 0:
            raise StackError(
                f"{service.name}: migrations failed (exit code {returncode})\n"
                + _tail_report(service.log_path)
            )

    def _launch(self, service: RunningService, env: Mapping[str, str] | None = None) -> None:
        port = service.base_url.rsplit(":", 1)[1]
        command = [
            self._python,
            "-m",
            "uvicorn",
            "--factory",
            service.spec.app_factory,
            "--host",
            self._host,
            "--port",
            port,
        ]
        _logger.info("%s: starting on %s", service.instance, service.base_url)
        with service.log_path.open("ab") as log:
            # A new session gives the service its own process group: the terminal's Ctrl-C
            # does not reach it, and stop() can signal it with any children it spawns.
            self._processes[service.instance] = subprocess.Popen(
                command,
                cwd=service.spec.directory,
                env=dict(env) if env is not None else self._environment(service),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._instances[service.instance] = service
        if service.replica == 1:
            self._running[service.name] = service

    def _wait_until_healthy(self, services: Sequence[RunningService]) -> None:
        pending = list(services)
        deadline = time.monotonic() + self._health_timeout
        # trust_env=False: a developer's HTTP(S)_PROXY must not intercept loopback checks.
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while pending:
                for service in list(pending):
                    returncode = self._processes[service.instance].poll()
                    if returncode is not None:
                        raise StackError(
                            f"{service.name} exited with code {returncode} before answering "
                            "/healthz\n" + _tail_report(service.log_path)
                        )
                    if _answers_healthz(client, service.base_url):
                        _logger.info("%s: healthy", service.instance)
                        pending.remove(service)
                if pending and time.monotonic() > deadline:
                    raise StackError(
                        f"{', '.join(s.name for s in pending)} did not answer /healthz within "
                        f"{self._health_timeout:.0f} s\n"
                        + "\n".join(_tail_report(s.log_path) for s in pending)
                    )
                if pending:
                    time.sleep(_HEALTH_POLL_SECONDS)


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


def _answers_healthz(client: httpx.Client, base_url: str) -> bool:
    try:
        return client.get(f"{base_url}/healthz").status_code == 200
    except httpx.HTTPError:
        return False  # not listening yet


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    # With start_new_session the child leads its own group, whose id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _ensure_port_is_free(name: str, host: str, port: int) -> None:
    # Checked up front: otherwise uvicorn fails to bind while an unrelated process (often an
    # earlier `make run`) answers /healthz on that port, and the stack looks healthy.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Same option uvicorn sets, so a port in TIME_WAIT from the last run counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise StackError(
                f"{name} cannot listen on {host}:{port} ({error.strerror}); is another "
                "`make run` still running? Stop it, or free the port."
            ) from error


def _loopback_host(host: str) -> str:
    """The address a client on this machine dials for a server bound to `host`."""
    if host in {"0.0.0.0", ""}:
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _client_host(host: str) -> str:
    """`_loopback_host`, bracketed for a URL when it is an IPv6 address."""
    address = _loopback_host(host)
    return f"[{address}]" if ":" in address else address


def _tail_report(path: Path) -> str:
    tail = log_tail(path)
    if not tail:
        return f"(nothing in {path} yet)"
    return f"last lines of {path}:\n{tail}"
