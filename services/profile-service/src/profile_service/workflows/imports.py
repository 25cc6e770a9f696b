"""Bulk import of customers from CSV or NDJSON, streamed and committed in batches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from profile_service.domain.contact import InvalidContact
from profile_service.domain.data_quality import DataQualityReport, DataQualityTally
from profile_service.domain.import_columns import ColumnProblem, ImportColumns
from profile_service.domain.import_parsing import CsvRowParser, ParsedRow, RowError, RowParser
from profile_service.domain.profiles import ProfileChanges, normalise_profile
from profile_service.workflows.bulk_profiles import save_profiles

_QUALITY_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "external_id",
    "time_zone",
    "locale",
)


class CustomerImport:
    """One import run: reads rows, stores them batch by batch, tallies data quality.

    Each batch commits on its own, so a client that disconnects half-way keeps the rows
    already stored, and memory stays bounded whatever the file size.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        parser: RowParser,
        *,
        default_phone_region: str | None,
        batch_size: int,
        clock: Callable[[], datetime],
        after_commit: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._parser = parser
        self._region = default_phone_region
        self._batch_size = batch_size
        self._clock = clock
        self._after_commit = after_commit
        self._tally = DataQualityTally()
        self._touched: set[str] = set()
        self._created: set[str] = set()
        self._columns = ImportColumns()
        self._header_checked = False

    async def run(self, chunks: AsyncIterator[bytes]) -> DataQualityReport:
        """Import every row of the upload and return the data-quality report."""
        batch: list[tuple[int, ProfileChanges]] = []
        async for chunk in chunks:
            batch.extend(self._validate(self._parser.feed(chunk)))
            if len(batch) >= self._batch_size:
                await self._store(batch)
                batch = []
        batch.extend(self._validate(self._parser.close()))
        if batch:
            await self._store(batch)
        self._tally.record_columns(self._columns.renamed, self._columns.unknown)
        return self._tally.report()

    def _validate(self, results: list[ParsedRow | RowError]) -> list[tuple[int, ProfileChanges]]:
        header = self._parser.header if isinstance(self._parser, CsvRowParser) else None
        if header is not None and not self._header_checked:
            # Before any row of the file is stored: a header naming a field twice refuses it.
            self._columns.check_header(header)
            self._header_checked = True
        valid: list[tuple[int, ProfileChanges]] = []
        for result in results:
            if isinstance(result, RowError):
                self._tally.record_invalid(result.line, result.code, result.reason, result.field)
                continue
            fields = self._columns.profile_fields(result.fields)
            if isinstance(fields, ColumnProblem):
                self._tally.record_invalid(result.line, fields.code, fields.reason, fields.field)
                continue
            try:
                changes = normalise_profile(fields, default_phone_region=self._region)
            except InvalidContact as error:
                self._tally.record_invalid(
                    result.line, f"invalid_{error.field.split('.')[0]}", error.reason, error.field
                )
                continue
            if not changes.identities():
                self._tally.record_invalid(
                    result.line,
                    "missing_identity",
                    "a row needs an external_id, email or phone to be matched",
                    None,
                )
                continue
            valid.append((result.line, changes))
        return valid

    async def _store(self, batch: list[tuple[int, ProfileChanges]]) -> None:
        async with self._sessions() as session, session.begin():
            outcomes = await save_profiles(session, batch, now=self._clock())
        for (_, changes), outcome in zip(batch, outcomes, strict=True):
            if outcome.customer_id is None:
                self._tally.record_invalid(
                    outcome.line, outcome.code, outcome.refusal or "", outcome.field
                )
                continue
            present = [name for name in _QUALITY_FIELDS if changes.values.get(name)]
            self._tally.record_valid(
                present, changes.email_was_normalised, changes.phone_was_normalised
            )
            if outcome.created:
                self._tally.record_created()
                self._created.add(outcome.customer_id)
            else:
                self._tally.record_updated(
                    matched_existing=outcome.customer_id not in self._created,
                    duplicate_in_file=outcome.customer_id in self._touched,
                )
            self._touched.add(outcome.customer_id)
        self._after_commit()
