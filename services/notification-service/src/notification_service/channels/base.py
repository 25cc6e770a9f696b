"""What every channel adapter shares: the message it sends and the two ways a send fails.

An adapter's ``send`` returns a receipt (the provider's id for the message) or raises:

- :class:`PermanentDeliveryError` when sending this message again cannot succeed: the address
  does not exist, the gateway rejects the request as invalid. The notification fails at once.
- :class:`TransientDeliveryError` when a later attempt may succeed: the server is down or
  slow, it says "try again later" (SMTP 4xx, HTTP 5xx, 408, 429), or its configuration is being
  fixed (a refused login). The notification is retried with backoff until its attempts run out.

Error messages are stored and published (``notification.failed``), so they never carry personal
data: adapters pass whatever a server said through :func:`crm_shared.redact`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from crm_contracts import Category, NotificationChannel
from notification_service.domain.templates import RenderedMessage

__all__ = [
    "Channel",
    "DeliveryError",
    "OutgoingMessage",
    "PermanentDeliveryError",
    "TransientDeliveryError",
]


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered notification on its way to one recipient."""

    notification_id: str  # the same on every attempt: receivers de-duplicate by it
    customer_id: str
    channel: NotificationChannel
    recipient: str  # an email address, an E.164 phone number, or a webhook URL
    content: RenderedMessage
    category: Category
    unsubscribe_url: str | None = None


class DeliveryError(Exception):
    """A send that failed; :attr:`permanent` says whether trying again is pointless."""

    permanent: bool = False

    def __init__(self, reason: str, *, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code  # the SMTP reply code or HTTP status, when the server gave one


class PermanentDeliveryError(DeliveryError):
    """The message cannot be delivered as it is (bad address, rejected by the provider)."""

    permanent = True


class TransientDeliveryError(DeliveryError):
    """The message may be delivered later (server down, slow, or asking to try again)."""

    permanent = False

    def __init__(
        self, reason: str, *, code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason, code=code)
        self.retry_after = retry_after  # seconds the server asked us to wait, if it did


class Channel(Protocol):
    """A way of delivering messages: email, SMS, webhooks."""

    async def send(self, message: OutgoingMessage) -> str:
        """Deliver ``message`` and return the provider's receipt for it.

        Raises :class:`PermanentDeliveryError` or :class:`TransientDeliveryError`.
        """
        ...
