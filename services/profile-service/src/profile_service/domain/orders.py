"""Orders taken over HTTP: what makes two posts the same order event, and refund limits."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any


class OrderRefused(ValueError):
    """An order event this CRM does not accept; `field` names the part at fault, if one is."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class ChangedOrder(OrderRefused):
    """An order event already accepted is posted again with different content."""


class InvalidRefund(OrderRefused):
    """A refund in another currency than its order's, not positive, or beyond what is left."""


def intake_key(event_type: str, order_id: str, refund_id: str | None = None) -> str:
    """The identity of an order event: one placement, one cancellation, each refund once."""
    if event_type == "order.refunded":
        return f"{event_type}:{order_id}:{refund_id}"
    return f"{event_type}:{order_id}"


def fingerprint(document: dict[str, Any]) -> str:
    """A digest of the posted order, so a re-post with different content is caught."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def check_same_order(stored_fingerprint: str, posted_fingerprint: str, key: str) -> None:
    """A re-post must repeat the first post; a different body under the same id is a conflict."""
    if stored_fingerprint != posted_fingerprint:
        raise ChangedOrder(
            f"{key} was already accepted with different content; "
            "order events are immutable, send a refund or cancellation instead.",
        )


def check_refund(
    *,
    order_total: Decimal,
    order_currency: str,
    already_refunded: Decimal,
    amount: Decimal,
    currency: str,
) -> None:
    """A refund is in the order's currency and never exceeds what is left to refund."""
    if currency != order_currency:
        raise InvalidRefund(
            f"refund currency {currency} differs from the order's {order_currency}",
            field="amount.currency",
        )
    if amount <= 0:
        raise InvalidRefund("a refund amount must be positive", field="amount.amount")
    remaining = order_total - already_refunded
    if amount > remaining:
        raise InvalidRefund(
            f"refund of {amount} exceeds the {remaining} left to refund on this order",
            field="amount.amount",
        )
