"""A profile that could not be published as an event is refused where it enters (issue 11, 1).

The limits are the customer contract's: the API answers 422 naming the field, the import
reports the row, a merge whose union would pass a limit is refused, and a customer collects at
most 20 external ids.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from crm_contracts import (
    MAX_ATTRIBUTES,
    MAX_EXTERNAL_IDS,
    MAX_NAME_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)
from profile_testing import Api, Scope


def a_customer(**fields: Any) -> dict[str, Any]:
    return {"email": "ada@example.com", **fields}


def too_many_tags() -> list[str]:
    return [f"tag-{n}" for n in range(MAX_TAGS + 1)]


LIMITS = [
    pytest.param({"attributes": {"note": "x" * 1_001}}, "attributes.note", id="attribute-text"),
    pytest.param(
        {"attributes": {f"k{n}": n for n in range(MAX_ATTRIBUTES + 1)}},
        "attributes",
        id="attribute-count",
    ),
    pytest.param({"attributes": {"k" * 65: 1}}, "attributes", id="attribute-key"),
    pytest.param({"attributes": {"nested": {"a": 1}}}, "attributes.nested", id="nesting"),
    pytest.param({"attributes": {"list": ["a"]}}, "attributes.list", id="list-value"),
    pytest.param({"attributes": {"big": 2**63}}, "attributes.big", id="huge-integer"),
    pytest.param(
        {"attributes": {f"k{n}": "x" * 1_000 for n in range(70)}}, "attributes", id="json-size"
    ),
    pytest.param({"tags": too_many_tags()}, "tags", id="tag-count"),
    pytest.param({"tags": ["t" * (MAX_TAG_LENGTH + 1)]}, "tags", id="tag-length"),
    pytest.param({"first_name": "A" * (MAX_NAME_LENGTH + 1)}, "first_name", id="first-name"),
    pytest.param({"last_name": "L" * (MAX_NAME_LENGTH + 1)}, "last_name", id="last-name"),
    pytest.param({"external_id": "x" * 201}, "external_id", id="external-id"),
    pytest.param({"email": "a" * 250 + "@example.com"}, "email", id="email"),
    pytest.param({"locale": "x" * 36}, "locale", id="locale"),
    pytest.param({"time_zone": "x" * 65}, "time_zone", id="time-zone"),
]


@pytest.mark.parametrize(("change", "field"), LIMITS)
async def test_a_field_over_its_limit_is_refused_naming_it(
    api: Api, change: dict[str, Any], field: str
) -> None:
    created = await api.post("/v1/customers", json=a_customer(**change))
    assert created.status_code == 422, created.text
    assert created.json()["errors"][0]["field"].startswith(field), created.json()
    customer = await api.create_customer(email="grace@example.com")
    patched = await api.client.patch(
        f"/v1/customers/{customer['id']}", json=change, headers=api.as_(Scope.WRITE)
    )
    assert patched.status_code == 422, patched.text
    assert patched.json()["errors"][0]["field"].startswith(field)


async def test_fields_at_their_limits_are_accepted(api: Api) -> None:
    attributes: dict[str, Any] = {f"k{n}": n for n in range(MAX_ATTRIBUTES - 3)}
    attributes |= {"note": "x" * 1_000, "vip": True, "ratio": 0.25}
    customer = await api.create_customer(
        email="max@example.com",
        first_name="A" * MAX_NAME_LENGTH,
        tags=[f"tag-{n}" for n in range(MAX_TAGS)],
        attributes=attributes,
    )
    assert len(customer["tags"]) == MAX_TAGS
    assert customer["attributes"] == attributes


async def test_import_rows_over_a_limit_are_reported_and_the_rest_stored(api: Api) -> None:
    rows = [
        {"email": "ok@example.com", "tags": ["vip"]},
        {"email": "many-tags@example.com", "tags": too_many_tags()},
        {"email": "long-note@example.com", "attributes": {"note": "x" * 1_001}},
        {"email": "nested@example.com", "attributes": {"address": {"city": "Berlin"}}},
    ]
    response = await api.post(
        "/v1/customers/import",
        content="\n".join(json.dumps(row) for row in rows).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["customers_created"] == 1
    assert [row["line"] for row in report["invalid_rows"]] == [2, 3, 4]
    fields = [row["field"] for row in report["invalid_rows"]]
    assert fields == ["tags", "attributes.note", "attributes.address"]


async def test_a_customer_collects_at_most_the_external_id_limit(api: Api) -> None:
    for n in range(MAX_EXTERNAL_IDS):
        saved = await api.post("/v1/customers", json=a_customer(external_id=f"shop-{n}:1"))
        assert saved.status_code in {200, 201}, saved.text
    one_more = await api.post("/v1/customers", json=a_customer(external_id="shop-x:1"))
    assert one_more.status_code == 422, one_more.text
    assert one_more.json()["errors"][0]["field"] == "external_id"
    customer_id = saved.json()["id"]
    stored = (await api.get(f"/v1/customers/{customer_id}")).json()
    assert len(stored["external_ids"]) == MAX_EXTERNAL_IDS


async def test_an_import_cannot_pile_external_ids_onto_one_customer(api: Api) -> None:
    rows = [{"email": "pile@example.com", "external_id": f"shop:{n}"} for n in range(30)]
    response = await api.post(
        "/v1/customers/import",
        content="\n".join(json.dumps(row) for row in rows).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["rows_invalid"] == 30 - MAX_EXTERNAL_IDS
    assert {row["field"] for row in report["invalid_rows"]} == {"external_id"}
    listed = (await api.get("/v1/customers", params={"email": "pile@example.com"})).json()
    assert len(listed["items"][0]["external_ids"]) == MAX_EXTERNAL_IDS


async def test_a_merge_whose_union_would_pass_a_limit_is_refused(api: Api) -> None:
    half = MAX_TAGS // 2 + 1
    survivor = await api.create_customer(
        email="one@example.com", tags=[f"a-{n}" for n in range(half)]
    )
    merged = await api.create_customer(
        email="two@example.com", tags=[f"b-{n}" for n in range(half)]
    )
    response = await api.post(
        f"/v1/customers/{survivor['id']}/merge", json={"merged_customer_id": merged["id"]}
    )
    assert response.status_code == 409, response.text
    assert response.json()["errors"][0]["field"] == "tags"
    still = (await api.get(f"/v1/customers/{merged['id']}")).json()
    assert len(still["tags"]) == half


async def test_the_issues_two_600_kb_attribute_values_never_reach_the_outbox(api: Api) -> None:
    body = a_customer(attributes={"a": "x" * 600_000, "b": "y" * 600_000})
    response = await api.post("/v1/customers", json=body)
    assert response.status_code == 413, response.text
