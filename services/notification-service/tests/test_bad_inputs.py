"""Inputs that answered 500 (or were stored on SQLite only) are 4xx problems naming the field."""

from __future__ import annotations

from crm_shared.testing import (
    BEYOND_INT64,
    EARLIEST_WITH_OFFSET,
    LATEST_WITH_OFFSET,
    ApiClient,
    BadInput,
    forged_cursor,
    wrong_answers,
)

INBOX = "/v1/customers/c-1/inbox"

BAD_INPUTS = [
    *(
        BadInput("GET", f"/v1/notifications?{name}={moment}", name)
        for name in ("created_from", "created_to")
        for moment in (LATEST_WITH_OFFSET, EARLIEST_WITH_OFFSET)
    ),
    *(
        BadInput("GET", f"/v1/notifications?cursor={forged_cursor(position)}", "cursor")
        for position in (
            {"created_at": LATEST_WITH_OFFSET, "id": "n-1"},
            {"created_at": EARLIEST_WITH_OFFSET, "id": "n-1"},
            {"created_at": "2025-03-14T09:00:00Z", "id": 1e23},
            {"created_at": "2025-03-14T09:00:00Z", "id": "\x00"},
            {"created_at": "2025-03-14T09:00:00Z"},
        )
    ),
    *(
        BadInput("GET", f"{INBOX}?cursor={forged_cursor(position)}", "cursor")
        for position in (
            {"before": 1e23},
            {"before": BEYOND_INT64},
            {"before": 2**63},
            {"before": True},
            {"before": "5"},
            {"before": 0},
            {"after": "c-1"},
        )
    ),
    *(
        BadInput("POST", f"{INBOX}/{message_id}/read", "message_id")
        for message_id in (BEYOND_INT64, 2**63, 0, -1)
    ),
    BadInput("GET", "/v1/notifications/n-%00", "path"),
    BadInput("GET", "/v1/notifications?customer_id=%00", "customer_id"),
    BadInput("GET", "/v1/rules/r%00", "path"),
    BadInput("GET", "/v1/templates/t%00", "path"),
    BadInput("GET", "/v1/unsubscribe/%00", "path"),
    BadInput(
        "PUT",
        "/v1/templates/welcome-x/email",
        "parts.subject",
        json={"parts": {"subject": "Hi\x00", "text_body": "Welcome"}},
    ),
    BadInput(
        "POST",
        "/v1/templates/preview",
        "customer_id",
        json={"channel": "sms", "parts": {"text": "Hi"}, "customer_id": "c-\x00"},
    ),
    BadInput(
        "POST",
        "/v1/notifications/send",
        "customer_id",
        json={"customer_id": "c-\x00", "template_id": "welcome", "channels": ["email"]},
    ),
    *(
        BadInput(
            "POST",
            "/v1/rules",
            "priority",
            json={
                "rule_id": "r-priority",
                "name": "Welcome",
                "event_type": "customer.created",
                "template_id": "welcome-first-order",
                "channels": ["email"],
                "category": "service",
                "priority": priority,
            },
        )
        # Accepted before, then every event the rule matched failed to store on PostgreSQL.
        for priority in (2**31, BEYOND_INT64)
    ),
    BadInput(
        "POST",
        "/v1/rules",
        "name",
        json={
            "rule_id": "r-nul",
            "name": "Welcome\x00",
            "event_type": "customer.created",
            "template_id": "welcome",
            "channels": ["email"],
            "category": "service",
        },
    ),
]


async def test_bad_inputs_are_problems_naming_the_field_on_every_backend(
    notification_api: ApiClient,
) -> None:
    assert await wrong_answers(notification_api, BAD_INPUTS) == []
