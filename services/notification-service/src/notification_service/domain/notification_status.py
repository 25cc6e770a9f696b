"""The states a notification row goes through (stored as these strings: no migration)."""

from __future__ import annotations

from enum import StrEnum


class NotificationStatus(StrEnum):
    """Where a notification stands; a StrEnum, so the column keeps its plain string values."""

    SCHEDULED = "scheduled"  # waiting for its due time (or a retry, or a deferral)
    SENDING = "sending"  # decided and being handed to its channel by one sender
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"  # held back for good, with a reason
