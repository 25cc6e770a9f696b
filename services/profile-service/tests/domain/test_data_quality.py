from collections.abc import Sequence

import pydantic
import pytest

from profile_service.domain.data_quality import (
    COMPLETENESS_FIELDS,
    DataQualityReport,
    DataQualityTally,
)
from profile_service.domain.import_parsing import RowError

# Factories


def tally_of(
    *,
    valid_rows: Sequence[Sequence[str]] = (),
    created: int = 0,
    updates: Sequence[tuple[bool, bool]] = (),
    invalid: Sequence[tuple[int, str]] = (),
) -> DataQualityTally:
    """A tally that saw the given valid rows (their fields), creations, updates and rejections."""
    tally = DataQualityTally()
    for fields in valid_rows:
        tally.record_valid(fields, email_changed=False, phone_changed=False)
    for _ in range(created):
        tally.record_created()
    for matched_existing, duplicate_in_file in updates:
        tally.record_updated(matched_existing=matched_existing, duplicate_in_file=duplicate_in_file)
    for line, code in invalid:
        tally.record_invalid(line, code, f"reason for {code}", field=None)
    return tally


# Counts


def test_empty_import_reports_zeroes():
    report = DataQualityTally().report()
    assert (report.rows_read, report.rows_valid, report.rows_invalid) == (0, 0, 0)
    assert report.completeness["email"].rows == 0
    assert report.completeness["email"].percent == 0.0
    assert report.invalid_reasons == {}
    assert report.invalid_rows == ()


def test_rows_read_are_the_valid_and_the_invalid_rows():
    report = tally_of(valid_rows=[["email"], ["phone"]], invalid=[(4, "invalid_email")]).report()
    assert (report.rows_read, report.rows_valid, report.rows_invalid) == (3, 2, 1)


def test_created_and_updated_customers_are_counted():
    report = tally_of(created=2, updates=[(True, False), (False, True), (True, True)]).report()
    assert report.customers_created == 2
    assert report.customers_updated == 3


def test_existing_customer_listed_twice_counts_as_matched_and_as_duplicate():
    report = tally_of(updates=[(True, False), (True, True)]).report()
    assert report.matched_existing == 2
    assert report.duplicates_in_file == 1


def test_new_customer_listed_twice_is_a_duplicate_but_not_a_match_of_an_existing_one():
    report = tally_of(created=1, updates=[(False, True)]).report()
    assert (report.matched_existing, report.duplicates_in_file) == (0, 1)


# Completeness


def test_completeness_counts_valid_rows_having_each_field():
    report = tally_of(
        valid_rows=[["email", "phone"], ["email"], ["email", "first_name"], ["phone"]]
    ).report()
    assert report.completeness["email"].rows == 3
    assert report.completeness["email"].percent == 75.0
    assert report.completeness["phone"].percent == 50.0
    assert report.completeness["first_name"].percent == 25.0
    assert report.completeness["locale"].percent == 0.0


def test_completeness_lists_every_profile_field_in_a_stable_order():
    assert tuple(tally_of().report().completeness) == COMPLETENESS_FIELDS


def test_completeness_percent_has_one_decimal_rounded_half_up():
    one_in_three = tally_of(valid_rows=[["email"], [], []]).report()
    assert one_in_three.completeness["email"].percent == 33.3
    one_in_sixteen = tally_of(valid_rows=[["email"]] + [[]] * 15).report()
    assert one_in_sixteen.completeness["email"].percent == 6.3  # 6.25 rounds up
    two_in_three = tally_of(valid_rows=[["email"], ["email"], []]).report()
    assert two_in_three.completeness["email"].percent == 66.7


def test_field_named_twice_in_a_row_counts_once_and_other_fields_are_ignored():
    report = tally_of(valid_rows=[["email", "email", "loyalty_points"]]).report()
    assert report.completeness["email"].rows == 1
    assert "loyalty_points" not in report.completeness


def test_invalid_rows_do_not_count_towards_completeness():
    report = tally_of(valid_rows=[["email"]], invalid=[(3, "invalid_phone")]).report()
    assert report.completeness["email"].percent == 100.0


# Normalisation


def test_values_rewritten_by_normalisation_are_counted():
    tally = DataQualityTally()
    tally.record_valid(["email", "phone"], email_changed=True, phone_changed=False)
    tally.record_valid(["email", "phone"], email_changed=True, phone_changed=True)
    tally.record_valid(["email"], email_changed=False, phone_changed=False)
    normalised = tally.report().normalised
    assert (normalised.emails_changed, normalised.phones_changed) == (2, 1)


# Invalid rows


def test_invalid_reasons_are_a_histogram_most_frequent_first():
    report = tally_of(
        invalid=[(2, "invalid_phone"), (3, "invalid_email"), (5, "invalid_email")]
    ).report()
    assert list(report.invalid_reasons.items()) == [("invalid_email", 2), ("invalid_phone", 1)]


def test_every_invalid_row_is_listed_in_file_order_with_field_and_reason():
    tally = DataQualityTally()
    tally.record_invalid(9, "ambiguous_identity", "email and phone name two customers")
    tally.record_invalid(4, "invalid_email", "not a valid email address: ...", field="email")
    report = tally.report()
    assert [(row.line, row.code, row.field) for row in report.invalid_rows] == [
        (4, "invalid_email", "email"),
        (9, "ambiguous_identity", None),
    ]
    assert report.invalid_rows[1].reason == "email and phone name two customers"


def test_unreadable_row_from_the_file_parser_is_recorded_with_its_code():
    tally = DataQualityTally()
    tally.record_unreadable(RowError(7, "has 9 cells, the header has 8", code="too_many_cells"))
    report = tally.report()
    assert report.invalid_reasons == {"too_many_cells": 1}
    assert report.invalid_rows[0].reason == "has 9 cells, the header has 8"


@pytest.mark.parametrize("code", ["Invalid Email", "invalid-email", "", "1st"])
def test_reason_code_must_be_snake_case(code):
    with pytest.raises(ValueError, match="snake_case"):
        DataQualityTally().record_invalid(2, code, "whatever")


# The report


def test_report_is_frozen():
    report = tally_of(valid_rows=[["email"]]).report()
    with pytest.raises(pydantic.ValidationError):
        report.rows_valid = 5  # type: ignore[misc]


def test_report_survives_a_json_round_trip():
    report = tally_of(valid_rows=[["email"]], created=1, invalid=[(3, "invalid_json")]).report()
    assert DataQualityReport.model_validate_json(report.model_dump_json()) == report


def test_report_taken_mid_import_is_not_changed_by_later_rows():
    tally = tally_of(valid_rows=[["email"]])
    early = tally.report()
    tally.record_invalid(5, "invalid_email", "bad")
    assert early.rows_read == 1
    assert tally.report().rows_read == 2
