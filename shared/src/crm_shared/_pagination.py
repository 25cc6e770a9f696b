"""Opaque cursors for keyset pagination: the client sends back what the last page gave.

A cursor is the base64 of a small JSON object: the sort key of the last item returned. Each
list declares that object as a `CursorPosition` model, so a cursor a client made up, or one
issued by another list, is refused as a 422 on `cursor` before it reaches a query.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Generic, NamedTuple, TypeVar

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from crm_contracts._bounds import without_nul
from crm_shared.errors import UnprocessableContent

ItemT = TypeVar("ItemT")
RowT = TypeVar("RowT")
PositionT = TypeVar("PositionT", bound="CursorPosition")

_FOREIGN_CURSOR = "cursor is not one this API issued"


class Page(BaseModel, Generic[ItemT]):
    """One page of a list; `next_cursor` is null on the last page."""

    items: list[ItemT]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to fetch the next page; null at the end."
    )


class CursorPosition(BaseModel):
    """Where a page ended: the sort key of its last item. Subclass it for each list.

    Validated strictly from JSON: a number is not an id, a string is not a number, a key
    that is missing or unknown (a cursor of another list) is refused.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


CursorText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(without_nul)]
"""A text key in a cursor (an id); base64 hides it from the request's NUL check, so refuse here."""


class AfterId(CursorPosition):
    """The position of a list ordered by a text id: the last id returned."""

    after: CursorText


def encode_cursor(position: CursorPosition) -> str:
    """Encode the sort key of the last item returned."""
    raw = position.model_dump_json().encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, position: type[PositionT]) -> PositionT | None:
    """The position a client's cursor names (None without one); any other is a 422 on `cursor`."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
    except (binascii.Error, ValueError) as error:
        raise UnprocessableContent(_FOREIGN_CURSOR, field="cursor") from error
    try:
        return position.model_validate_json(raw)
    except ValidationError as error:
        raise UnprocessableContent(_FOREIGN_CURSOR, field="cursor") from error


PageLimit = Annotated[int, Query(ge=1, le=500)]
"""The `limit` query parameter of a list: how many items a page holds at most."""


class PageSlice(NamedTuple, Generic[RowT]):
    """The rows of one page and the cursor of the next (None on the last page)."""

    rows: list[RowT]
    next_cursor: str | None


def slice_page(
    rows: Sequence[RowT], limit: int, position_of: Callable[[RowT], CursorPosition]
) -> PageSlice[RowT]:
    """Split the ``limit + 1`` rows a list query fetched into a page and the next cursor.

    The extra row only says that another page exists; the cursor is the last row shown.
    """
    page = list(rows[:limit])
    more = len(rows) > limit and bool(page)
    return PageSlice(page, encode_cursor(position_of(page[-1])) if more else None)


def page_of(
    rows: Sequence[RowT],
    limit: int,
    position_of: Callable[[RowT], CursorPosition],
    view: Callable[[RowT], ItemT],
) -> Page[ItemT]:
    """The response page of the ``limit + 1`` rows a list query fetched, each row as `view`
    shows it, with the cursor of the next page."""
    page = slice_page(rows, limit, position_of)
    return Page[ItemT](items=[view(row) for row in page.rows], next_cursor=page.next_cursor)
