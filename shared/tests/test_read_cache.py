"""ReadCache on its own: what it keeps, what it refuses, and when it forgets."""

from __future__ import annotations

import pytest

from crm_shared import ReadCache, _read_cache
from crm_shared._read_cache_changes import changed_keys


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


def test_a_key_invalidated_is_forgotten_alone_and_its_read_in_flight_is_not_kept() -> None:
    cache = listening_cache(max_entries=10)
    for key in "ab":
        cache.put(key, key.encode(), cache.generation())
    since = cache.generation()  # reads of "a" and "c" start
    cache.invalidate_keys(["a"])  # a change to "a" commits meanwhile
    cache.put("a", b"old a", since)
    cache.put("c", b"c", since)
    assert [cache.get(key) for key in "abc"] == [None, b"b", b"c"]
    cache.put("a", b"new a", cache.generation())  # a read that started after the change
    assert cache.get("a") == b"new a"
    assert (cache.invalidations, cache.key_invalidations) == (1, 1)  # 1: starting to listen


def test_too_many_remembered_invalidations_refuse_every_read_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_read_cache, "_REMEMBERED_INVALIDATIONS", 2)
    cache = listening_cache(max_entries=10)
    cache.put("kept", b"kept", cache.generation())
    since = cache.generation()
    cache.invalidate_keys(["x", "y", "z"])  # past what is remembered
    cache.put("other", b"other", since)  # "other" was not named, but its read is not kept
    assert cache.get("other") is None
    assert cache.get("kept") == b"kept"  # stored bodies stay
    cache.put("other", b"other", cache.generation())
    assert cache.get("other") == b"other"


def test_a_change_notice_names_its_keys_or_every_key() -> None:
    assert changed_keys('["a", "b"]') == ["a", "b"]
    assert changed_keys("[]") == []
    for everything in ("", None, "not json", '{"a": 1}', "[1]", '"a"'):
        assert changed_keys(everything) is None
