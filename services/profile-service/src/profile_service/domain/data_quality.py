"""The data-quality report of a bulk import: what was read, what was kept, what was wrong.

The import tallies each row as it goes (:class:`DataQualityTally`, cheap and mutable) and hands
the user a frozen :class:`DataQualityReport` at the end. Each row read is tallied exactly once,
as valid or as invalid; each valid row that reaches a customer is then tallied once more, as a
customer created or a customer updated.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from profile_service.domain.import_parsing import RowError

__all__ = [
    "COMPLETENESS_FIELDS",
    "DataQualityReport",
    "DataQualityTally",
    "FieldCompleteness",
    "InvalidRow",
    "NormalisationCounts",
]

# The profile fields whose presence the report measures, in the order it lists them.
COMPLETENESS_FIELDS: Final = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "external_id",
    "time_zone",
    "locale",
)

_REASON_CODE: Final = re.compile(r"[a-z][a-z0-9_]*")


class FieldCompleteness(BaseModel):
    """How many valid rows carried a field, and what share of the valid rows that is."""

    model_config = ConfigDict(frozen=True)

    rows: int = Field(ge=0, description="Valid rows that had this field.")
    percent: float = Field(
        ge=0, le=100, description="Share of valid rows that had it, 0-100, one decimal."
    )


class NormalisationCounts(BaseModel):
    """How many values were accepted but rewritten into their canonical form."""

    model_config = ConfigDict(frozen=True)

    emails_changed: int = Field(ge=0, description='e.g. "Ann@X.com" stored as "ann@x.com".')
    phones_changed: int = Field(ge=0, description='e.g. "030 123456" stored as "+4930123456".')


class InvalidRow(BaseModel):
    """One row that was not imported: where it is, which field was at fault, and why."""

    model_config = ConfigDict(frozen=True)

    line: int = Field(ge=1, description="Line of the file where the row starts (1-based).")
    code: str = Field(description="Stable reason code, e.g. invalid_email.")
    field: str | None = Field(description="The field at fault, if one field was.")
    reason: str = Field(description="What is wrong, in words the user can act on.")


class DataQualityReport(BaseModel):
    """The outcome of one import, for the user who uploaded the file."""

    model_config = ConfigDict(frozen=True)

    rows_read: int = Field(ge=0, description="Rows found in the file (blank lines excluded).")
    rows_valid: int = Field(ge=0, description="Rows that could be applied to a customer.")
    rows_invalid: int = Field(ge=0, description="Rows rejected; each is listed in invalid_rows.")
    customers_created: int = Field(ge=0, description="New customers the import created.")
    customers_updated: int = Field(ge=0, description="Rows applied to an existing customer.")
    duplicates_in_file: int = Field(
        ge=0,
        description="Rows naming a customer an earlier row of the same file created or updated.",
    )
    matched_existing: int = Field(
        ge=0, description="Rows naming a customer who existed before the import."
    )
    completeness: dict[str, FieldCompleteness] = Field(
        description="For each profile field, how many valid rows had it."
    )
    normalised: NormalisationCounts
    invalid_reasons: dict[str, int] = Field(
        description="How many rows were rejected for each reason code, most frequent first."
    )
    invalid_rows: tuple[InvalidRow, ...] = Field(description="Every rejected row, in file order.")
    renamed_columns: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Columns read as a profile field under another spelling, e.g. {"e-mail": "email"}.'
        ),
    )
    unknown_columns: tuple[str, ...] = Field(
        default=(),
        description=(
            "Columns (CSV header names, NDJSON keys) that name no profile field: their values "
            "were not imported. The first 100."
        ),
    )


class DataQualityTally:
    """Counts an import's rows as they are processed, to produce its :class:`DataQualityReport`.

    Call exactly one of :meth:`record_valid` or :meth:`record_invalid` per row read. For a valid
    row, then call :meth:`record_created` or :meth:`record_updated` once it is applied. A row
    found invalid only while being matched (e.g. two identities pointing at two customers) is
    recorded as invalid, not as valid.
    """

    __slots__ = (
        "_columns_renamed",
        "_columns_unknown",
        "_customers_created",
        "_customers_updated",
        "_duplicates_in_file",
        "_emails_changed",
        "_fields_present",
        "_invalid_reasons",
        "_invalid_rows",
        "_matched_existing",
        "_phones_changed",
        "_rows_invalid",
        "_rows_valid",
    )

    def __init__(self) -> None:
        self._rows_valid = 0
        self._rows_invalid = 0
        self._customers_created = 0
        self._customers_updated = 0
        self._duplicates_in_file = 0
        self._matched_existing = 0
        self._emails_changed = 0
        self._phones_changed = 0
        self._fields_present: Counter[str] = Counter()
        self._invalid_reasons: Counter[str] = Counter()
        self._invalid_rows: list[InvalidRow] = []
        self._columns_renamed: dict[str, str] = {}
        self._columns_unknown: tuple[str, ...] = ()

    def record_valid(
        self,
        fields_present: Iterable[str],
        email_changed: bool = False,
        phone_changed: bool = False,
    ) -> None:
        """A row accepted for import, with the profile fields it carried (others are ignored).

        ``email_changed`` / ``phone_changed``: the value was valid but stored in a different
        form than written (case, spacing, national format).
        """
        self._rows_valid += 1
        self._fields_present.update(set(fields_present).intersection(COMPLETENESS_FIELDS))
        self._emails_changed += email_changed
        self._phones_changed += phone_changed

    def record_invalid(self, line: int, code: str, reason: str, field: str | None = None) -> None:
        """A row that will not be imported.

        ``code`` is a short stable snake_case code that groups rows in the report (e.g.
        ``invalid_email``, ``missing_identity``, ``ambiguous_identity``); ``reason`` is the
        sentence the user reads.
        """
        if not _REASON_CODE.fullmatch(code):
            raise ValueError(f"reason code {code!r} must be snake_case, e.g. 'invalid_email'")
        self._rows_invalid += 1
        self._invalid_reasons[code] += 1
        self._invalid_rows.append(InvalidRow(line=line, code=code, field=field, reason=reason))

    def record_unreadable(self, error: RowError) -> None:
        """A row the file parser could not read (bad quoting, bad JSON, too many cells...)."""
        self.record_invalid(error.line, error.code, error.reason, error.field)

    def record_columns(self, renamed: Mapping[str, str], unknown: Iterable[str]) -> None:
        """The file's columns read under another name, and those naming no profile field."""
        self._columns_renamed = dict(renamed)
        self._columns_unknown = tuple(unknown)

    def record_created(self) -> None:
        """A valid row created a new customer."""
        self._customers_created += 1

    def record_updated(self, matched_existing: bool, duplicate_in_file: bool) -> None:
        """A valid row was applied to a customer that was already there.

        ``matched_existing``: that customer existed before the import began.
        ``duplicate_in_file``: an earlier row of this file already created or updated them.
        Both can hold: an existing customer listed twice.
        """
        self._customers_updated += 1
        self._matched_existing += matched_existing
        self._duplicates_in_file += duplicate_in_file

    def report(self) -> DataQualityReport:
        """The report as it stands (it can be taken mid-import for progress)."""
        return DataQualityReport(
            rows_read=self._rows_valid + self._rows_invalid,
            rows_valid=self._rows_valid,
            rows_invalid=self._rows_invalid,
            customers_created=self._customers_created,
            customers_updated=self._customers_updated,
            duplicates_in_file=self._duplicates_in_file,
            matched_existing=self._matched_existing,
            completeness=_completeness(self._fields_present, self._rows_valid),
            normalised=NormalisationCounts(
                emails_changed=self._emails_changed, phones_changed=self._phones_changed
            ),
            invalid_reasons=dict(self._invalid_reasons.most_common()),
            invalid_rows=tuple(sorted(self._invalid_rows, key=_by_line)),
            renamed_columns=self._columns_renamed,
            unknown_columns=self._columns_unknown,
        )


def _completeness(present: Counter[str], rows_valid: int) -> dict[str, FieldCompleteness]:
    return {
        field: FieldCompleteness(rows=present[field], percent=_percent(present[field], rows_valid))
        for field in COMPLETENESS_FIELDS
    }


def _percent(part: int, whole: int) -> float:
    """``part`` as a percentage of ``whole`` to one decimal, halves rounded up (0 if no whole)."""
    if whole == 0:
        return 0.0
    # Integer arithmetic: round() on floats would turn 6.25 into 6.2.
    tenths = (part * 2000 + whole) // (2 * whole)
    return tenths / 10


def _by_line(row: InvalidRow) -> int:
    return row.line
