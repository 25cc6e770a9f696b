"""KeyedBatches: reads asked for together go out together, and each gets its own answer.

What callers rely on: every key asked for in one turn of the event loop is in one `fetch`; a
key asked for twice is fetched once; a key asked for while its batch is on its way waits for the
next batch (its read must start after it was asked for); a failed batch fails each of its reads;
a reader going away does not take the answer from the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from crm_shared import KeyedBatches


class _Store:
    """A fetch that records its batches and can be held open or made to fail."""

    def __init__(self) -> None:
        self.values = {"a": 1, "b": 2, "c": 3}
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failure: Exception | None = None
        self.sent = asyncio.Event()  # set by each batch as it reaches the database

    async def fetch(self, keys: Sequence[str]) -> Mapping[str, int]:
        self.batches.append(list(keys))
        self.sent.set()
        snapshot = dict(self.values)  # what the batch's statement would see
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return {key: snapshot[key] for key in keys if key in snapshot}


async def test_keys_asked_for_together_are_one_fetch() -> None:
    store = _Store()
    batches = KeyedBatches(store.fetch)

    found = await asyncio.gather(*(batches.get(key) for key in ["a", "b", "a", "missing"]))

    assert found == [1, 2, 1, None]
    assert store.batches == [["a", "b", "missing"]]
    assert (batches.batches, batches.keys) == (1, 3)


async def test_a_batch_holds_at_most_max_keys() -> None:
    store = _Store()
    batches = KeyedBatches(store.fetch, max_keys=2)

    found = await asyncio.gather(*(batches.get(key) for key in ["a", "b", "c"]))

    assert found == [1, 2, 3]
    assert store.batches == [["a", "b"], ["c"]]


async def test_a_key_asked_for_while_its_batch_is_out_waits_for_the_next_batch() -> None:
    store = _Store()
    store.release.clear()
    batches = KeyedBatches(store.fetch)
    first = asyncio.create_task(batches.get("a"))
    await store.sent.wait()  # the first batch has read its snapshot and is held open
    store.sent.clear()

    store.values["a"] = 10  # a write that commits before the second read is asked for
    second = asyncio.create_task(batches.get("a"))
    await store.sent.wait()
    store.release.set()

    assert await first == 1
    assert await second == 10  # not the older batch's answer
    assert store.batches == [["a"], ["a"]]


async def test_a_failed_batch_fails_each_of_its_reads_and_the_next_batch_reads_again() -> None:
    store = _Store()
    store.failure = ConnectionError("the database went away")
    batches = KeyedBatches(store.fetch)

    found = await asyncio.gather(batches.get("a"), batches.get("b"), return_exceptions=True)

    assert [type(error) for error in found] == [ConnectionError, ConnectionError]
    store.failure = None
    assert await batches.get("a") == 1


async def test_a_reader_going_away_leaves_the_answer_to_the_others() -> None:
    store = _Store()
    store.release.clear()
    batches = KeyedBatches(store.fetch)
    leaving = asyncio.create_task(batches.get("a"))
    staying = asyncio.create_task(batches.get("a"))
    await store.sent.wait()

    leaving.cancel()
    store.release.set()

    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert await staying == 1
