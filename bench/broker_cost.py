"""What the embedded broker (Tansu) costs per Kafka request and per record.

Drives a fresh embedded broker directly with aiokafka clients and reads the broker process's
CPU time (psutil, user + system) around each step, so a request's cost and a record's cost
can be told apart:

- produce: `--records` order-sized records (~600 bytes) to one partition, in batches of 1, 10,
  100 and 1,000 records, each batch one Produce request (acks=all);
- fetch: the same records read back by a consumer whose `max_partition_fetch_bytes` asks for
  about 10, 100 and 1,000 records per Fetch (Tansu returns all it has regardless);
- idle fetch: a consumer on 1 or 30 empty partitions for `--idle-seconds`, with
  fetch_max_wait_ms 5, 50 and 250: how many empty Fetches per second and what each costs
  (the broker spends CPU for as long as it holds one);
- offset commits and metadata requests, each `--calls` times in a row.

Requests are counted in this process (wrapping aiokafka's connection), so every figure is
per request the broker actually answered. The machine is shared and noisy: read the ratios.

    python bench/broker_cost.py [--records 20000] [--calls 2000] [--idle-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.conn import AIOKafkaConnection
from lib.processes import run_main
from lib.report import format_table, machine_summary

from crm_shared import ensure_topics
from crm_shared.testing import EmbeddedBroker

VALUE = b'{"specversion":"1.0","type":"order.placed","data":' + b"x" * 540 + b"}"
REQUESTS: collections.Counter[str] = collections.Counter()


def _count_requests() -> None:
    original = AIOKafkaConnection.send

    def send(self, request, expect_response=True):  # type: ignore[no-untyped-def]
        REQUESTS[type(request).__name__.split("_")[0]] += 1
        return original(self, request, expect_response)

    AIOKafkaConnection.send = send  # type: ignore[method-assign]


@contextmanager
def measured(
    broker: psutil.Process, rows: list[list[object]], step: str, kind: str
) -> Iterator[None]:
    """Broker CPU and the `kind` requests sent during the block, as one row of the table."""
    before_cpu = sum(broker.cpu_times()[:2])
    before = REQUESTS[kind]
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    cpu_ms = (sum(broker.cpu_times()[:2]) - before_cpu) * 1000
    requests = REQUESTS[kind] - before
    rows.append([step, kind, requests, seconds, cpu_ms, cpu_ms / max(requests, 1) * 1000])
    print(f"  {step}: {requests} {kind}, {cpu_ms:.0f} ms broker CPU in {seconds:.1f} s", flush=True)


async def produce(bootstrap: str, topic: str, records: int, batch: int) -> None:
    """`records` records to partition 0, `batch` per Produce request, one request at a time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        for start in range(0, records, batch):
            pending = producer.create_batch()
            for n in range(start, min(start + batch, records)):
                pending.append(key=str(n).encode(), value=VALUE, timestamp=None)
            pending.close()
            await (await producer.send_batch(pending, topic, partition=0))
    finally:
        await producer.stop()


async def fetch(bootstrap: str, topic: str, records: int, per_fetch: int) -> None:
    """Read `records` from partition 0, at most about `per_fetch` records per Fetch."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=per_fetch * (len(VALUE) + 70),
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        read = 0
        while read < records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=100_000)
            read += sum(len(batch) for batch in batches.values())
    finally:
        await consumer.stop()


async def idle(
    bootstrap: str, topics: list[str], partitions: int, seconds: float, wait_ms: int
) -> None:
    """A consumer on `partitions` empty partitions, polling as the services' loop does."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=wait_ms
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(t, p) for t in topics for p in range(6)][:partitions])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=200, max_records=500)
    finally:
        await consumer.stop()


async def repeat(calls: int, call: Callable[[], Awaitable[object]]) -> None:
    for _ in range(calls):
        await call()


async def run(args: argparse.Namespace, broker_pid: int, bootstrap: str) -> list[list[object]]:
    broker = psutil.Process(broker_pid)
    rows: list[list[object]] = []
    await ensure_topics(bootstrap, ["cost.data"], partitions=6)
    for batch in (1, 10, 100, 1000):
        topic = f"cost.produce{batch}"
        await ensure_topics(bootstrap, [topic], partitions=1)
        with measured(
            broker, rows, f"produce {args.records:,} records, {batch}/request", "ProduceRequest"
        ):
            await produce(bootstrap, topic, args.records, batch)
    # Small batches: a Fetch returns whole batches, so these decide the finest fetch size.
    await produce(bootstrap, "cost.data", args.records, 10)
    # max_partition_fetch_bytes asks for ~10, 100, 1,000 records a Fetch; this broker answers
    # with all it has whatever the figure, so the three are one measurement, three times.
    for per_fetch in (10, 100, 1000):
        step = f"fetch {args.records:,} records, asking ~{per_fetch}/request"
        with measured(broker, rows, step, "FetchRequest"):
            await fetch(bootstrap, "cost.data", args.records, per_fetch)
    idle_topics = [f"cost.idle{n}" for n in range(5)]
    await ensure_topics(bootstrap, idle_topics, partitions=6)
    for partitions, wait_ms in ((1, 5), (1, 50), (1, 250), (30, 5), (30, 50), (30, 250)):
        step = f"idle {partitions} partitions {args.idle_seconds:.0f} s, wait {wait_ms} ms"
        with measured(broker, rows, step, "FetchRequest"):
            await idle(bootstrap, idle_topics, partitions, args.idle_seconds, wait_ms)
    consumer = AIOKafkaConsumer(
        "cost.data", bootstrap_servers=bootstrap, group_id="committer", enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=2000, max_records=1)
        offsets = {TopicPartition("cost.data", p): 1 for p in range(6)}
        with measured(
            broker, rows, f"{args.calls:,} commits of 6 partitions", "OffsetCommitRequest"
        ):
            await repeat(args.calls, lambda: consumer.commit(offsets))
        with measured(broker, rows, f"{args.calls // 10:,} metadata requests", "MetadataRequest"):
            await repeat(args.calls // 10, consumer._client.fetch_all_metadata)
    finally:
        await consumer.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    print("# The embedded broker's CPU per request and per record")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    _count_requests()
    with (
        tempfile.TemporaryDirectory(prefix="crm-broker-cost-") as work,
        EmbeddedBroker(log_path=Path(work) / "broker.log") as broker,
    ):
        assert broker.pid is not None
        rows = asyncio.run(run(args, broker.pid, broker.bootstrap_servers))
    print(
        format_table(
            ["step", "request", "requests", "seconds", "broker CPU ms", "broker CPU us/request"],
            rows,
        )
    )
    print(f"load average at the end: {machine_summary()['load average']}")
    return 0


if __name__ == "__main__":
    run_main(main)
