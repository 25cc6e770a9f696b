"""The in-app inbox through the API: messages delivery put there, the unread count, reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crm_contracts import Channel
from crm_shared import Scope
from crm_shared.testing import ApiClient
from notification_testing import churn_warning, customer, deliver, feed, order

# 10:00 in Berlin: outside quiet hours.
MORNING = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def app_user(customer_id: str) -> Any:
    """A customer without email who agreed to marketing in the app: messages go to the inbox."""
    return customer(customer_id, MORNING - timedelta(days=60), email=None, marketing=[Channel.PUSH])


async def inbox(api: ApiClient, customer_id: str, **params: Any) -> dict[str, Any]:
    response = await api.get(f"/v1/customers/{customer_id}/inbox", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_in_app_message_arrives_unread_and_is_marked_read_once(
    notification_api: ApiClient,
):
    await feed(notification_api, [app_user("c1"), churn_warning("c1", MORNING)])
    await deliver(notification_api, MORNING + timedelta(minutes=1))

    before = await inbox(notification_api, "c1")

    [message] = before["items"]
    assert (message["title"], message["category"], message["read_at"]) == (
        "Something for you",
        "marketing",
        None,
    )
    assert "THANKYOU15" in message["body"]
    assert before["unread_count"] == 1
    url = f"/v1/customers/c1/inbox/{message['message_id']}/read"
    first = await notification_api.post(url)
    again = await notification_api.post(url)
    assert first.status_code == 200, first.text
    assert first.json()["read_at"] is not None
    assert again.json()["read_at"] == first.json()["read_at"]  # the first reading stays
    after = await inbox(notification_api, "c1")
    assert after["unread_count"] == 0
    assert after["items"][0]["read_at"] == first.json()["read_at"]
    assert (await inbox(notification_api, "c1", unread_only=True))["items"] == []
    [sent] = (await notification_api.get("/v1/notifications")).json()["items"]
    assert (sent["channel"], sent["status"]) == ("in_app", "sent")
    assert sent["notification_id"] == message["notification_id"]


async def test_a_customer_cannot_mark_another_customers_message(notification_api: ApiClient):
    await feed(notification_api, [app_user("c1"), app_user("c2"), churn_warning("c1", MORNING)])
    await deliver(notification_api, MORNING + timedelta(minutes=1))
    [message] = (await inbox(notification_api, "c1"))["items"]

    theirs = await notification_api.post(f"/v1/customers/c2/inbox/{message['message_id']}/read")
    unknown = await notification_api.post("/v1/customers/c1/inbox/999999/read")
    read_only = await notification_api.post(
        f"/v1/customers/c1/inbox/{message['message_id']}/read", Scope.READ
    )

    assert (theirs.status_code, unknown.status_code, read_only.status_code) == (404, 404, 403)
    assert (await inbox(notification_api, "c1"))["unread_count"] == 1
    assert await inbox(notification_api, "c2") == {
        "items": [],
        "next_cursor": None,
        "unread_count": 0,
    }


async def test_the_inbox_pages_newest_first_and_is_read_all_at_once(
    notification_api: ApiClient,
):
    # The first order's welcome, care (15 days), benefits (30) and offer (40), in the inbox.
    await feed(notification_api, [app_user("c1"), order("c1", "o1", MORNING)])
    for days in (0, 15, 30, 40):
        await deliver(notification_api, MORNING + timedelta(days=days, minutes=1))

    first = await inbox(notification_api, "c1", limit=3)
    rest = await inbox(notification_api, "c1", limit=3, cursor=first["next_cursor"])

    titles = [m["title"] for m in first["items"] + rest["items"]]
    assert titles == [
        "10% off your next order",
        "Your member benefits",
        "How is your order treating you?",
        "Thank you for your first order",
    ]
    assert (first["unread_count"], rest["next_cursor"]) == (4, None)
    marked = await notification_api.post("/v1/customers/c1/inbox/read-all")
    assert marked.json() == {"marked": 4, "unread_count": 0}
    assert (await inbox(notification_api, "c1"))["unread_count"] == 0
    again = await notification_api.post("/v1/customers/c1/inbox/read-all")
    assert again.json()["marked"] == 0
