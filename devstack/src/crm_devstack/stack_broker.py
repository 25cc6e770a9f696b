"""The stack's embedded Kafka broker and, with S3 storage, the local S3 server holding its log."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from crm_devstack.object_store import LocalObjectStore, ObjectStoreError
from crm_devstack.stack_errors import StackError, tail_report
from crm_shared.testing import BrokerStartError, EmbeddedBroker

_logger = logging.getLogger("crm_devstack")

BrokerStorage = Literal["memory", "s3"]
"""Where the embedded broker keeps its log: in its own memory, or in a local S3 server."""


class StackBroker:
    """The broker of one stack: started once, stopped and started again for outages."""

    def __init__(
        self, *, data_dir: Path, port: int | None, storage: BrokerStorage, python: str
    ) -> None:
        """Prepare the broker; `port` None picks a free one. Nothing starts until `start()`."""
        self._data_dir = data_dir
        self._port = port
        self._storage = storage
        self._python = python
        self._broker: EmbeddedBroker | None = None
        self._object_store: LocalObjectStore | None = None

    @property
    def is_started(self) -> bool:
        """Whether `start()` ran and `stop()` has not since (an outage counts as started)."""
        return self._broker is not None

    @property
    def log_path(self) -> Path:
        """The embedded broker's log file."""
        return self._data_dir / "broker.log"

    @property
    def object_store_log_path(self) -> Path:
        """The local S3 server's log file (with ``"s3"`` storage)."""
        return self._data_dir / "object-store.log"

    @property
    def bootstrap_servers(self) -> str:
        """The broker's address for Kafka clients."""
        return self._started().bootstrap_servers

    def start(self) -> None:
        """Start the S3 server (with ``"s3"`` storage), then the broker."""
        # EmbeddedBroker appends to its log; start each run with an empty one so the tail
        # shown on failure is about this run.
        self.log_path.write_bytes(b"")
        store = self._start_object_store()
        if store is None:
            self._broker = EmbeddedBroker(port=self._port, log_path=self.log_path)
        else:
            self._broker = EmbeddedBroker(
                port=self._port,
                log_path=self.log_path,
                storage_url=store.storage_url,
                storage_env=store.broker_environment,
            )
        _logger.info("starting the embedded Kafka broker")
        try:
            self._broker.start()
        except BrokerStartError as error:
            raise StackError(
                f"the embedded Kafka broker did not start: {error}\n" + tail_report(self.log_path)
            ) from error

    def pause(self) -> None:
        """Stop the broker process (an outage), keeping its port for `resume`."""
        broker = self._started()
        _logger.info("stopping the embedded Kafka broker")
        broker.stop()

    def resume(self) -> None:
        """Start the broker stopped by `pause` again, on the same address."""
        broker = self._started()
        _logger.info("starting the embedded Kafka broker again")
        try:
            broker.start()
        except BrokerStartError as error:
            raise StackError(
                f"the embedded Kafka broker did not start again: {error}\n"
                + tail_report(self.log_path)
            ) from error

    def stop(self) -> None:
        """Stop the broker, then the S3 server; safe after a partial start or a second time."""
        broker, self._broker = self._broker, None
        object_store, self._object_store = self._object_store, None
        try:
            if broker is not None:
                broker.stop()
        finally:
            # After the broker: it writes to the store until it stops.
            if object_store is not None:
                object_store.stop()

    def _started(self) -> EmbeddedBroker:
        if self._broker is None:
            raise StackError("the stack has not been started")
        return self._broker

    def _start_object_store(self) -> LocalObjectStore | None:
        if self._storage != "s3":
            return None
        self.object_store_log_path.write_bytes(b"")
        store = LocalObjectStore(log_path=self.object_store_log_path, python=self._python)
        _logger.info("starting the local S3 server for the broker's storage")
        # Kept before starting, so stop() ends it even if the start fails half-way.
        self._object_store = store
        try:
            store.start()
        except ObjectStoreError as error:
            raise StackError(f"{error}\n" + tail_report(self.object_store_log_path)) from error
        return store
