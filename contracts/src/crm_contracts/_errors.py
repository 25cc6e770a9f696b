"""The one error a consumer sees for an event it cannot use."""

from __future__ import annotations


class InvalidEvent(Exception):
    """An event that is not JSON, not a CloudEvent, of an unknown type, or with an invalid payload.

    Consumers send such events to their dead-letter topic with `reason` and `field` in the headers,
    and move on: retrying cannot fix them.
    """

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
