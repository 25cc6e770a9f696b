"""Which profile field each column of an import names, whatever its spelling.

Spreadsheets name columns as people write them: ``E-Mail``, ``Email Address``, ``Phone Number``,
``First Name``. A column name is folded (case, spaces, hyphens, underscores and dots ignored) and
looked up among the spellings below; a column that names no profile field is left out of every
row and listed in the data-quality report, so a typo shows up there instead of failing rows.

Decisions:
- Two columns naming the same field (``email`` and ``E-Mail``) would make each row ambiguous: in a
  CSV header that refuses the file, in an NDJSON object that row.
- Only the spellings listed are recognised; guessing further (``mail2``, ``contact``) would
  import data into the wrong field silently.
- A NUL character cannot be stored in a text column (PostgreSQL refuses it) and is never part
  of a name or an address: a value holding one refuses its row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from crm_contracts import nul_location
from profile_service.domain.import_parsing import ImportFormatError
from profile_service.domain.profiles import PROFILE_FIELDS

__all__ = ["MAX_REPORTED_COLUMNS", "ColumnProblem", "ImportColumns", "profile_field_of"]

MAX_REPORTED_COLUMNS: Final = 100
"""Unknown columns listed in a report at most (an NDJSON file may use any number of keys)."""

_MAX_REMEMBERED: Final = 1_000  # distinct column names whose field is cached

_SEPARATORS: Final = re.compile(r"[\s_.\-]+")

_SPELLINGS: Final[dict[str, tuple[str, ...]]] = {
    "external_id": ("external id", "ext id", "external customer id"),
    "email": ("email", "e-mail", "email address", "e-mail address", "mail", "mail address"),
    "phone": (
        "phone",
        "phone number",
        "phone no",
        "telephone",
        "telephone number",
        "tel",
        "mobile",
        "mobile phone",
        "mobile number",
        "cell phone",
    ),
    "first_name": ("first name", "given name", "forename", "firstname"),
    "last_name": ("last name", "surname", "family name", "lastname"),
    "time_zone": ("time zone", "timezone", "tz"),
    "locale": ("locale", "language"),
    "tags": ("tags", "tag"),
    "attributes": ("attributes",),
}


def _folded(name: str) -> str:
    return _SEPARATORS.sub("", name.casefold())


_FIELD_OF_FOLDED: Final = {
    _folded(spelling): field
    for field in PROFILE_FIELDS
    for spelling in (field, *_SPELLINGS.get(field, ()))
}


def profile_field_of(column: str) -> str | None:
    """The profile field a column name stands for, or None if it names none."""
    return _FIELD_OF_FOLDED.get(_folded(column))


@dataclass(frozen=True, slots=True)
class ColumnProblem:
    """Why a row's fields cannot be taken as they are (a reason code, the sentence, the field)."""

    code: str
    reason: str
    field: str | None = None


class ImportColumns:
    """The column names of one import: mapped to fields, the renamed and the unknown remembered."""

    __slots__ = ("_field_of", "_renamed", "_unknown")

    def __init__(self) -> None:
        self._field_of: dict[str, str | None] = {}
        self._renamed: dict[str, str] = {}
        self._unknown: dict[str, None] = {}  # an ordered set

    @property
    def renamed(self) -> dict[str, str]:
        """Columns read as a profile field under another spelling, e.g. ``{"e-mail": "email"}``."""
        return dict(self._renamed)

    @property
    def unknown(self) -> tuple[str, ...]:
        """Columns that name no profile field, in the order first seen (the first 100)."""
        return tuple(self._unknown)

    def check_header(self, columns: Iterable[str]) -> None:
        """Map a CSV header up front; refuse it if two columns name the same field."""
        first_of: dict[str, str] = {}
        for column in columns:
            field = self._field(column)
            if field is None:
                continue
            if field in first_of:
                raise ImportFormatError(
                    f"columns {first_of[field]!r} and {column!r} both name the field {field}: "
                    "keep one of them"
                )
            first_of[field] = column

    def profile_fields(self, row: Mapping[str, Any]) -> dict[str, Any] | ColumnProblem:
        """The row's values under their profile field names, unknown columns left out."""
        fields: dict[str, Any] = {}
        source: dict[str, str] = {}
        for column, value in row.items():
            field = self._field(column)
            if field is None:
                continue
            if field in fields:
                return ColumnProblem(
                    "duplicate_field",
                    f"{source[field]!r} and {column!r} both give the field {field}",
                    field,
                )
            if (location := nul_location(value)) is not None:
                at = ".".join((field, *location))
                return ColumnProblem(
                    "nul_character", f"{at} holds a NUL character, which cannot be stored", at
                )
            fields[field] = value
            source[field] = column
        return fields

    def _field(self, column: str) -> str | None:
        if column in self._field_of:
            return self._field_of[column]
        field = profile_field_of(column)
        # Bounded memory whatever an NDJSON file's keys: past these sizes, stop remembering.
        if field is None and len(self._unknown) < MAX_REPORTED_COLUMNS:
            self._unknown[column] = None
        elif field not in (None, column) and len(self._renamed) < MAX_REPORTED_COLUMNS:
            self._renamed[column] = field
        if len(self._field_of) < _MAX_REMEMBERED:
            self._field_of[column] = field
        return field
