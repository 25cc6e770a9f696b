"""``Idempotency-Key`` on POSTs that create things: a retried request gets the first answer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared._clock import utc_now
from crm_shared._db import PlumbingTables
from crm_shared.errors import UnprocessableContent

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class StoredResponse:
    """The first answer given to a key."""

    status_code: int
    body: Any


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """A digest of what was asked, so a key reused for a different request is caught."""
    canonical = json.dumps([method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyKeys:
    """Stores first answers in the caller's transaction, so answer and effect commit together."""

    def __init__(self, tables: PlumbingTables) -> None:
        self._table = tables.idempotency_keys

    async def recall(
        self, session: AsyncSession, *, owner: str, key: str, fingerprint: str
    ) -> StoredResponse | None:
        """The stored answer for this key, or None; a different request under it is a 422."""
        row = (
            await session.execute(
                select(
                    self._table.c.fingerprint,
                    self._table.c.status_code,
                    self._table.c.response_body,
                ).where(self._table.c.owner == owner, self._table.c.key == key)
            )
        ).first()
        if row is None:
            return None
        if row.fingerprint != fingerprint:
            raise UnprocessableContent(
                "This Idempotency-Key was already used for a different request.",
                field=IDEMPOTENCY_HEADER,
            )
        return StoredResponse(row.status_code, json.loads(row.response_body))

    async def remember(
        self,
        session: AsyncSession,
        *,
        owner: str,
        key: str,
        fingerprint: str,
        response: StoredResponse,
    ) -> None:
        """Store the answer given to this key."""
        await session.execute(
            insert(self._table).values(
                owner=owner,
                key=key,
                fingerprint=fingerprint,
                status_code=response.status_code,
                response_body=json.dumps(response.body, default=str),
                created_at=utc_now(),
            )
        )
