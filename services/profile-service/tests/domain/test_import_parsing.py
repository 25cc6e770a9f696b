import csv
import io
import json
import random
import tracemalloc
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from profile_service.domain.import_parsing import (
    ACCEPTED_CONTENT_TYPES,
    MAX_RECORD_BYTES,
    CsvRowParser,
    ImportFormatError,
    NdjsonRowParser,
    ParsedRow,
    RowError,
    RowParser,
    RowResult,
    UnsupportedImportFormat,
    parser_for,
)

# Factories


def csv_file(*lines: str, newline: str = "\n", final_newline: bool = True) -> bytes:
    text = newline.join(lines) + (newline if final_newline else "")
    return text.encode()


def ndjson_file(*objects: object) -> bytes:
    return "".join(json.dumps(obj) + "\n" for obj in objects).encode()


def parse(
    parser: RowParser, data: bytes, chunk_sizes: Iterable[int] | None = None
) -> list[RowResult]:
    """Everything ``parser`` returns for ``data``, fed whole or in chunks of the given sizes."""
    results: list[RowResult] = []
    if chunk_sizes is None:
        results += parser.feed(data)
    else:
        position = 0
        sizes = iter(chunk_sizes)
        while position < len(data):
            size = next(sizes)
            results += parser.feed(data[position : position + size])
            position += size
    return results + parser.close()


def parse_csv(data: bytes, chunk_sizes: Iterable[int] | None = None) -> list[RowResult]:
    return parse(CsvRowParser(), data, chunk_sizes)


def parse_ndjson(data: bytes, chunk_sizes: Iterable[int] | None = None) -> list[RowResult]:
    return parse(NdjsonRowParser(), data, chunk_sizes)


def one_byte_at_a_time() -> Iterator[int]:
    while True:
        yield 1


def random_chunk_sizes(seed: int, largest: int) -> Iterator[int]:
    rng = random.Random(seed)
    while True:
        yield rng.randint(1, largest)


def rows(results: list[RowResult]) -> list[tuple[int, dict[str, Any]]]:
    return [(r.line, r.fields) for r in results if isinstance(r, ParsedRow)]


def errors(results: list[RowResult]) -> list[RowError]:
    return [r for r in results if isinstance(r, RowError)]


# CSV: header and cells


def test_header_names_are_trimmed_and_lower_cased():
    results = parse_csv(csv_file(" Email , First_Name", "ann@x.com,Ann"))
    assert rows(results) == [(2, {"email": "ann@x.com", "first_name": "Ann"})]


def test_quoted_header_names_are_read_like_plain_ones():
    results = parse_csv(csv_file('"Email","First Name"', '"ann@x.com","Ann"'))
    assert rows(results) == [(2, {"email": "ann@x.com", "first name": "Ann"})]


def test_first_data_row_is_line_two():
    results = parse_csv(csv_file("email", "a@x.com", "b@x.com"))
    assert [line for line, _ in rows(results)] == [2, 3]


def test_cells_are_trimmed_and_empty_cells_are_absent():
    results = parse_csv(csv_file("email,phone,first_name", "  a@x.com ,, Ann  "))
    assert rows(results) == [(2, {"email": "a@x.com", "first_name": "Ann"})]


def test_short_row_lacks_the_trailing_columns():
    results = parse_csv(csv_file("email,phone,first_name", "a@x.com"))
    assert rows(results) == [(2, {"email": "a@x.com"})]


def test_row_with_more_cells_than_the_header_is_an_error_and_reading_goes_on():
    results = parse_csv(csv_file("email,phone", "a@x.com,1,extra", "b@x.com"))
    assert errors(results) == [RowError(2, "has 3 cells, the header has 2", code="too_many_cells")]
    assert rows(results) == [(3, {"email": "b@x.com"})]


def test_blank_lines_and_rows_of_empty_cells_are_skipped_but_counted_as_lines():
    results = parse_csv(csv_file("", "email,phone", "", "   ", ",", "a@x.com", "\r"))
    assert results == [ParsedRow(6, {"email": "a@x.com"})]


