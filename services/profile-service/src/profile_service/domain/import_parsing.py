"""Reading bulk-import files (CSV and NDJSON) row by row, in bounded memory.

The parsers are sans-I/O: the caller reads the upload in chunks of any size and hands each chunk
to ``feed``; the parser returns the rows completed by that chunk and keeps only the unfinished
record. ``close`` flushes the last record. A chunk may end anywhere, even inside a quoted cell
or a multi-byte UTF-8 character: bytes are decoded per record, once the record is complete.

A problem with one row is returned as a :class:`RowError` in the row's place, so an import goes
on and reports every bad row. A problem with the whole file (no header, duplicate column names,
an unsupported content type) raises.

Records are capped at :data:`MAX_RECORD_BYTES` (1 MiB). A longer record becomes a row error and
its bytes are discarded as they arrive (never buffered); reading resumes after the next line
break outside quotes (while discarding, quotes are simply counted: the break must follow an
even number of them). In a CSV file whose quoted cell is never closed, that can be the end of
the file: everything after the opening quote is one oversized record.
"""

from __future__ import annotations

import bisect
import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn, TypeAlias

__all__ = [
    "ACCEPTED_CONTENT_TYPES",
    "MAX_RECORD_BYTES",
    "CsvRowParser",
    "ImportFormatError",
    "NdjsonRowParser",
    "ParsedRow",
    "RowError",
    "RowParser",
    "RowResult",
    "UnsupportedImportFormat",
    "parser_for",
]

MAX_RECORD_BYTES: Final = 1024 * 1024

CSV_CONTENT_TYPES: Final = ("text/csv",)
NDJSON_CONTENT_TYPES: Final = ("application/x-ndjson", "application/ndjson", "application/jsonl")
ACCEPTED_CONTENT_TYPES: Final = CSV_CONTENT_TYPES + NDJSON_CONTENT_TYPES
# Rows are decoded as UTF-8; ASCII is a subset of it.
_ACCEPTED_CHARSETS: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})

_BOM: Final = b"\xef\xbb\xbf"

# Where a CSV record ends: at a line break outside a quoted cell. "Quoted" is read as the csv
# module reads it, so both always agree: a cell is quoted only if it starts with a quote; in it,
# "" is a quote and a lone " closes it; a quote anywhere else is text (5" screen, O"Brien).
_CELL: Final = rb'(?:"(?:[^"]++|"")*+"[^,]*+|[^",][^,]*+|)'
# A line that holds whole records, starting outside quotes:
_IS_WHOLE_RECORD: Final = re.compile(rb"%s(?:,%s)*+" % (_CELL, _CELL)).fullmatch
# A line that closes the quoted cell an earlier line left open:
_CLOSES_QUOTED_CELL: Final = re.compile(rb'(?:[^"]++|"")*+"[^,]*+(?:,%s)*+' % _CELL).fullmatch
_NOT_UTF8: Final = (
    ": the import reads UTF-8 text, and this file looks like UTF-16, another encoding or "
    "binary data; save it as CSV UTF-8"
)
_TOO_LARGE: Final = (
    f"is larger than {MAX_RECORD_BYTES} bytes (1 MiB); "
    "skipped up to the next line break outside quotes"
)


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One record of the file: its cells by column name, and the line it starts on (1-based)."""

    line: int
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that could not be read or accepted, and why.

    ``code`` is a short stable identifier for reports (e.g. ``too_many_cells``); ``reason`` is
    the sentence shown to the user.
    """

    line: int
    reason: str
    field: str | None = None
    code: str = "invalid_row"


RowResult: TypeAlias = ParsedRow | RowError


class ImportFormatError(ValueError):
    """The file as a whole cannot be imported (no header, unnamed or duplicate columns...)."""


