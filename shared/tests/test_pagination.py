"""Cursors are typed: what a list issued comes back as its position, anything else is a 422."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from crm_contracts import MAX_INT64, PositiveInt64, QueryTime
from crm_shared import (
    AfterId,
    CursorPosition,
    CursorText,
    UnprocessableContent,
    decode_cursor,
    encode_cursor,
    page_of,
    slice_page,
)


class NewestFirst(CursorPosition):
    created_at: QueryTime
    id: CursorText


class Before(CursorPosition):
    before: PositiveInt64


def forged(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def test_a_cursor_comes_back_as_the_position_it_was_issued_for() -> None:
    at = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    assert decode_cursor(encode_cursor(AfterId(after="c-9")), AfterId) == AfterId(after="c-9")
    position = NewestFirst(created_at=at, id="n-1")
    assert decode_cursor(encode_cursor(position), NewestFirst) == position
    last = Before(before=MAX_INT64)
    assert decode_cursor(encode_cursor(last), Before) == last
    assert decode_cursor(None, AfterId) is None
    assert decode_cursor("", AfterId) is None


def test_cursors_issued_before_typing_still_decode() -> None:
    assert decode_cursor(forged({"after": "c-9"}), AfterId) == AfterId(after="c-9")
    old = forged({"created_at": "2025-03-14T09:00:00+00:00", "id": "n-1"})
    assert decode_cursor(old, NewestFirst) == NewestFirst(
        created_at=datetime(2025, 3, 14, 9, 0, tzinfo=UTC), id="n-1"
    )


@pytest.mark.parametrize(
    ("cursor", "position"),
    [
        ("%%%", AfterId),
        (forged({"after": True}), AfterId),
        (forged({"after": 1e23}), AfterId),
        (forged({"after": 10**30}), AfterId),
        (forged({"after": ["x"]}), AfterId),
        (forged({"after": "\x00"}), AfterId),  # base64 hides it from the request's NUL check
        (forged({"after": "x" * 201}), AfterId),
        (forged({}), AfterId),
        (forged(["x"]), AfterId),
        (forged(None), AfterId),
        (forged({"after": "x", "id": "y"}), AfterId),  # another list's cursor
        (forged({"before": 1e23}), Before),
        (forged({"before": 2**63}), Before),
        (forged({"before": 0}), Before),
        (forged({"before": "5"}), Before),
        (forged({"before": True}), Before),
        (forged({"created_at": "9999-12-31T23:59:59-23:59", "id": "x"}), NewestFirst),
        (forged({"created_at": "0001-01-01T00:00:00+14:00", "id": "x"}), NewestFirst),
        (forged({"created_at": 5, "id": "x"}), NewestFirst),
        (forged({"created_at": "2025-03-14T09:00:00Z", "id": {"a": 1}}), NewestFirst),
        (forged({"created_at": "2025-03-14T09:00:00Z"}), NewestFirst),
        (base64.urlsafe_b64encode(b"\xff\xfe").decode(), AfterId),
    ],
)
def test_a_cursor_a_client_made_up_is_a_422_on_cursor(
    cursor: str, position: type[CursorPosition]
) -> None:
    with pytest.raises(UnprocessableContent) as refused:
        decode_cursor(cursor, position)
    assert refused.value.extensions["errors"][0]["field"] == "cursor"


def test_a_page_is_the_rows_asked_for_and_a_cursor_when_more_follow() -> None:
    rows = ["a", "b", "c"]
    assert slice_page(rows, 2, lambda row: AfterId(after=row)) == (
        ["a", "b"],
        encode_cursor(AfterId(after="b")),
    )
    assert slice_page(rows, 3, lambda row: AfterId(after=row)) == (rows, None)
    assert slice_page([], 3, lambda row: AfterId(after=row)) == ([], None)


def test_page_of_shows_the_page_rows_through_the_view_and_cursors_the_last_one() -> None:
    rows = ["a", "b", "c"]
    page = page_of(rows, 2, lambda row: AfterId(after=row), str.upper)
    assert page.items == ["A", "B"]
    assert page.next_cursor == encode_cursor(AfterId(after="b"))
    last = page_of(rows, 3, lambda row: AfterId(after=row), str.upper)
    assert (last.items, last.next_cursor) == (["A", "B", "C"], None)
