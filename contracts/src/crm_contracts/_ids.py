"""Identifiers: UUIDv7 strings, sortable by creation time."""

from __future__ import annotations

import uuid_utils


def new_id() -> str:
    """Return a new UUIDv7 as a string; ids sort by creation time."""
    return str(uuid_utils.uuid7())
