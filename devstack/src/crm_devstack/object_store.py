"""A local S3-compatible server for the embedded broker to keep its log in, so that the broker
can be stopped and started again without losing topics, records or committed offsets.

The embedded broker (Tansu) offers two storage engines in this build: memory, lost with the
process, and S3. Pointed at this server, which stays up while the broker restarts, Tansu
behaves as a Kafka broker does with its log on disk. The server is moto's (``moto[s3]`` and
Flask, in the development requirements), run as a plain process: it answers the S3 HTTP API,
conditional PUTs included, which Tansu uses to coordinate its state.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from crm_shared.testing import StartedInWith, free_loopback_port, stop_process_group

DEFAULT_BUCKET = "tansu"
START_TIMEOUT_SECONDS = 30.0
_POLL_SECONDS = 0.1
# Any value does: the local server checks no signature. Fixed, so no real credential is used.
_ACCESS_KEY = "devstack"
_REGION = "us-east-1"


class ObjectStoreError(RuntimeError):
    """The local S3 server did not come up; the message says why and what to install."""


class LocalObjectStore(StartedInWith):
    """An S3-compatible server on a loopback port with one bucket, for the broker's storage."""

    def __init__(
        self,
        *,
        log_path: Path,
        bucket: str = DEFAULT_BUCKET,
        python: str = sys.executable,
    ) -> None:
        """Prepare the server; nothing starts until `start()` (or ``with``)."""
        self._log_path = log_path
        self._bucket = bucket
        self._python = python
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The server's URL, e.g. ``http://127.0.0.1:50123``."""
        if self._port is None:
            raise ObjectStoreError("the local S3 server has not been started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def storage_url(self) -> str:
        """The broker's ``--storage-engine`` for this server's bucket."""
        return f"s3://{self._bucket}/"

    @property
    def broker_environment(self) -> dict[str, str]:
        """The ``AWS_*`` variables that point Tansu's S3 client at this server."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": _ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": _ACCESS_KEY,
            "AWS_DEFAULT_REGION": _REGION,
            # Plain HTTP is fine on the loopback interface; the client refuses it otherwise.
            "AWS_ALLOW_HTTP": "true",
        }

    def start(self, *, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start the server and create the bucket; return once the bucket exists."""
        if self._process is not None:
            return
        self._port = free_loopback_port()
        command = [self._python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self._port)]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Moto reads no credentials, but a developer's AWS settings have no business here.
                env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                start_new_session=True,
            )
        try:
            self._create_bucket(timeout)
        except BaseException:
            self.stop()
            raise

    def _create_bucket(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        # trust_env=False: a developer's HTTP(S)_PROXY must not intercept loopback calls.
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                returncode = self._process.poll()
                if returncode is not None:
                    raise ObjectStoreError(
                        f"the local S3 server exited with code {returncode}; it needs moto "
                        "with its S3 server (`pip install -r requirements/dev.txt`). Its "
                        f"log: {self._log_path}"
                    )
                try:
                    # Creating the bucket doubles as the readiness check: an S3 PUT Bucket.
                    created = client.put(f"{self.endpoint}/{self._bucket}")
                except httpx.TransportError:
                    created = None  # not listening yet
                if created is not None:
                    if created.status_code == 200:
                        return
                    raise ObjectStoreError(
                        f"the local S3 server refused to create bucket {self._bucket!r}: "
                        f"{created.status_code} {created.text[:200]}"
                    )
                if time.monotonic() > deadline:
                    raise ObjectStoreError(
                        f"the local S3 server did not answer within {timeout:.0f} s; its "
                        f"log: {self._log_path}"
                    )
                time.sleep(_POLL_SECONDS)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop the server (its bucket and everything in it are gone); safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        stop_process_group(process, timeout=timeout)
