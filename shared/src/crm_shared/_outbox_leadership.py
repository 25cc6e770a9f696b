"""Which relay of a service publishes, and what wakes it.

On PostgreSQL one relay per service publishes at a time: the one holding an advisory lock on
a connection of its own (per-key order needs a single publisher). The same connection LISTENs
on ``outbox_added``: every service's migrations add a statement trigger that notifies it from
each transaction inserting outbox rows (delivered at commit, folded into one notice per
transaction), so rows written by any process or replica wake the leader at once instead of at
its next poll. While the connection listens the relay still polls, rarely, as a fallback; when
it does not (SQLite, a relay that is not the leader, a connection lost) it polls as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

_logger = logging.getLogger("crm.outbox")
OUTBOX_CHANNEL = "outbox_added"


def lock_key(name: str) -> int:
    """The advisory lock key of the relay of service `name`."""
    digest = hashlib.sha256(f"outbox-relay:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class Leadership:
    """Whether this relay may publish, and whether a notice will wake it."""

    held: bool
    driver: Any = None  # the asyncpg connection holding the lock (PostgreSQL only)
    listening: bool = False

    def still_held(self) -> bool:
        """Whether the lock is still ours: it lives as long as its connection.

        asyncpg marks a connection closed as soon as its socket goes (it reads the socket
        for notices anyway), so no round trip is spent on asking before every batch.
        """
        if not self.held:
            return False
        return self.driver is None or not self.driver.is_closed()


@contextlib.asynccontextmanager
async def leadership(
    engine: AsyncEngine, name: str, on_notice: Callable[[], None]
) -> AsyncIterator[Leadership]:
    """Try to become the publishing relay of `name`; call `on_notice` on each outbox notice."""
    if engine.dialect.name != "postgresql":
        yield Leadership(held=True)
        return
    key = lock_key(name)
    async with engine.connect() as connection:
        held = bool(await connection.scalar(select(func.pg_try_advisory_lock(key))))
        await connection.commit()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection  # an asyncpg.Connection, now idle in autocommit
        state = Leadership(held=held, driver=driver)

        def notice(*_: object) -> None:
            on_notice()

        if held:
            try:
                await driver.add_listener(OUTBOX_CHANNEL, notice)
                state.listening = True
            except Exception:  # publishing does not need it: the relay polls instead
                _logger.warning("outbox relay: cannot LISTEN; polling", exc_info=True)
        try:
            yield state
        finally:
            state.listening = False
            if held:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(OUTBOX_CHANNEL, notice)
                with contextlib.suppress(Exception):
                    await connection.scalar(select(func.pg_advisory_unlock(key)))
