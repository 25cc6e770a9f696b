"""The stack's service processes: migrate, launch, wait for ``/healthz``, stop, kill, restart.

Services run as subprocesses in their own process groups, so a Ctrl-C in the terminal reaches
only the launcher, which then stops them (SIGTERM, a grace period, then SIGKILL to the group).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import httpx

from crm_devstack.loopback import client_host, ensure_port_is_free
from crm_devstack.services import ServiceSpec
from crm_devstack.stack_errors import StackError, tail_report
from crm_shared.testing import free_loopback_port

# Generous: on a loaded two-core machine four services, importing at once, take over a minute.
HEALTH_TIMEOUT_SECONDS = 180.0
STOP_GRACE_SECONDS = 10.0
MIGRATION_TIMEOUT_SECONDS = 300.0

_logger = logging.getLogger("crm_devstack")
_HEALTH_POLL_SECONDS = 0.2


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


Environment = Callable[[RunningService], Mapping[str, str]]
"""The environment variables a service process (or its migration) starts with."""


class ServiceProcesses:
    """Every service process of one stack, by instance name (``scoring-service-2``, ...)."""

    def __init__(
        self,
        *,
        data_dir: Path,
        host: str,
        free_ports: bool,
        health_timeout: float,
        python: str,
        environment: Environment,
    ) -> None:
        """Prepare; `free_ports` picks unused ports instead of each service's fixed one."""
        self._data_dir = data_dir
        self._host = host
        self._free_ports = free_ports
        self._health_timeout = health_timeout
        self._python = python
        self._environment = environment
        self._running: dict[str, RunningService] = {}
        self._instances: dict[str, RunningService] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def running(self) -> Mapping[str, RunningService]:
        """The first replica of every launched service, by name."""
        return MappingProxyType(self._running)

    def replicas_of(self, name: str) -> list[RunningService]:
        """Every launched replica of service `name`, the first first."""
        return [s for s in self._instances.values() if s.name == name]

    def plan(self, spec: ServiceSpec, database_url: str, *, replica: int = 1) -> RunningService:
        """Where a replica of `spec` will answer and log; its port is checked to be free."""
        # Replicas after the first always take free ports: the fixed ones are one per service.
        port = free_loopback_port() if self._free_ports or replica > 1 else spec.port
        ensure_port_is_free(spec.name, self._host, port)
        log_name = spec.name if replica == 1 else f"{spec.name}-{replica}"
        return RunningService(
            spec=spec,
            base_url=f"http://{client_host(self._host)}:{port}",
            log_path=self._data_dir / f"{log_name}.log",
            database_url=database_url,
            replica=replica,
        )

    def migrate(self, services: Sequence[RunningService]) -> None:
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
                        env=dict(self._environment(service)),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
            deadline = time.monotonic() + MIGRATION_TIMEOUT_SECONDS
            for service in services:
                _wait_for_migration(service, migrations[service.name], deadline)
        finally:
            # After a failure (or a Ctrl-C), the other migrations are not left running.
            for process in migrations.values():
                if process.poll() is None:
                    _signal_group(process, signal.SIGKILL)
                    process.wait()

    def launch(self, service: RunningService, *, listed: bool = True) -> None:
        """Start `service` under uvicorn, appending to its log (it may be a restart).

        An unlisted process (the console) is stopped with the rest but is not one of
        `running`: it consumes no events and owns no database.
        """
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
                env=dict(self._environment(service)),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not listed:
            return
        self._instances[service.instance] = service
        if service.replica == 1:
            self._running[service.name] = service

    def wait_until_healthy(self, services: Sequence[RunningService]) -> None:
        """Return once each of `services` answers ``/healthz``; `StackError` if one exits or
        the health timeout passes first."""
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
                            "/healthz\n" + tail_report(service.log_path)
                        )
                    if _answers_healthz(client, service.base_url):
                        _logger.info("%s: healthy", service.instance)
                        pending.remove(service)
                if pending and time.monotonic() > deadline:
                    raise StackError(
                        f"{', '.join(s.name for s in pending)} did not answer /healthz within "
                        f"{self._health_timeout:.0f} s\n"
                        + "\n".join(tail_report(s.log_path) for s in pending)
                    )
                if pending:
                    time.sleep(_HEALTH_POLL_SECONDS)

    def exited(self) -> list[ServiceExit]:
        """The services whose process has ended."""
        exits = []
        for name, process in self._processes.items():
            returncode = process.poll()
            if returncode is not None:
                exits.append(ServiceExit(self._instances[name], returncode))
        return exits

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every process (SIGTERM, `grace` seconds for all, then SIGKILL to each group)."""
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

    def kill(self, name: str, signum: signal.Signals, *, replica: int) -> int:
        """Send `signum` to one replica of a service and wait until it has ended; its exit code."""
        process = self._process_of(name, replica)
        _signal_group(process, signum)
        return process.wait(self._health_timeout)

    def restart(self, name: str, *, replica: int, grace: float) -> None:
        """Start one replica again (stopping it first if it still runs) on the same port and
        database; return once it answers ``/healthz``."""
        process = self._process_of(name, replica)
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        service = self._instance(name, replica)
        self.launch(service)
        self.wait_until_healthy([service])

    def _instance(self, name: str, replica: int) -> RunningService:
        for service in self.replicas_of(name):
            if service.replica == replica:
                return service
        raise StackError(f"no replica {replica} of {name} was started")

    def _process_of(self, name: str, replica: int) -> subprocess.Popen[bytes]:
        return self._processes[self._instance(name, replica).instance]


def _wait_for_migration(
    service: RunningService, process: subprocess.Popen[bytes], deadline: float
) -> None:
    try:
        returncode = process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as error:
        raise StackError(
            f"{service.name}: migrations did not finish within "
            f"{MIGRATION_TIMEOUT_SECONDS:.0f} s\n" + tail_report(service.log_path)
        ) from error
    if returncode != 0:
        raise StackError(
            f"{service.name}: migrations failed (exit code {returncode})\n"
            + tail_report(service.log_path)
        )


def _answers_healthz(client: httpx.Client, base_url: str) -> bool:
    try:
        return client.get(f"{base_url}/healthz").status_code == 200
    except httpx.HTTPError:
        return False  # not listening yet


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    # With start_new_session the child leads its own group, whose id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
