"""What becomes of a message whose sending process died: sent again, or reported unknown.

A message goes ``scheduled`` -> ``sending`` (decided, rendered, committed) -> handed to its
channel (committed just before, a chunk of at most ``parallel_sends`` at a time) -> ``sent``,
``failed`` or ``scheduled`` again. A process killed in between leaves ``sending`` rows, and
whoever recovers them (the process itself on its next start, or a replica that sees the
sender gone) decides by this table:

- not yet handed to the channel: nothing left, so it is scheduled again, on any channel;
- handed to SMS or webhook: sent again (at least once). Both carry the notification id as
  their idempotency key (the SMS gateway's ``Idempotency-Key``, the webhook's ``webhook-id``),
  so a provider or receiver that already got it drops the copy;
- handed to email: SMTP has no idempotency key, so a second copy would reach the customer.
  It is closed as failed ("interrupted"), never sent again (at most once). At most one chunk
  per crashed process is in this state, so a crash leaves at most ``parallel_sends`` emails
  (20 by default) unknown: delivered or lost, each reported by ``notification.failed``.

A message sent again still counts its attempts, so a process that crashes over and over on
one message gives up on it when its attempts run out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from crm_contracts import NotificationChannel

__all__ = ["RESENT_AFTER_A_CRASH", "Recovery", "recover_interrupted_send"]

# Channels whose provider de-duplicates by the key every attempt carries.
RESENT_AFTER_A_CRASH: Final = frozenset({NotificationChannel.SMS, NotificationChannel.WEBHOOK})


@dataclass(frozen=True)
class Recovery:
    """What to do with one interrupted message, and the line the delivery log shows."""

    action: Literal["reschedule", "fail"]
    detail: str
    attempts: int  # the attempts the message has made after this


def recover_interrupted_send(
    channel: NotificationChannel | None, handed: bool, attempts: int, max_attempts: int
) -> Recovery:
    """The fate of a ``sending`` message whose process died, by the table in this module.

    ``attempts`` counts the interrupted one; ``handed``: it was handed to ``channel``.
    """
    if not handed:
        return Recovery(
            "reschedule",
            "interrupted before it was sent: queued again",
            max(attempts - 1, 0),
        )
    if channel in RESENT_AFTER_A_CRASH:
        if attempts >= max_attempts:
            return Recovery(
                "fail", f"interrupted while sending, {attempts} attempts made", attempts
            )
        return Recovery(
            "reschedule",
            "interrupted while sending: sent again with the same idempotency key",
            attempts,
        )
    return Recovery(
        "fail",
        "interrupted while sending: whether it left is unknown, so it is not sent again",
        attempts,
    )
