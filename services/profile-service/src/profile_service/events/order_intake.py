"""Consumed order intake: the documents shops publish to `crm.order-intake`, applied like a POST.

A shop that names its customers by e-mail, phone or its own customer id cannot publish to
`crm.orders`, which carries CRM customer ids only: it publishes the very document it would POST
to `/v1/orders`. Each is validated by the same models, judged by the same order policy and
applied by the same `accept_order` (once per order id, the customer found or created), which
publishes the canonical `order.*` event with the CRM customer id on `crm.orders`. A document that
cannot be applied goes to `crm.order-intake.<group>.dlq` with the reason and field in headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import InvalidEvent, OrderIntakeDocument, OrderPolicy, decode_order_intake
from crm_shared import Decoder, judgement_time, utc_now
from crm_shared.errors import Problem
from profile_service.domain.orders import OrderRefused
from profile_service.workflows.orders import accept_order


@dataclass(frozen=True)
class IntakeMessage:
    """One intake document as consumed, with the moment it is judged at (its record's time)."""

    # The inbox knows a message again by its content: the same document delivered twice (a
    # redelivery, or a shop re-sending it) is applied once; a changed one is judged anew.
    id: str
    document: OrderIntakeDocument
    received_at: datetime


def intake_decoder(
    policy: OrderPolicy, *, clock: Callable[[], datetime] = utc_now
) -> Decoder[IntakeMessage]:
    """Parse a record of `crm.order-intake`; a document that is not one raises `InvalidEvent`."""

    def decode(record: ConsumerRecord[bytes, bytes]) -> IntakeMessage:
        value = record.value or b""
        return IntakeMessage(
            id=hashlib.sha256(value).hexdigest(),
            document=decode_order_intake(value),
            received_at=judgement_time(record, policy, wall_clock=clock()),
        )

    return decode


def intake_batch(
    policy: OrderPolicy, *, default_phone_region: str | None
) -> Callable[[AsyncSession, Sequence[IntakeMessage]], Awaitable[None]]:
    """Apply a batch of intake documents as `POST /v1/orders` would, in order; one that is
    refused raises `InvalidEvent` (the consumer then applies the batch a document at a time
    and dead-letters that one)."""

    async def apply(session: AsyncSession, messages: Sequence[IntakeMessage]) -> None:
        for message in messages:
            try:
                await accept_order(
                    session,
                    message.document,
                    policy=policy,
                    default_phone_region=default_phone_region,
                    now=message.received_at,
                )
            except OrderRefused as refusal:
                # The domain's refusals (a changed repeat, a refund beyond the order) likewise.
                raise InvalidEvent(refusal.reason, field=refusal.field) from refusal
            except Problem as problem:
                # What answers 4xx over HTTP goes to the dead-letter topic, with the same field.
                errors = problem.extensions.get("errors") or [{}]
                raise InvalidEvent(problem.detail, field=errors[0].get("field")) from problem

    return apply
