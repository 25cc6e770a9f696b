"""Import columns: common spellings name the profile fields; the rest are set aside and listed."""

from __future__ import annotations

import pytest

from profile_service.domain.import_columns import (
    MAX_REPORTED_COLUMNS,
    ColumnProblem,
    ImportColumns,
    profile_field_of,
)
from profile_service.domain.import_parsing import ImportFormatError


@pytest.mark.parametrize(
    ("column", "field"),
    [
        ("email", "email"),
        ("E-Mail", "email"),
        ("Email Address", "email"),
        ("email_address", "email"),
        (" EMAIL ", "email"),
        ("Phone Number", "phone"),
        ("mobile", "phone"),
        ("First Name", "first_name"),
        ("first-name", "first_name"),
        ("Surname", "last_name"),
        ("External ID", "external_id"),
        ("external_id", "external_id"),
        ("Time-Zone", "time_zone"),
        ("language", "locale"),
        ("Tags", "tags"),
    ],
)
def test_common_spellings_name_a_profile_field(column: str, field: str) -> None:
    assert profile_field_of(column) == field


@pytest.mark.parametrize("column", ["emial", "mail2", "customer no.", "", "e\x00mail", "id"])
def test_other_names_name_no_field(column: str) -> None:
    assert profile_field_of(column) is None


def test_rows_keep_the_known_fields_and_the_columns_are_remembered_for_the_report() -> None:
    columns = ImportColumns()

    fields = columns.profile_fields({"E-Mail": "a@x.com", "Shoe Size": "42", "tags": "vip"})

    assert fields == {"email": "a@x.com", "tags": "vip"}
    assert columns.renamed == {"E-Mail": "email"}
    assert columns.unknown == ("Shoe Size",)


def test_a_header_naming_a_field_twice_is_refused() -> None:
    with pytest.raises(ImportFormatError, match="'email' and 'e-mail' both name the field email"):
        ImportColumns().check_header(("email", "name", "e-mail"))


def test_a_row_naming_a_field_twice_is_a_problem_of_that_row() -> None:
    problem = ImportColumns().profile_fields({"phone": "+4930123456", "Mobile": "+4930654321"})

    assert isinstance(problem, ColumnProblem)
    assert (problem.code, problem.field) == ("duplicate_field", "phone")


@pytest.mark.parametrize(
    "row",
    [
        {"first_name": "A\x00da"},
        {"attributes": {"tier\x00": "gold"}},
        {"attributes": {"tier": ["gold", "x\x00"]}},
    ],
)
def test_a_nul_character_in_a_known_field_is_a_problem_of_that_row(row: dict) -> None:
    problem = ImportColumns().profile_fields(row)

    assert isinstance(problem, ColumnProblem)
    assert problem.code == "nul_character"


def test_a_nul_character_in_an_unknown_column_is_ignored_with_the_column() -> None:
    assert ImportColumns().profile_fields({"email": "a@x.com", "note": "\x00"}) == {
        "email": "a@x.com"
    }


def test_a_deeply_nested_value_is_checked_without_recursion() -> None:
    value: object = "x"
    for _ in range(5_000):
        value = [value]
    assert ImportColumns().profile_fields({"attributes": {"deep": value}}) == {
        "attributes": {"deep": value}
    }


def test_the_report_lists_a_bounded_number_of_unknown_columns() -> None:
    columns = ImportColumns()
    for number in range(3 * MAX_REPORTED_COLUMNS):
        columns.profile_fields({f"key {number}": "x"})

    assert len(columns.unknown) == MAX_REPORTED_COLUMNS
    assert columns.unknown[0] == "key 0"