def test_last_record_without_a_final_line_break_is_read_on_close():
    parser = CsvRowParser()
    assert parser.feed(csv_file("email", "a@x.com", final_newline=False)) == []
    assert parser.close() == [ParsedRow(2, {"email": "a@x.com"})]


def test_crlf_line_breaks_are_read_like_lf():
    lf = parse_csv(csv_file("email,name", 'a@x.com,"Lee, Ann"', "b@x.com,Bo"))
    crlf = parse_csv(csv_file("email,name", 'a@x.com,"Lee, Ann"', "b@x.com,Bo", newline="\r\n"))
    assert crlf == lf


def test_byte_order_mark_is_dropped_even_when_split_across_chunks():
    data = b"\xef\xbb\xbf" + csv_file("email", "a@x.com")
    assert rows(parse_csv(data, one_byte_at_a_time())) == [(2, {"email": "a@x.com"})]


# CSV: quoting


def test_quoted_cell_keeps_commas():
    results = parse_csv(csv_file("email,name", 'a@x.com,"Lee, Ann"'))
    assert rows(results) == [(2, {"email": "a@x.com", "name": "Lee, Ann"})]


def test_doubled_quote_inside_quotes_is_one_quote():
    results = parse_csv(csv_file("email,nickname", 'a@x.com,"the ""boss"""'))
    assert rows(results) == [(2, {"email": "a@x.com", "nickname": 'the "boss"'})]


def test_quoted_newline_stays_in_one_record():
    results = parse_csv(csv_file("email,address", 'a@x.com,"1 Main St', 'Springfield"'))
    assert rows(results) == [(2, {"email": "a@x.com", "address": "1 Main St\nSpringfield"})]


def test_quoted_crlf_is_kept_in_the_cell():
    data = csv_file("email,address", 'a@x.com,"1 Main St', 'Springfield"', newline="\r\n")
    assert rows(parse_csv(data)) == [
        (2, {"email": "a@x.com", "address": "1 Main St\r\nSpringfield"})
    ]


def test_row_numbers_count_physical_lines():
    data = csv_file("email,note", 'a@x.com,"one', "two", 'three"', "", "b@x.com,plain")
    assert [line for line, _ in rows(parse_csv(data))] == [2, 6]


def test_stray_quote_inside_an_unquoted_cell_is_kept_as_text():
    data = csv_file("name,note", 'O"Brien,"says ""hi"""', 'Bo,5" screen', "Cy,fine")
    assert rows(parse_csv(data)) == [
        (2, {"name": 'O"Brien', "note": 'says "hi"'}),
        (3, {"name": "Bo", "note": '5" screen'}),
        (4, {"name": "Cy", "note": "fine"}),
    ]


def random_csv_cell(rng: random.Random) -> str:
    text = "".join(rng.choice("aé, \n") for _ in range(rng.randint(0, 4)))
    kind = rng.choice(["plain", "stray quote", "quoted", "text after quotes", "empty"])
    if kind == "plain":
        return "b" + text.replace(",", "").replace("\n", "")
    if kind == "stray quote":
        return 'O"' + text.replace(",", "").replace("\n", "")
    if kind == "quoted":
        return '"' + text.replace('"', '""') + '""x"'
    if kind == "text after quotes":
        return '"' + text + '"tail"s'
    return ""


