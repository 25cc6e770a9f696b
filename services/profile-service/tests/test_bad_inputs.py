"""Inputs that answered 500 (or were stored on SQLite only) are 4xx problems naming the field."""

from __future__ import annotations

from crm_shared import Scope
from crm_shared.testing import (
    EARLIEST_WITH_OFFSET,
    LATEST_WITH_OFFSET,
    BadInput,
    forged_cursor,
    wrong_answers,
)
from profile_testing import Api

CUSTOMERS = "/v1/customers"


def bad_inputs(customer_id: str) -> list[BadInput]:
    one = f"{CUSTOMERS}/{customer_id}"
    cases = [
        BadInput("GET", f"{CUSTOMERS}?{name}={moment}", name)
        for name in ("updated_since", "created_before")
        for moment in (LATEST_WITH_OFFSET, EARLIEST_WITH_OFFSET)
    ]
    cases += [
        BadInput("GET", f"{CUSTOMERS}?cursor={forged_cursor(position)}", "cursor")
        for position in (
            {"after": True},
            {"after": 1e23},
            {"after": 10**30},
            {"after": [1]},
            {"after": "\x00"},
            {},
            {"raised_at": "2025-01-01T00:00:00Z", "id": "x"},
        )
    ]
    cases += [
        BadInput("GET", f"{CUSTOMERS}?email=a%00b@example.com", "email"),
        BadInput("GET", f"{CUSTOMERS}?tag=vip%00", "tag"),
        BadInput("GET", f"{CUSTOMERS}?external_id=%00", "external_id"),
        BadInput("GET", f"{CUSTOMERS}/a%00b", "path"),
        BadInput("GET", f"{CUSTOMERS}/a%00b/360", "path"),
        BadInput("POST", CUSTOMERS, "first_name", json={"first_name": "A\x00da"}),
        BadInput("POST", CUSTOMERS, "external_id", json={"external_id": "shop:\x00"}),
        BadInput("POST", CUSTOMERS, "attributes.note", json={"attributes": {"note": "\x00"}}),
        BadInput("POST", CUSTOMERS, "attributes", json={"attributes": {"no\x00te": 1}}),
        BadInput("POST", CUSTOMERS, "tags.1", json={"tags": ["vip", "\x00"]}),
        BadInput("PATCH", one, "last_name", json={"last_name": "\x00"}),
        BadInput(
            "PUT",
            f"{one}/consents/email/marketing",
            "source",
            json={"granted": True, "source": "form\x00"},
        ),
        BadInput("POST", f"{one}/merge", "merged_customer_id", json={"merged_customer_id": "\x00"}),
        BadInput(
            "POST",
            "/v1/orders",
            "order_id",
            json={
                "type": "order.placed",
                "order_id": "o-\x00",
                "customer": {"external_id": "shop:1"},
                "placed_at": "2025-03-14T09:00:00Z",
                "total": {"amount": "10.00", "currency": "EUR"},
                "items": [],
            },
        ),
    ]
    return cases


async def test_bad_inputs_are_problems_naming_the_field_on_every_backend(api: Api) -> None:
    customer = await api.create_customer(external_id="shop:bad-inputs")

    assert await wrong_answers(api, bad_inputs(customer["id"])) == []

    listed = await api.get(CUSTOMERS)
    assert [c["id"] for c in listed.json()["items"]] == [customer["id"]]  # nothing else stored


async def test_an_imported_row_holding_nul_is_reported_not_stored(api: Api) -> None:
    rows = (
        '{"external_id": "shop:1", "first_name": "A\\u0000da"}\n'
        '{"external_id": "shop:2", "attributes": {"note": "\\u0000"}}\n'
        '{"external_id": "shop:3", "first_name": "Bea"}\n'
    )
    response = await api.post(
        f"{CUSTOMERS}/import",
        Scope.WRITE,
        content=rows.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["rows_valid"], report["rows_invalid"]) == (1, 2)
    assert [row["field"] for row in report["invalid_rows"]] == ["first_name", "attributes.note"]
    csv = "external_id,first_name\nshop:4,Ca\x00rl\n"
    response = await api.post(
        f"{CUSTOMERS}/import", content=csv.encode(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert [row["field"] for row in response.json()["invalid_rows"]] == ["first_name"]
