"""Consent, identity merge and GDPR export/erase over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_shared import Scope
from profile_testing import Api


async def test_newest_consent_wins_and_a_late_older_one_is_ignored(api: Api) -> None:
    customer = await api.create_customer(email="c@example.com")
    url = f"/v1/customers/{customer['id']}/consents/email/marketing"
    put = api.client.put
    granted = await put(
        url,
        json={"granted": True, "source": "checkout", "changed_at": "2026-11-01T10:00:00Z"},
        headers=api.as_(Scope.WRITE),
    )
    assert granted.status_code == 200
    late_older = await put(
        url,
        json={"granted": False, "source": "old-import", "changed_at": "2026-10-01T10:00:00Z"},
        headers=api.as_(Scope.WRITE),
    )
    assert late_older.json()["granted"] is True
    consents = (await api.get(f"/v1/customers/{customer['id']}/consents")).json()
    assert consents == [
        {
            "channel": "email",
            "purpose": "marketing",
            "granted": True,
            "source": "checkout",
            "changed_at": "2026-11-01T10:00:00Z",
        }
    ]
    unknown_channel = await put(
        f"/v1/customers/{customer['id']}/consents/pigeon/marketing",
        json={"granted": True, "source": "x"},
        headers=api.as_(Scope.WRITE),
    )
    assert unknown_channel.status_code == 422


async def test_merge_moves_identities_and_the_old_id_redirects(api: Api) -> None:
    survivor = await api.create_customer(email="main@example.com", first_name="Ann", tags=["a"])
    duplicate = await api.create_customer(
        phone="+4915112345678", last_name="Lee", tags=["b"], external_id="shop:9"
    )
    merged = await api.post(
        f"/v1/customers/{survivor['id']}/merge",
        json={"merged_customer_id": duplicate["id"], "reason": "same person"},
    )
    assert merged.status_code == 201
    assert merged.json()["moved_identities"] == 2
    profile = (await api.get(f"/v1/customers/{survivor['id']}")).json()
    assert (profile["first_name"], profile["last_name"]) == ("Ann", "Lee")
    assert profile["phone"] == "+4915112345678"
    assert profile["external_ids"] == ["shop:9"]
    assert profile["tags"] == ["a", "b"]

    old = await api.get(f"/v1/customers/{duplicate['id']}")
    assert old.status_code == 308
    assert old.headers["location"] == f"/v1/customers/{survivor['id']}"
    by_phone = await api.post("/v1/customers", json={"phone": "+49 151 12345678"})
    assert by_phone.json()["id"] == survivor["id"]
    audit = (await api.get(f"/v1/customers/{survivor['id']}/merges")).json()
    assert [(m["merged_customer_id"], m["requested_by"]) for m in audit] == [
        (duplicate["id"], "test-write")
    ]
    itself = await api.post(
        f"/v1/customers/{survivor['id']}/merge", json={"merged_customer_id": survivor["id"]}
    )
    assert itself.status_code == 422


async def test_export_holds_everything_and_erase_forgets_the_person(api: Api) -> None:
    customer = await api.create_customer(
        email="gdpr@example.com", phone="+4915112345678", first_name="Eve"
    )
    cid = customer["id"]
    await api.client.put(
        f"/v1/customers/{cid}/consents/sms/service",
        json={"granted": True, "source": "app"},
        headers=api.as_(Scope.WRITE),
    )
    assert (await api.get(f"/v1/customers/{cid}/export", Scope.WRITE)).status_code == 403
    export = (await api.get(f"/v1/customers/{cid}/export", Scope.ADMIN)).json()
    assert export["customer"]["email"] == "gdpr@example.com"
    assert {i["kind"] for i in export["identities"]} == {"email", "phone"}
    assert export["consents"][0]["channel"] == "sms"

    erase = await api.client.delete(f"/v1/customers/{cid}", headers=api.as_(Scope.ADMIN))
    assert erase.status_code == 204
    assert (await api.get(f"/v1/customers/{cid}")).status_code == 410
    again = await api.client.delete(f"/v1/customers/{cid}", headers=api.as_(Scope.ADMIN))
    assert again.status_code == 410
    fresh = await api.create_customer(email="gdpr@example.com")
    assert fresh["id"] != cid
    listed = (await api.get("/v1/customers", params={"email": "gdpr@example.com"})).json()
    assert [c["id"] for c in listed["items"]] == [fresh["id"]]


async def test_a_consent_dated_in_the_future_is_refused_so_it_cannot_lock_the_decision(
    api: Api,
) -> None:
    customer = await api.create_customer(email="future@example.com")
    url = f"/v1/customers/{customer['id']}/consents/email/marketing"
    for far_future in ("9999-12-31T23:59:59Z", "2100-01-01T00:00:00Z"):
        locked = await api.put(
            url, json={"granted": True, "source": "import", "changed_at": far_future}
        )
        assert locked.status_code == 422, locked.text
        assert locked.headers["content-type"] == "application/problem+json"
        assert [error["field"] for error in locked.json()["errors"]] == ["changed_at"]
    # The customer's own unsubscribe (dated now) then decides, and says so.
    unsubscribed = await api.put(url, json={"granted": False, "source": "unsubscribe-link"})
    assert unsubscribed.status_code == 200
    assert unsubscribed.json()["granted"] is False
    consents = (await api.get(f"/v1/customers/{customer['id']}/consents")).json()
    assert [consent["granted"] for consent in consents] == [False]


async def test_a_consent_a_minute_ahead_of_our_clock_is_within_the_skew(api: Api) -> None:
    customer = await api.create_customer(email="skew@example.com")
    url = f"/v1/customers/{customer['id']}/consents/sms/marketing"
    ahead = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    granted = await api.put(url, json={"granted": True, "source": "app", "changed_at": ahead})
    assert granted.status_code == 200, granted.text
    assert granted.json()["granted"] is True
