"""A merged customer named anywhere but in the URL: a 409 naming the survivor, not a redirect.

A 308 sends the client to another URL; it is right only when the URL names the merged customer
(``GET /v1/customers/{merged}`` -> ``/v1/customers/{survivor}``). Named in a body, the customer
has no URL to redirect to, so the answer is a conflict whose ``merged_into`` says whom to name.
"""

from __future__ import annotations

from typing import Any

from profile_testing import Api


async def merged_pair(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    survivor = await api.create_customer(email="kept@example.com")
    duplicate = await api.create_customer(email="folded@example.com")
    merged = await api.post(
        f"/v1/customers/{survivor['id']}/merge", json={"merged_customer_id": duplicate["id"]}
    )
    assert merged.status_code == 201, merged.text
    return survivor, duplicate


async def test_an_order_naming_a_merged_customer_is_a_conflict_naming_the_survivor(
    api: Api,
) -> None:
    survivor, duplicate = await merged_pair(api)
    order = {
        "type": "order.placed",
        "order_id": "ord-merged",
        "customer": {"customer_id": duplicate["id"]},
        "placed_at": "2026-11-20T14:03:00Z",
        "total": {"amount": "10.00", "currency": "USD"},
    }

    answered = await api.post("/v1/orders", json=order)

    assert answered.status_code == 409, answered.text
    assert answered.headers["content-type"] == "application/problem+json"
    assert answered.json()["merged_into"] == survivor["id"]
    assert "location" not in answered.headers


async def test_merging_in_a_customer_merged_before_is_a_conflict_naming_its_survivor(
    api: Api,
) -> None:
    survivor, duplicate = await merged_pair(api)
    other = await api.create_customer(email="other@example.com")

    answered = await api.post(
        f"/v1/customers/{other['id']}/merge", json={"merged_customer_id": duplicate["id"]}
    )

    # Not a redirect to /v1/customers/{survivor}/merge, which would fold the duplicate into
    # its survivor once more.
    assert answered.status_code == 409, answered.text
    assert answered.json()["merged_into"] == survivor["id"]
    assert "location" not in answered.headers


async def test_the_url_of_a_merged_customer_still_redirects_to_the_survivor(api: Api) -> None:
    survivor, duplicate = await merged_pair(api)

    answered = await api.post(
        f"/v1/customers/{duplicate['id']}/merge",
        json={"merged_customer_id": (await api.create_customer(email="x@example.com"))["id"]},
    )

    assert answered.status_code == 308
    assert answered.headers["location"] == f"/v1/customers/{survivor['id']}/merge"
