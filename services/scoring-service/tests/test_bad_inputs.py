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

BAD_INPUTS = [
    *(
        BadInput("POST", "/v1/models/fit", "as_of", json={"as_of": moment})
        for moment in (LATEST_WITH_OFFSET, EARLIEST_WITH_OFFSET)
    ),
    *(
        BadInput("GET", f"/v1/scores?cursor={forged_cursor(position)}", "cursor")
        for position in (
            {"after": True},
            {"after": 1e23},
            {"after": 10**30},
            {"after": [1]},
            {"after": "\x00"},
            {"before": 5},
        )
    ),
    BadInput("GET", "/v1/scores?segment=Champions%00", "segment"),
    BadInput("GET", "/v1/scores/c-%00", "path"),
    BadInput("GET", "/v1/models/v%001", "path"),
]


async def test_bad_inputs_are_problems_naming_the_field_on_every_backend(
    scoring_api: ApiClient,
) -> None:
    assert await wrong_answers(scoring_api, BAD_INPUTS) == []