@pytest.mark.parametrize("seed", range(20))
def test_records_end_where_the_csv_module_ends_them(seed):
    rng = random.Random(seed)
    header = ["c1", "c2", "c3", "c4"]
    lines = [",".join(header)]
    lines += [",".join(random_csv_cell(rng) for _ in range(rng.randint(1, 5))) for _ in range(60)]
    text = "\n".join(lines) + "\n"

    expected: list[tuple[int, object]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    first_line = reader.line_num + 1
    for cells in reader:
        fields = {
            name: cell.strip() for name, cell in zip(header, cells, strict=False) if cell.strip()
        }
        if len(cells) > len(header):
            expected.append((first_line, "too_many_cells"))
        elif fields:
            expected.append((first_line, fields))
        first_line = reader.line_num + 1

    results = parse_csv(text.encode(), random_chunk_sizes(seed, largest=40))
    assert [(r.line, r.fields if isinstance(r, ParsedRow) else r.code) for r in results] == expected


def test_bare_carriage_return_inside_a_row_is_an_error_for_that_row_only():
    results = parse_csv(csv_file("email,note", "a@x.com,one\rtwo", 'b@x.com,"ok"'))
    assert [(e.line, e.code) for e in errors(results)] == [(2, "invalid_csv")]
    assert rows(results) == [(3, {"email": "b@x.com", "note": "ok"})]


def test_record_left_inside_an_open_quote_at_the_end_is_an_error():
    results = parse_csv(csv_file("email,note", "a@x.com,ok", 'b@x.com,"never closed', "more"))
    assert rows(results) == [(2, {"email": "a@x.com", "note": "ok"})]
    assert errors(results) == [
        RowError(3, "ends inside a quoted cell (a closing quote is missing)", code="unclosed_quote")
    ]


# CSV: encoding


def test_chunk_boundary_inside_multibyte_character():
    data = csv_file("first_name,last_name", "Zoë,Müller", "Łukasz,Żółć")
    whole = parse_csv(data)
    assert rows(whole) == [
        (2, {"first_name": "Zoë", "last_name": "Müller"}),
        (3, {"first_name": "Łukasz", "last_name": "Żółć"}),
    ]
    for split_at in range(1, len(data)):
        assert parse_csv(data, [split_at, len(data)]) == whole


def test_invalid_utf8_row_is_an_error_and_the_other_rows_survive():
    data = csv_file("email", "a@x.com") + b"caf\xe9@x.com\n" + csv_file("b@x.com")
    results = parse_csv(data)
    assert rows(results) == [(2, {"email": "a@x.com"}), (4, {"email": "b@x.com"})]
    assert errors(results) == [RowError(3, "is not valid UTF-8 text", code="invalid_utf8")]


def test_results_come_in_file_order_when_rows_and_errors_mix():
    data = csv_file("email", "a@x.com") + b"\xff\n" + csv_file("b@x.com,extra", "c@x.com")
    assert [r.line for r in parse_csv(data)] == [2, 3, 4, 5]


# CSV: whole-file problems


def test_file_without_any_header_is_refused():
    with pytest.raises(ImportFormatError, match="header row"):
        parse_csv(b"")
    with pytest.raises(ImportFormatError, match="header row"):
        parse_csv(b"\n\r\n  \n")


def test_header_with_an_unnamed_column_is_refused():
    with pytest.raises(ImportFormatError, match="column 2 has no name"):
        parse_csv(csv_file("email,,phone", "a@x.com,,1"))


def test_header_of_only_separators_is_refused():
    with pytest.raises(ImportFormatError, match="column 1 has no name"):
        parse_csv(csv_file(",,", "a@x.com"))


def test_header_naming_a_column_twice_is_refused():
    with pytest.raises(ImportFormatError, match="'email' appears twice"):
        parse_csv(csv_file("Email,phone,EMAIL"))


def test_unreadable_header_is_refused():
    with pytest.raises(ImportFormatError, match="line 1"):
        parse_csv(b"em\xffail\na@x.com\n")


def test_unreadable_header_is_refused_with_a_hint_to_save_as_utf8():
    with pytest.raises(ImportFormatError, match=r"line 1.*save it as CSV UTF-8"):
        parse_csv(b"em\xffail\na@x.com\n")


@pytest.mark.parametrize(
    "data",
    [
        "email,name\nada@x.com,Ada\n".encode("utf-16-le"),
        "email,name\nada@x.com,Ada\n".encode("utf-16-be"),
        b"email\x00,name\nada@x.com,Ada\n",
    ],
)
def test_header_holding_nul_bytes_is_refused_as_not_utf8(data: bytes):
    with pytest.raises(ImportFormatError, match=r"line 1\) holds NUL bytes.*UTF-16"):
        parse_csv(data)


def test_utf16_with_its_byte_order_mark_is_refused_at_line_1():
    # The second line decodes (a NUL, then ASCII) but comes after the unreadable first line.
    with pytest.raises(ImportFormatError, match=r"line 1\) is not valid UTF-8"):
        parse_csv("email\nada@x.com\n".encode("utf-16"))


def test_the_header_is_known_once_read():
    parser = CsvRowParser()
    assert parser.header is None
    parse(parser, csv_file(" E-Mail ,Name"))
    assert parser.header == ("e-mail", "name")


def test_feeding_a_closed_parser_is_refused():
    parser = CsvRowParser()
    parse(parser, csv_file("email"))
    with pytest.raises(RuntimeError):
        parser.feed(b"a@x.com\n")


# CSV: oversized records


def test_oversized_line_is_an_error_and_reading_resumes_at_the_next_line():
    huge = "x" * (MAX_RECORD_BYTES + 10)
    data = csv_file("email,note", f"a@x.com,{huge}", "b@x.com,ok")
    for chunk_sizes in (None, random_chunk_sizes(seed=1, largest=70_000)):
        results = parse_csv(data, chunk_sizes)
        assert [(r.line, r.code) for r in errors(results)] == [(2, "row_too_large")]
        assert rows(results) == [(3, {"email": "b@x.com", "note": "ok"})]


def test_oversized_quoted_record_is_skipped_up_to_the_line_break_after_its_closing_quote():
    many_lines = "\n".join(["line, of a long quoted note"] * 40_000)  # > 1 MiB, quotes open
    data = csv_file("email,note", f'a@x.com,"{many_lines}"', "b@x.com,ok")
    for chunk_sizes in (None, random_chunk_sizes(seed=2, largest=50_000)):
        results = parse_csv(data, chunk_sizes)
        assert [(r.line, r.code) for r in errors(results)] == [(2, "row_too_large")]
        assert rows(results) == [(40_002, {"email": "b@x.com", "note": "ok"})]


def test_oversized_line_is_not_buffered():
    parser = CsvRowParser()
    parser.feed(csv_file("email,note"))
    chunk = b"x" * 65_536
    tracemalloc.start()
    try:
        for _ in range(256):  # 16 MiB on one line
            parser.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_RECORD_BYTES
    assert rows(parser.feed(b"\nb@x.com,ok\n")) == [(3, {"email": "b@x.com", "note": "ok"})]


# CSV: chunking does not change the result


def sample_csv() -> bytes:
    lines = ["Email,Phone,First_Name,Note"]
    for n in range(60):
        note = [
            "plain",
            '"with, comma"',
            '"multi\nline\r\nnote"',
            '"say ""hi"""',
            "Zoë Łukasz 日本",
            "",
        ][n % 6]
        lines.append(f"user{n}@example.com,+4930{n:06d},Ann{n},{note}")
    lines.insert(10, "")
    lines.insert(20, "only@email.com,1,2,3,4")
    return "\r\n".join(lines).encode() + b"\r\n\xff\xfe\n" + b'tail@x.com,,,"open'


@pytest.mark.parametrize("seed", range(25))
def test_csv_fed_in_random_chunks_gives_the_same_rows_as_fed_whole(seed):
    data = sample_csv()
    whole = parse_csv(data)
    assert len(rows(whole)) == 60
    assert [e.code for e in errors(whole)] == ["too_many_cells", "invalid_utf8", "unclosed_quote"]
    assert parse_csv(data, random_chunk_sizes(seed, largest=1 + seed * 7)) == whole


def test_csv_fed_one_byte_at_a_time_gives_the_same_rows_as_fed_whole():
    data = sample_csv()
    assert parse_csv(data, one_byte_at_a_time()) == parse_csv(data)


# NDJSON


def test_each_json_object_line_is_a_row_as_given():
    data = ndjson_file({"email": "a@x.com", "tags": ["vip"], "phone": None}, {"Email": "b@x.com"})
    assert rows(parse_ndjson(data)) == [
        (1, {"email": "a@x.com", "tags": ["vip"], "phone": None}),
        (2, {"Email": "b@x.com"}),
    ]


def test_ndjson_blank_lines_are_skipped_and_line_numbers_stay_physical():
    data = b'\n{"a": 1}\r\n   \n{"a": 2}'
    assert rows(parse_ndjson(data)) == [(2, {"a": 1}), (4, {"a": 2})]


def test_line_that_is_not_json_is_an_error_naming_the_problem():
    results = parse_ndjson(b'{"a": 1}\n{"a": \n{"a": 3}\n')
    assert rows(results) == [(1, {"a": 1}), (3, {"a": 3})]
    [error] = errors(results)
    assert (error.line, error.code) == (2, "invalid_json")
    assert error.reason.startswith("not valid JSON: Expecting value")


@pytest.mark.parametrize("line", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_an_error(line):
    assert parse_ndjson(line) == [
        RowError(1, "each line must be a JSON object", code="not_a_json_object")
    ]


def test_nan_is_not_json():
    [error] = errors(parse_ndjson(b'{"score": NaN}\n'))
    assert error.code == "invalid_json"
    assert "NaN" in error.reason


def test_ndjson_invalid_utf8_line_is_an_error():
    assert parse_ndjson(b'{"a": "\xff"}\n') == [
        RowError(1, "is not valid UTF-8 text", code="invalid_utf8")
    ]


def test_ndjson_byte_order_mark_is_dropped():
    assert rows(parse_ndjson(b'\xef\xbb\xbf{"a": 1}\n', one_byte_at_a_time())) == [(1, {"a": 1})]


def test_ndjson_oversized_line_is_an_error_and_reading_resumes():
    data = ndjson_file({"a": "x" * MAX_RECORD_BYTES}, {"a": 2})
    for chunk_sizes in (None, random_chunk_sizes(seed=3, largest=70_000)):
        results = parse_ndjson(data, chunk_sizes)
        assert [(r.line, r.code) for r in errors(results)] == [(1, "row_too_large")]
        assert rows(results) == [(2, {"a": 2})]


def test_empty_ndjson_file_has_no_rows():
    assert parse_ndjson(b"") == []


@pytest.mark.parametrize("seed", range(25))
def test_ndjson_fed_in_random_chunks_gives_the_same_rows_as_fed_whole(seed):
    data = (
        ndjson_file(*({"n": n, "name": "Zoë Łukasz 日本", "note": "a\nb"} for n in range(40)))
        + b"not json\n\xff\n[]\n"
        + b'{"last": true}'
    )
    whole = parse_ndjson(data)
    assert len(rows(whole)) == 41
    assert [e.code for e in errors(whole)] == ["invalid_json", "invalid_utf8", "not_a_json_object"]
    assert parse_ndjson(data, random_chunk_sizes(seed, largest=1 + seed * 7)) == whole


# Choosing a parser


@pytest.mark.parametrize(
    ("content_type", "parser_type"),
    [
        ("text/csv", CsvRowParser),
        ("Text/CSV; charset=UTF-8", CsvRowParser),
        ('text/csv; header=present; charset="utf-8"', CsvRowParser),
        ("application/x-ndjson", NdjsonRowParser),
        ("application/ndjson", NdjsonRowParser),
        ("application/jsonl; charset=utf-8", NdjsonRowParser),
    ],
)
def test_parser_is_chosen_by_content_type(content_type, parser_type):
    assert type(parser_for(content_type)) is parser_type


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "", "text/csv; charset=latin-1"]
)
def test_unsupported_content_type_is_refused_listing_the_accepted_ones(content_type):
    with pytest.raises(UnsupportedImportFormat) as caught:
        parser_for(content_type)
    assert all(accepted in str(caught.value) for accepted in ACCEPTED_CONTENT_TYPES)