class UnsupportedImportFormat(ValueError):
    """The upload's content type is not one the import reads."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}; accepted: {', '.join(ACCEPTED_CONTENT_TYPES)} (UTF-8)")
        self.accepted = ACCEPTED_CONTENT_TYPES


class _LineStream:
    """What both parsers share: splitting chunks into lines, the line count, the byte order mark.

    The unfinished last line is kept as a list of pieces and joined once its line break comes,
    so a long line arriving in many small chunks costs linear, not quadratic, time.
    """

    __slots__ = ("_at_start", "_closed", "_line", "_unfinished", "_unfinished_size")

    def __init__(self) -> None:
        self._unfinished: list[bytes] = []  # the current line's bytes, before its line break
        self._unfinished_size = 0
        self._line = 0  # physical lines completed so far
        self._at_start = True  # nothing consumed yet: a byte order mark may come
        self._closed = False

    def _complete_lines(self, chunk: bytes) -> list[bytes]:
        """The lines ``chunk`` completes (without their line breaks); keeps what follows."""
        if self._closed:
            raise RuntimeError("the parser is closed")
        chunk = bytes(chunk)
        if self._at_start:
            chunk = b"".join((*self._unfinished, chunk))
            self._unfinished, self._unfinished_size = [], 0
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._unfinished, self._unfinished_size = [chunk], len(chunk)
                return []
            self._at_start = False
            chunk = chunk.removeprefix(_BOM)
        lines = chunk.split(b"\n")
        last = lines.pop()
        if lines and self._unfinished:
            lines[0] = b"".join((*self._unfinished, lines[0]))
            self._unfinished, self._unfinished_size = [], 0
        if last:
            self._unfinished.append(last)
            self._unfinished_size += len(last)
        return lines

    def _drop_unfinished(self) -> list[bytes]:
        """Forget the unfinished line (it belongs to a record being skipped); return its pieces."""
        pieces, self._unfinished, self._unfinished_size = self._unfinished, [], 0
        return pieces

    def _last_line(self) -> bytes:
        """At the end of the file: the bytes after the last line break."""
        data = b"".join(self._unfinished)
        if self._at_start:
            data = data.removeprefix(_BOM)
        self._unfinished, self._unfinished_size = [], 0
        self._at_start, self._closed = False, True
        return data


class CsvRowParser(_LineStream):
    """Streams a CSV file (RFC 4180) into rows keyed by the lower-cased header names.

    - The first record is the header; column names are trimmed and lower-cased and must be
      present and unique, else :class:`ImportFormatError`. A header that is not UTF-8 or holds
      NUL bytes (UTF-16 text, binary data) refuses the file the same way.
    - Quoted cells may hold commas, line breaks and doubled quotes (``""``). A record ends at
      a line break outside a quoted cell; its line number is the physical line it starts on
      (the header is line 1), so line numbers match what a text editor shows.
    - Cells are trimmed; empty cells are left out of ``fields``, so a missing column and an
      empty cell mean the same thing. Lines that are blank, or hold only empty cells, are
      skipped without a row.
    - A row with more cells than the header is a :class:`RowError`; a shorter row simply lacks
      the trailing columns.
    - Line breaks may be ``\\n`` or ``\\r\\n``; a leading UTF-8 byte order mark is dropped.
    - Quoting is read leniently, as the csv module does: a quote inside an unquoted cell is
      kept as text (``5" screen``), and so is text after a quoted cell's closing quote. A
      quoted cell longer than the csv module's field limit (131,072 characters) is a row error.
    """

    __slots__ = (
        "_header",
        "_header_line",
        "_open_lines",
        "_open_size",
        "_open_start",
        "_skip_in_quotes",
        "_skipping",
    )

    def __init__(self) -> None:
        super().__init__()
        self._header: tuple[str, ...] | None = None
        self._header_line = 0
        # A record whose quotes are still open at a line break spans several lines:
        self._open_lines: list[bytes] | None = None
        self._open_start = 0
        self._open_size = 0
        # Discarding an oversized record until a line break outside quotes:
        self._skipping = False
        self._skip_in_quotes = False

    def feed(self, chunk: bytes) -> list[RowResult]:
        """Consume the next chunk of the file; return the rows it completed, in file order."""
        lines = self._complete_lines(chunk)
        results = self._read_lines(lines) if lines else []
        if self._skipping:
            for piece in self._drop_unfinished():
                self._skip_in_quotes ^= piece.count(b'"') & 1 == 1
        elif self._unfinished_size + self._open_size > MAX_RECORD_BYTES:
            odd_quotes = sum(piece.count(b'"') for piece in self._drop_unfinished()) & 1 == 1
            start = self._line + 1 if self._open_lines is None else self._open_start
            # Quotes are open if the record so far holds an odd number of them.
            self._start_skipping(in_quotes=odd_quotes != (self._open_lines is not None))
            self._reject(results, start, _TOO_LARGE, "row_too_large")
        return results

    def close(self) -> list[RowResult]:
        """Finish the file: return its last rows; raise if it never had a header."""
        if self._closed:
            return []
        data = self._last_line()
        results = self._read_lines([data]) if data and not self._skipping else []
        if self._open_lines is not None:
            self._open_lines = None
            self._reject(
                results,
                self._open_start,
                "ends inside a quoted cell (a closing quote is missing)",
                "unclosed_quote",
            )
        if self._header is None:
            raise ImportFormatError("the file is empty: a header row naming the columns is needed")
        return results

    def _read_lines(self, lines: list[bytes]) -> list[RowResult]:
        """Group complete lines into records, decode them, then read all their cells at once."""
        texts: list[str] = []  # complete records, decoded, without their final line break
        starts: list[int] = []  # the line each of them starts on
        unreadable: list[RowError] = []
        line_number = self._line
        for raw in lines:
            line_number += 1
            if self._skipping:
                if raw.count(b'"') & 1:
                    self._skip_in_quotes = not self._skip_in_quotes
                if not self._skip_in_quotes:
                    self._skipping = False
                continue
            if self._open_lines is not None:
                self._open_lines.append(raw)
                self._open_size += len(raw) + 1
                if b'"' not in raw or not _CLOSES_QUOTED_CELL(raw):
                    if self._open_size > MAX_RECORD_BYTES:
                        self._start_skipping(in_quotes=True)
                        unreadable.append(_too_large(self._open_start))
                    continue
                record, start = b"\n".join(self._open_lines), self._open_start
                self._open_lines, self._open_size = None, 0
            elif b'"' in raw and not _IS_WHOLE_RECORD(raw):
                # The line opens a quoted cell that goes on past this line break.
                self._open_lines, self._open_start, self._open_size = [raw], line_number, len(raw)
                if len(raw) > MAX_RECORD_BYTES:
                    self._start_skipping(in_quotes=True)
                    unreadable.append(_too_large(line_number))
                continue
            else:
                record, start = raw, line_number
            if len(record) > MAX_RECORD_BYTES:
                unreadable.append(_too_large(start))
                continue
            try:
                texts.append(record.decode())
            except UnicodeDecodeError:
                unreadable.append(RowError(start, "is not valid UTF-8 text", code="invalid_utf8"))
                continue
            starts.append(start)
        self._line = line_number
        if unreadable and self._header is None:
            # Only a header before the first unreadable record lets reading go past it.
            before = bisect.bisect_left(starts, unreadable[0].line)
            results = self._rows_from_records(texts[:before], starts[:before])
            if self._header_line:  # the header was among them
                results += self._rows_from_records(texts[before:], starts[before:])
        else:
            results = self._rows_from_records(texts, starts)
        if unreadable:
            if self._header is None or unreadable[0].line < self._header_line:
                hint = _NOT_UTF8 if unreadable[0].code == "invalid_utf8" else ""
                raise ImportFormatError(
                    f"header (line {unreadable[0].line}) {unreadable[0].reason}{hint}"
                )
            results = sorted([*results, *unreadable], key=_by_line)
        return results

    def _rows_from_records(self, texts: list[str], starts: list[int]) -> list[RowResult]:
        results: list[RowResult] = []
        append, strip, csv_error = results.append, str.strip, csv.Error  # the hot loop's names
        header = self._header
        width = len(header) if header else 0
        for cells, line in zip(_read_cells(texts), starts, strict=True):
            if isinstance(cells, csv_error):
                self._reject(results, line, f"is not valid CSV: {cells}", "invalid_csv")
            elif header is None:
                header = self._set_header(cells, line)
                width = len(header) if header else 0
            elif len(cells) > width:
                message = f"has {len(cells)} cells, the header has {width}"
                append(RowError(line, message, code="too_many_cells"))
            else:
                # dict(zip(map(...))) runs in C; the filter below is for the rarer empty cells.
                fields = dict(zip(header, map(strip, cells), strict=False))
                if "" in fields.values():
                    fields = {name: value for name, value in fields.items() if value}
                if fields:
                    append(ParsedRow(line, fields))
        return results

    @property
    def header(self) -> tuple[str, ...] | None:
        """The column names (trimmed, lower-cased), once the header has been read."""
        return self._header

    def _set_header(self, cells: list[str], line: int) -> tuple[str, ...] | None:
        names = tuple(cell.strip().lower() for cell in cells)
        if names in ((), ("",)):
            return None  # a blank line before the header
        if any("\x00" in name for name in names):
            # UTF-16 text read as UTF-8 has a NUL beside every ASCII letter.
            raise ImportFormatError(f"header (line {line}) holds NUL bytes{_NOT_UTF8}")
        seen: set[str] = set()
        for position, name in enumerate(names, start=1):
            if not name:
                raise ImportFormatError(f"header (line {line}): column {position} has no name")
            if name in seen:
                raise ImportFormatError(f"header (line {line}): column {name!r} appears twice")
            seen.add(name)
        self._header, self._header_line = names, line
        return names

    def _start_skipping(self, *, in_quotes: bool) -> None:
        """Drop the oversized record read so far; discard its rest up to a break outside quotes."""
        self._open_lines, self._open_size = None, 0
        self._skipping, self._skip_in_quotes = True, in_quotes

    def _reject(self, results: list[RowResult], line: int, reason: str, code: str) -> None:
        if self._header is None:
            raise ImportFormatError(f"header (line {line}) {reason}")
        results.append(RowError(line, reason, code=code))


def _read_cells(records: list[str]) -> Sequence[list[str] | csv.Error]:
    """The cells of each record; a record the csv module rejects gets its error instead."""
    # One reader over the whole batch is about twice as fast as one reader per record. If one
    # record is rejected (a bare carriage return in an unquoted cell, an over-long cell) or a
    # record runs into the next (which _IS_WHOLE_RECORD is built to prevent), the batch is
    # read again record by record, so each record stands alone.
    try:
        cells = list(csv.reader(records))
    except csv.Error:
        pass
    else:
        if len(cells) == len(records):
            return cells
    return [_read_one(record) for record in records]


def _read_one(record: str) -> list[str] | csv.Error:
    try:
        return next(csv.reader((record,)), [])
    except csv.Error as exc:
        return exc


def _too_large(line: int) -> RowError:
    return RowError(line, _TOO_LARGE, code="row_too_large")


def _by_line(result: RowResult) -> int:
    return result.line


class NdjsonRowParser(_LineStream):
    """Streams newline-delimited JSON: each non-blank line must be one JSON object.

    The object becomes ``fields`` as it is (keys and values untouched; ``null`` stays ``None``).
    ``NaN`` and ``Infinity`` are refused: they are not JSON.
    """

    __slots__ = ("_skipping",)

    def __init__(self) -> None:
        super().__init__()
        self._skipping = False  # discarding an oversized line until its line break

    def feed(self, chunk: bytes) -> list[RowResult]:
        """Consume the next chunk of the file; return the rows it completed, in file order."""
        lines = self._complete_lines(chunk)
        results: list[RowResult] = []
        if self._skipping and lines:
            # The oversized line ends at the first line break of this chunk.
            self._skipping = False
            self._line += 1
            del lines[0]
        if lines:
            self._consume_lines(lines, results)
        if self._skipping:
            self._drop_unfinished()
        elif self._unfinished_size > MAX_RECORD_BYTES:
            self._drop_unfinished()
            self._skipping = True
            results.append(_too_large(self._line + 1))
        return results

    def close(self) -> list[RowResult]:
        """Finish the file: return the last row if it had no final line break."""
        if self._closed:
            return []
        results: list[RowResult] = []
        data = self._last_line()
        if data and not self._skipping:
            self._consume_lines([data], results)
        return results

    def _consume_lines(self, lines: list[bytes], results: list[RowResult]) -> None:
        decode = _JSON.decode
        line_number = self._line
        for raw in lines:
            line_number += 1
            if len(raw) > MAX_RECORD_BYTES:
                results.append(_too_large(line_number))
                continue
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                results.append(
                    RowError(line_number, "is not valid UTF-8 text", code="invalid_utf8")
                )
                continue
            if not text or text.isspace():
                continue
            try:
                value = decode(text)
            except json.JSONDecodeError as exc:
                results.append(
                    RowError(
                        line_number,
                        f"not valid JSON: {exc.msg} (column {exc.colno})",
                        code="invalid_json",
                    )
                )
                continue
            except ValueError as exc:  # NaN or Infinity, refused by the decoder
                results.append(RowError(line_number, f"not valid JSON: {exc}", code="invalid_json"))
                continue
            except RecursionError:
                results.append(
                    RowError(line_number, "not valid JSON: nested too deeply", code="invalid_json")
                )
                continue
            if type(value) is not dict:
                results.append(
                    RowError(
                        line_number, "each line must be a JSON object", code="not_a_json_object"
                    )
                )
                continue
            results.append(ParsedRow(line_number, value))
        self._line = line_number


RowParser: TypeAlias = CsvRowParser | NdjsonRowParser


def parser_for(content_type: str) -> RowParser:
    """A fresh parser for an upload's ``Content-Type`` (parameters such as charset allowed)."""
    media_type, *parameters = (part.strip() for part in content_type.split(";"))
    media_type = media_type.lower()
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in _ACCEPTED_CHARSETS:
            raise UnsupportedImportFormat(f"charset {charset!r} is not supported")
    if media_type in CSV_CONTENT_TYPES:
        return CsvRowParser()
    if media_type in NDJSON_CONTENT_TYPES:
        return NdjsonRowParser()
    raise UnsupportedImportFormat(f"content type {media_type!r} cannot be imported")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed")


# One decoder for every line: json.loads with options would build a new one per call.
_JSON: Final = json.JSONDecoder(parse_constant=_refuse_constant)
