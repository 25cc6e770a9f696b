"""``/v1/orders``: order intake for shops that cannot publish to Kafka (or name customers by
their own identities; those that can publish send the same document to ``crm.order-intake``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, status
from fastapi.responses import JSONResponse

from crm_contracts import OrderIntake
from crm_shared import SessionDep, WriteAccess, problem_responses, utc_now
from profile_service.api import SettingsDep
from profile_service.api.schemas import OrderAccepted
from profile_service.workflows.orders import accept_order

router = APIRouter(prefix="/v1/orders", tags=["orders"])

_EXAMPLE = {
    "type": "order.placed",
    "order_id": "ord-1001",
    "customer": {"external_id": "shop-eu:8812", "email": "ada@example.com"},
    "placed_at": "2026-11-20T14:03:00Z",
    # In the default accounting currency (PROFILE_CURRENCY): orders in any other are refused.
    "total": {"amount": "59.90", "currency": "USD"},
    "items": [
        {"sku": "TEE-RED-M", "quantity": 2, "unit_price": {"amount": "29.95", "currency": "USD"}}
    ],
}


@router.post(
    "",
    response_model=OrderAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Accept an order event (placed, refunded or cancelled)",
    responses={
        200: {"description": "The same order event was accepted before"},
        **problem_responses(
            {
                404: "No customer with the `customer.customer_id` given",
                409: "This order (or refund) id was accepted before with different content, "
                "or `customer.customer_id` was merged into the customer `merged_into` names",
                410: "The customer was erased",
            }
        ),
    },
)
async def post_order(
    order: Annotated[OrderIntake, Body(examples=[_EXAMPLE])],
    settings: SettingsDep,
    session: SessionDep,
    _: WriteAccess,
) -> JSONResponse:
    """Idempotent by order id (and refund id): a repeat answers 200 with the first event id.

    Amounts must be in the deployment's accounting currency (no exchange rates are kept:
    convert at the rate the shop booked), and the order's time within the accepted window
    (a few minutes ahead of now at most). The customer is found by id or identities, or
    created. The event is published on `crm.orders` through the outbox, so it is not lost
    if the broker is down.
    """
    accepted = await accept_order(
        session,
        order,
        policy=settings.order_policy,
        default_phone_region=settings.default_phone_region,
        now=utc_now(),
    )
    body = OrderAccepted(**accepted.__dict__).model_dump(mode="json")
    return JSONResponse(body, status_code=200 if accepted.duplicate else 202)
