"""Opaque cursors for keyset pagination: the client sends back what the last page gave."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from crm_shared.errors import UnprocessableContent

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a list; `next_cursor` is null on the last page."""

    items: list[ItemT]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to fetch the next page; null at the end."
    )


def encode_cursor(position: dict[str, Any]) -> str:
    """Encode the sort key of the last item returned."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """Decode a cursor from a client; a tampered or foreign one is a 422 on `cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise UnprocessableContent("cursor is not one this API issued", field="cursor") from exc
    if not isinstance(position, dict):
        raise UnprocessableContent("cursor is not one this API issued", field="cursor")
    return position
