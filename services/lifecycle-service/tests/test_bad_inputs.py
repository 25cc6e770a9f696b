"""Inputs that answered 500 (or were read on SQLite only) are 4xx problems naming the field."""

from __future__ import annotations

from crm_shared.testing import (
    EARLIEST_WITH_OFFSET,
    LATEST_WITH_OFFSET,
    ApiClient,
    BadInput,
    forged_cursor,
    wrong_answers,
)

MOMENTS = (LATEST_WITH_OFFSET, EARLIEST_WITH_OFFSET)

BAD_INPUTS = [
    *(
        BadInput("GET", f"{url}?{name}={moment}", name)
        for url in ("/v1/warnings", "/v1/analytics/warnings")
        for name in ("raised_from", "raised_to")
        for moment in MOMENTS
    ),
    *(BadInput("POST", "/v1/sweeps", "as_of", json={"as_of": moment}) for moment in MOMENTS),
    *(
        BadInput("POST", "/v1/rules/dry-run", "as_of", json={"rules": {}, "as_of": moment})
        for moment in MOMENTS
    ),
    *(
        BadInput("GET", f"/v1/warnings?cursor={forged_cursor(position)}", "cursor")
        for position in (
            {"raised_at": LATEST_WITH_OFFSET, "id": "w-1"},
            {"raised_at": EARLIEST_WITH_OFFSET, "id": "w-1"},
            {"raised_at": "2025-03-14T09:00:00", "id": {"a": 1}},
            {"raised_at": "2025-03-14T09:00:00Z", "id": "\x00"},
            {"raised_at": "2025-03-14T09:00:00Z"},
            {"after": "c-1"},
        )
    ),
    *(
        BadInput("GET", f"/v1/customers?stage=new&cursor={forged_cursor(position)}", "cursor")
        for position in ({"after": True}, {"after": 1e23}, {"after": [1]}, {}, {"before": 1})
    ),
    BadInput("GET", "/v1/customers/c-%00/stage", "path"),
    BadInput("GET", "/v1/warnings?customer_id=%00", "customer_id"),
    BadInput("GET", "/v1/warnings?tier=growth%00", "tier"),
    BadInput("PUT", "/v1/rules", "comment", json={"rules": {}, "comment": "\x00"}),
    BadInput("PUT", "/v1/rules", "rules", json={"rules": {"new_days\x00": 30}}),
]


async def test_bad_inputs_are_problems_naming_the_field_on_every_backend(
    lifecycle_api: ApiClient,
) -> None:
    assert await wrong_answers(lifecycle_api, BAD_INPUTS) == []
