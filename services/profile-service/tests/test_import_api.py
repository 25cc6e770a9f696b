"""Bulk import: valid rows stored, invalid rows reported by line, duplicates merged."""

from __future__ import annotations

import json

from crm_shared import Scope
from profile_testing import Api

CSV = (
    "external_id,email,phone,first_name,time_zone\n"
    "shop:1,ada@example.com,030 1234567,Ada,Europe/Berlin\n"
    "shop:2,not-an-email,,Bob,\n"
    ",,,Nobody,\n"
    "shop:3,CAROL@example.com,,Carol,Mars/Base\n"
    "shop:4,carol2@example.com,,Carol,\n"
    ",ADA@example.com,,Ada L.,\n"
    '"shop:5","dan@example.com",,"Dan ""the man""",\n'
)


async def test_csv_import_stores_valid_rows_and_reports_the_rest(api: Api) -> None:
    existing = await api.create_customer(email="carol2@example.com", first_name="C.")
    response = await api.post(
        "/v1/customers/import", content=CSV.encode(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["rows_read"] == 7
    assert report["rows_valid"] == 4
    assert report["rows_invalid"] == 3
    assert report["customers_created"] == 2
    assert report["duplicates_in_file"] == 1
    assert report["matched_existing"] == 1
    assert [(row["line"], row["field"]) for row in report["invalid_rows"]] == [
        (3, "email"),
        (4, None),
        (5, "time_zone"),
    ]
    assert report["normalised"]["emails_changed"] == 1
    merged = (await api.get("/v1/customers", params={"external_id": "shop:1"})).json()["items"]
    assert merged[0]["first_name"] == "Ada L."
    assert merged[0]["phone"] == "+49301234567"
    carol = (await api.get(f"/v1/customers/{existing['id']}")).json()
    assert carol["external_ids"] == ["shop:4"]
    dan = (await api.get("/v1/customers", params={"email": "dan@example.com"})).json()["items"]
    assert dan[0]["first_name"] == 'Dan "the man"'


async def test_ndjson_import_reports_lines_that_are_not_objects(api: Api) -> None:
    lines = [
        json.dumps({"email": "a@example.com", "tags": ["x"]}),
        "[1, 2]",
        "{broken",
        json.dumps({"phone": "+4915112345678", "attributes": {"tier": "gold"}}),
    ]
    response = await api.post(
        "/v1/customers/import",
        content="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    report = response.json()
    assert (report["rows_valid"], report["rows_invalid"]) == (2, 2)
    assert [row["line"] for row in report["invalid_rows"]] == [2, 3]


async def test_import_needs_a_known_format_and_a_writer(api: Api) -> None:
    xml = await api.post(
        "/v1/customers/import", content=b"<x/>", headers={"Content-Type": "application/xml"}
    )
    assert xml.status_code == 415
    assert "text/csv" in xml.json()["detail"]
    reader = await api.post(
        "/v1/customers/import", Scope.READ, content=b"email\n", headers={"Content-Type": "text/csv"}
    )
    assert reader.status_code == 403
    no_header = await api.post(
        "/v1/customers/import", content=b"", headers={"Content-Type": "text/csv"}
    )
    assert no_header.status_code == 422
