"""Read what landed on a topic, with a plain aiokafka consumer (as an outside reader would)."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, ConsumerRecord


async def read_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    expect: int,
    timeout: float = 20.0,
    settle: float = 0.5,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning until `expect` records arrived and `settle` s pass quiet.

    Waiting a little past the expected count is what lets a test see a duplicate.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=f"test-reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    quiet_until: float | None = None
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            fresh = [record for partition in batch.values() for record in partition]
            records.extend(fresh)
            if fresh:
                quiet_until = None
            if len(records) >= expect:
                quiet_until = quiet_until or loop.time() + settle
                if loop.time() >= quiet_until:
                    break
    finally:
        await consumer.stop()
    return records
