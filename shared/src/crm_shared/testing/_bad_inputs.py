"""Tables of bad requests and the problem each must answer: a 4xx naming the field at fault."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from crm_shared._settings import Scope
from crm_shared.testing._apps import ApiClient

# An offset at either end of Python's datetime range overflows on conversion to UTC.
LATEST_WITH_OFFSET = "9999-12-31T23:59:59-23:59"
EARLIEST_WITH_OFFSET = "0001-01-01T00:00:00+14:00"
BEYOND_INT64 = 1180591620717411303424  # 2**70


def forged_cursor(document: Any) -> str:
    """A cursor a client made up: the JSON `document`, encoded as the API encodes its own."""
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


@dataclasses.dataclass(frozen=True)
class BadInput:
    """A request that must be refused with `status` as problem+json naming `field`."""

    method: str
    url: str
    field: str
    json: Any = None
    scope: Scope = Scope.ADMIN
    status: int = 422
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        body = "" if self.json is None else f" {json.dumps(self.json)[:80]}"
        return f"{self.method} {self.url[:100]}{body}"


async def wrong_answers(api: ApiClient, cases: list[BadInput]) -> list[str]:
    """Send every case; describe each answer that is not the problem it must be."""
    wrong = []
    for case in cases:
        try:
            response = await api.client.request(
                case.method,
                case.url,
                json=case.json,
                headers={**api.as_(case.scope), **case.headers},
            )
        except Exception as error:  # a 500 the test client re-raises
            wrong.append(f"{case} -> raised {type(error).__name__}: {str(error)[:200]}")
            continue
        problem = _json_or_none(response.text)
        fields = [error.get("field") for error in (problem or {}).get("errors", [])]
        if (
            response.status_code != case.status
            or response.headers.get("content-type") != "application/problem+json"
            or case.field not in fields
        ):
            wrong.append(f"{case} -> {response.status_code} {response.text[:200]}")
    return wrong


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
