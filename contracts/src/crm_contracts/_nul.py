"""Finding U+0000 in a parsed JSON document, to name the field that holds it.

PostgreSQL stores no NUL in text or jsonb; SQLite does. So that both backends judge alike,
every input is refused when it holds one: HTTP requests at the edge (`crm_shared._nul_guard`)
and events in `decode_event`.
"""

from __future__ import annotations

from typing import Any

NUL_MESSAGE = "text must not contain the NUL character (U+0000)"


def nul_location(document: Any) -> tuple[str, ...] | None:
    """The path of the first string or key holding U+0000 in a JSON document, or None.

    A key holding it is reported as the object that has the key. Walked with a stack rather
    than by recursion: the document is the client's, and so is its depth.
    """
    pending: list[tuple[tuple[str, ...], Any]] = [((), document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path
        elif isinstance(value, dict):
            if any("\x00" in key for key in value):
                return path
            pending.extend(((*path, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            indexed = [((*path, str(index)), item) for index, item in enumerate(value)]
            pending.extend(reversed(indexed))
    return None
