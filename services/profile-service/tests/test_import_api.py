"""Bulk import: valid rows stored, invalid rows reported by line, duplicates merged."""

from __future__ import annotations

import json
from typing import Any

import pytest

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


async def post_csv(api: Api, content: bytes) -> Any:
    return await api.post(
        "/v1/customers/import", content=content, headers={"Content-Type": "text/csv"}
    )


async def test_common_header_spellings_name_the_profile_fields(api: Api) -> None:
    content = (
        b"E-Mail,Phone Number,First Name,Last-Name,External_ID,Time Zone,Loyalty Level\n"
        b"ada@example.com,030 1234567,Ada,Lovelace,shop:1,Europe/Berlin,gold\n"
    )

    response = await post_csv(api, content)

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["rows_valid"], report["rows_invalid"]) == (1, 0), report["invalid_rows"]
    assert report["renamed_columns"] == {
        "e-mail": "email",
        "phone number": "phone",
        "first name": "first_name",
        "last-name": "last_name",
        "time zone": "time_zone",
    }
    assert report["unknown_columns"] == ["loyalty level"]
    (ada,) = (await api.get("/v1/customers", params={"external_id": "shop:1"})).json()["items"]
    assert (ada["email"], ada["phone"]) == ("ada@example.com", "+49301234567")
    assert (ada["first_name"], ada["last_name"], ada["time_zone"]) == (
        "Ada",
        "Lovelace",
        "Europe/Berlin",
    )


@pytest.mark.parametrize("header", ["e-mail", "Email Address", "email_address", "EMAIL"])
async def test_an_email_column_under_another_spelling_imports(api: Api, header: str) -> None:
    response = await post_csv(api, f"{header}\nbob@example.com\n".encode())
    assert response.status_code == 200, response.text
    assert response.json()["customers_created"] == 1


async def test_unknown_columns_are_reported_and_their_rows_judged_on_the_rest(api: Api) -> None:
    response = await post_csv(api, b"Customer No.,Emial\n17,eve@example.com\n")

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["unknown_columns"] == ["customer no.", "emial"]
    assert report["invalid_reasons"] == {"missing_identity": 1}


async def test_a_file_of_only_a_header_reports_its_columns(api: Api) -> None:
    response = await post_csv(api, b"Email Address,Shoe Size\r\n")

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["rows_read"] == 0
    assert report["renamed_columns"] == {"email address": "email"}
    assert report["unknown_columns"] == ["shoe size"]


async def test_two_columns_naming_one_field_refuse_the_file(api: Api) -> None:
    response = await post_csv(api, b"email,E-Mail\na@example.com,b@example.com\n")

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "'email' and 'e-mail' both name the field email" in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\n\x93\x8a", "not valid UTF-8"),
        ("email\nada@example.com\n".encode("utf-16-le"), "NUL bytes"),
        ("email\nada@example.com\n".encode("utf-16"), "not valid UTF-8"),
        (b"email\x00,name\nada@example.com,Ada\n", "NUL bytes"),
        (bytes(range(256)), "UTF-8"),
    ],
)
async def test_undecodable_files_are_refused_saying_why(api: Api, content: bytes, why: str) -> None:
    response = await post_csv(api, content)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert why in response.json()["detail"]
    assert "UTF-8" in response.json()["detail"]


async def test_a_nul_character_in_a_value_refuses_only_its_row(api: Api) -> None:
    csv = b"email,first_name\nada@example.com,A\x00da\nbob@example.com,Bob\n"
    ndjson = b'{"email": "eve@example.com", "attributes": {"k\\u0000": "v"}}\n'

    from_csv = (await post_csv(api, csv)).json()
    from_ndjson = (
        await api.post(
            "/v1/customers/import",
            content=ndjson,
            headers={"Content-Type": "application/x-ndjson"},
        )
    ).json()

    assert (from_csv["rows_valid"], from_csv["invalid_reasons"]) == (1, {"nul_character": 1})
    assert (from_ndjson["rows_valid"], from_ndjson["invalid_reasons"]) == (0, {"nul_character": 1})


async def test_ndjson_keys_are_read_like_csv_headers(api: Api) -> None:
    lines = [
        json.dumps({"E-Mail": "fay@example.com", "Favourite Colour": "green"}),
        json.dumps({"email": "gus@example.com", "e-mail": "gus2@example.com"}),
    ]
    response = await api.post(
        "/v1/customers/import",
        content="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["rows_valid"] == 1
    assert report["invalid_reasons"] == {"duplicate_field": 1}
    assert report["renamed_columns"] == {"E-Mail": "email", "e-mail": "email"}
    assert report["unknown_columns"] == ["Favourite Colour"]
