"""ReadCache on its own: what it keeps, what it refuses, and when it forgets."""

from __future__ import annotations

import pytest

from crm_shared import ReadCache, _read_cache


def listening_cache(**overrides: float) -> ReadCache:
    values = {"ttl_seconds": 5.0, "max_entries": 3, **overrides}
    cache = ReadCache(ttl_seconds=values["ttl_seconds"], max_entries=int(values["max_entries"]))
    cache.set_listening(True)
    return cache


def test_a_body_read_across_an_emptying_is_not_kept() -> None:
    cache = listening_cache()
    since = cache.generation()
    cache.invalidate()  # a change committed while the body was being read
    cache.put("a", b"old", since)
    assert cache.get("a") is None
    cache.put("a", b"new", cache.generation())
    assert cache.get("a") == b"new"
    assert (cache.hits, cache.misses, len(cache)) == (1, 2, 1)


def test_nothing_is_kept_while_not_listening_or_switched_off() -> None:
    deaf = ReadCache(ttl_seconds=5, max_entries=3)
    assert deaf.generation() is None
    deaf.put("a", b"body", 0)
    assert deaf.get("a") is None
    for off in (listening_cache(ttl_seconds=0), listening_cache(max_entries=0)):
        off.put("a", b"body", off.generation())
        assert off.get("a") is None
    lost = listening_cache()
    lost.put("a", b"body", lost.generation())
    lost.set_listening(False)  # the listener's connection broke: forget everything
    assert lost.get("a") is None
    assert not lost.enabled


def test_the_oldest_body_makes_room_and_every_body_expires_within_the_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(_read_cache.time, "monotonic", lambda: now[0])
    cache = listening_cache(ttl_seconds=10)
    for key in "abcd":
        cache.put(key, key.encode(), cache.generation())
    assert [cache.get(key) for key in "abcd"] == [None, b"b", b"c", b"d"]
    now[0] += 4.9  # under half the TTL: every body still there
    assert [cache.get(key) for key in "bcd"] == [b"b", b"c", b"d"]
    now[0] += 5.2  # past the TTL: none left
    assert [cache.get(key) for key in "bcd"] == [None, None, None]
