"""Counts every Kafka request a process sends, by API, for `bench/broker_requests.py`.

Loaded by Python at start-up when this folder is on PYTHONPATH and CRM_KAFKA_COUNTS names a
folder: each process then writes its cumulative counts there once a second (one JSON line per
snapshot, file named by pid). Fetches are split into those that brought records and empty
ones. Measurement only: nothing in the services imports it.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time

_FOLDER = os.environ.get("CRM_KAFKA_COUNTS")


def _install(folder: str) -> None:
    try:
        from aiokafka.conn import AIOKafkaConnection
    except ImportError:  # a process without aiokafka (the broker launcher's helpers)
        return
    counts: dict[str, int] = {}
    lock = threading.Lock()
    original = AIOKafkaConnection.send

    def add(key: str, n: int = 1) -> None:
        with lock:
            counts[key] = counts.get(key, 0) + n

    def fetched_records(response: object) -> bool:
        try:
            for _topic, partitions in response.topics:  # type: ignore[attr-defined]
                for partition in partitions:
                    if partition[-1]:
                        return True
        except Exception:
            return True
        return False

    def send(self, request, expect_response=True):  # type: ignore[no-untyped-def]
        name = type(request).__name__.split("_")[0]
        add(name)
        future = original(self, request, expect_response)
        if name == "FetchRequest" and hasattr(future, "add_done_callback"):

            def done(fut):  # type: ignore[no-untyped-def]
                if not fut.cancelled() and fut.exception() is None:
                    add(
                        "FetchRequest.with_records"
                        if fetched_records(fut.result())
                        else "FetchRequest.empty"
                    )

            future.add_done_callback(done)
        return future

    AIOKafkaConnection.send = send  # type: ignore[method-assign]
    path = os.path.join(folder, f"{os.getpid()}.jsonl")
    label = " ".join(sys.argv)[:200]

    def dump() -> None:
        with lock:
            line = json.dumps({"t": time.time(), "pid": os.getpid(), "argv": label, **counts})
        with open(path, "a") as out:
            out.write(line + "\n")

    def loop() -> None:
        while True:
            time.sleep(1.0)
            dump()

    threading.Thread(target=loop, daemon=True).start()
    atexit.register(dump)


if _FOLDER:
    _install(_FOLDER)
