"""Counts every Kafka request a process sends, by API, for `bench/broker_requests.py`.

Loaded by Python at start-up when this folder is on PYTHONPATH and CRM_KAFKA_COUNTS names a
folder: each process then writes its cumulative counts there once a second (one JSON line per
snapshot, file named by pid). Measurement only: nothing in the services imports it. E.g.

    CRM_KAFKA_COUNTS=/tmp/counts PYTHONPATH=bench/lib/kafka_counting \
        .venv/bin/python bench/pipeline.py --rates 100,1000 --burst 0
    .venv/bin/python bench/lib/kafka_counting/summarise.py /tmp/counts START END ORDERS
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

    def send(self, request, expect_response=True):  # type: ignore[no-untyped-def]
        name = type(request).__name__.split("_")[0]
        add(name)
        return original(self, request, expect_response)

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
