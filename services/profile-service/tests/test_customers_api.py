"""Customers over HTTP: auth, create or attach, read, list, update, idempotency, errors."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from crm_shared import Scope
from profile_testing import Api

OPEN_PATHS = {"/healthz", "/readyz", "/metrics"}


async def test_every_endpoint_but_health_and_docs_needs_a_key(api: Api) -> None:
    paths = api.app.openapi()["paths"]
    guarded = [
        (method.upper(), path)
        for path, operations in paths.items()
        if path not in OPEN_PATHS
        for method in operations
    ]
    assert len(guarded) >= 12
    for method, template in guarded:
        path = template.format(customer_id="c-1", channel="email", purpose="marketing")
        response = await api.client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    for open_path in (*OPEN_PATHS, "/docs", "/openapi.json"):
        assert (await api.client.get(open_path)).status_code == 200, open_path


async def test_a_wrong_key_is_401_and_a_read_only_key_cannot_write(api: Api) -> None:
    wrong = await api.client.get("/v1/customers", headers={"X-API-Key": "crm_nope"})
    assert wrong.status_code == 401
    forbidden = await api.post("/v1/customers", Scope.READ, json={"email": "a@example.com"})
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == "This API key lacks the 'write' scope."
    assert (await api.get("/v1/customers", Scope.READ)).status_code == 200


async def test_created_customer_reads_back_normalised(api: Api) -> None:
    created = await api.create_customer(
        email=" Ada.Lovelace@Example.COM ",
        phone="030 1234567",
        first_name="Ada",
        time_zone="europe/berlin",
        locale="de_de",
        tags=["VIP", "vip", "newsletter"],
        attributes={"loyalty_card": True},
    )
    read = await api.get(f"/v1/customers/{created['id']}")
    assert read.status_code == 200
    body = read.json()
    assert body["email"] == "ada.lovelace@example.com"
    assert body["phone"] == "+49301234567"
    assert body["time_zone"] == "Europe/Berlin"
    assert body["locale"] == "de-DE"
    assert body["tags"] == ["vip", "newsletter"]
    assert body["attributes"] == {"loyalty_card": True}


async def test_a_profile_matching_an_existing_identity_attaches_to_it(api: Api) -> None:
    first = await api.create_customer(external_id="shop:1", email="grace@example.com")
    again = await api.post(
        "/v1/customers", json={"email": "GRACE@example.com", "first_name": "Grace"}
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["first_name"] == "Grace"
    by_phone = await api.post(
        "/v1/customers", json={"external_id": "shop:1", "phone": "+4915112345678"}
    )
    assert by_phone.json()["id"] == first["id"]
    found = await api.get("/v1/customers", params={"phone": "+49 151 12345678"})
    assert [c["id"] for c in found.json()["items"]] == [first["id"]]


async def test_identities_of_two_customers_in_one_profile_are_a_conflict(api: Api) -> None:
    ada = await api.create_customer(email="ada@example.com")
    bob = await api.create_customer(phone="+4915112345678")
    response = await api.post(
        "/v1/customers", json={"email": "ada@example.com", "phone": "+4915112345678"}
    )
    assert response.status_code == 409
    problem = response.json()
    assert problem["customer_id"] == ada["id"]
    assert problem["conflicts"] == [{"identity": "phone", "customer_id": bob["id"]}]


async def test_invalid_fields_are_problems_naming_the_field(api: Api) -> None:
    cases = {
        "email": "not-an-email",
        "phone": "12",
        "time_zone": "Mars/Olympus",
        "locale": "english please",
    }
    for field, value in cases.items():
        response = await api.post("/v1/customers", json={field: value})
        assert response.status_code == 422, field
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == field
    unknown = await api.post("/v1/customers", json={"emial": "a@example.com"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "emial"


async def test_list_filters_by_tag_and_pages_with_a_cursor(api: Api) -> None:
    ids = [
        (await api.create_customer(email=f"c{n}@example.com", tags=["even" if n % 2 else "odd"]))[
            "id"
        ]
        for n in range(7)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/customers", params=params)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    tagged = (await api.get("/v1/customers", params={"tag": "odd"})).json()["items"]
    assert [c["id"] for c in tagged] == ids[0::2]
    bad_cursor = await api.get("/v1/customers", params={"cursor": "%%%"})
    assert bad_cursor.status_code == 422


async def test_patch_changes_given_fields_and_null_clears(api: Api) -> None:
    created = await api.create_customer(email="x@example.com", first_name="X", locale="en")
    response = await api.client.patch(
        f"/v1/customers/{created['id']}",
        json={"first_name": None, "locale": "fr-FR"},
        headers=api.as_(Scope.WRITE),
    )
    assert response.status_code == 200
    assert response.json()["first_name"] is None
    assert response.json()["locale"] == "fr-FR"
    assert response.json()["email"] == "x@example.com"


async def test_patching_in_another_customers_email_is_a_conflict(api: Api) -> None:
    await api.create_customer(email="taken@example.com")
    other = await api.create_customer(email="free@example.com")
    response = await api.client.patch(
        f"/v1/customers/{other['id']}",
        json={"email": "taken@example.com"},
        headers=api.as_(Scope.WRITE),
    )
    assert response.status_code == 409


async def test_idempotency_key_replays_the_first_answer(api: Api) -> None:
    headers = {"Idempotency-Key": "create-ada-1"}
    first = await api.post("/v1/customers", json={"email": "ada@example.com"}, headers=headers)
    second = await api.post("/v1/customers", json={"email": "ada@example.com"}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    reused = await api.post("/v1/customers", json={"email": "bob@example.com"}, headers=headers)
    assert reused.status_code == 422


async def test_unknown_customer_is_404_problem(api: Api) -> None:
    response = await api.get("/v1/customers/does-not-exist")
    assert response.status_code == 404
    assert response.json()["title"] == "Not found"
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_answer_without_a_key(api: Api, path: str) -> None:
    response = await api.client.get(path)
    assert response.status_code == 200


async def test_metrics_count_requests_by_route(api: Api) -> None:
    await api.get("/v1/customers")
    metrics = (await api.client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/v1/customers",status="200"}' in metrics


async def test_reads_go_on_while_another_writer_holds_the_sqlite_lock(
    api: Api, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL readers never wait for writers")
    created = await api.create_customer(email="reader@example.com")
    writer = sqlite3.connect(database_url.split("///", 1)[1], timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long import would
        # A read that queued behind the writer would wait out SQLite's 30 s busy timeout.
        response = await asyncio.wait_for(api.get(f"/v1/customers/{created['id']}"), 5)
        assert response.status_code == 200
    finally:
        writer.rollback()
        writer.close()
