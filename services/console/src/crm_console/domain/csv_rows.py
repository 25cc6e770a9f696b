"""Items of a service's list as CSV lines: chosen columns, flattened values, no formulas."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A cell starting with one of these is a formula to a spreadsheet (CSV injection, OWASP):
# customer-supplied text is prefixed with a quote so it stays text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    """A CSV column: its header and the dotted path of the value in an item."""

    header: str
    path: str


def cell(value: Any) -> str:
    """One value as CSV text: money as its amount, lists joined by ';', formulas defused."""
    if value is None:
        return ""
    if isinstance(value, Mapping) and "amount" in value:
        return str(value["amount"])
    if isinstance(value, list | tuple):
        return ";".join(cell(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def value_at(item: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a JSON object, None where the path ends early."""
    current: Any = item
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def csv_line(values: Sequence[str]) -> str:
    """One CSV record (RFC 4180 quoting, CRLF)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def header_line(columns: Sequence[Column]) -> str:
    """The header record."""
    return csv_line([column.header for column in columns])


def item_line(item: Mapping[str, Any], columns: Sequence[Column]) -> str:
    """The record of one item."""
    return csv_line([cell(value_at(item, column.path)) for column in columns])
