"""The customer 360 read model: the latest scores, stage, warning and messages of each customer."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, any_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_shared import KeyedBatches, Problem, RawRead
from profile_service.db.models import (
    Consent,
    Customer,
    CustomerIdentity,
    NotificationView,
    ScoreView,
    StageView,
)
from profile_service.domain.profiles import IdentityKind
from profile_service.workflows.customers import ensure_active

# The channel the 360's tables notify after every writing statement with the ids of the
# customers it touched (migration 2026_12_07d-customer_360_changes_by_customer), which
# invalidates those customers' cached 360 bodies.
CHANGES_CHANNEL = "customer_360_changes"


@dataclass(frozen=True)
class StoredCustomer360:
    """One customer's 360 as a single statement reads it.

    The profile and consents come as typed columns. The documents other services sent
    (scores, stage, warning, message outcomes) stay the JSON text they are stored as: they
    were validated against their event contracts on the way in, so the response carries
    them as they are instead of decoding and validating them again on every read.
    """

    customer: Mapping[str, Any]
    external_ids: list[str]
    consents: list[Mapping[str, Any]]
    scores_json: str | None
    lifecycle_json: str | None
    churn_warning_json: str | None
    recent_notifications_json: str


async def stored_360(engine: AsyncEngine, customer_id: str, *, recent: int) -> StoredCustomer360:
    """An active customer's 360 in one round trip; 404, 410 or a redirect hint otherwise.

    A read on its own, outside the request's session: on PostgreSQL the statement runs on the
    pooled driver connection (see `RawRead`), which is most of what made the 360 cheaper.
    """
    rows = await _rows_360(engine, customer_id, recent)
    first = rows[0] if rows else None
    ensure_active(
        customer_id,
        first["status"] if first else None,
        first["merged_into_id"] if first else None,
    )
    return _view_of(rows)


class Customer360Reads:
    """Active customers' 360s as the app answers them; on PostgreSQL, reads that arrive
    together are one statement (see `crm_shared.KeyedBatches`)."""

    def __init__(self, engine: AsyncEngine, *, recent: int) -> None:
        self._engine = engine
        self._recent = recent
        self.batches: KeyedBatches[list[Mapping[str, Any]]] | None = None
        if engine.dialect.name == "postgresql":
            self.batches = KeyedBatches(self._rows_of_many)

    async def active(self, customer_id: str) -> StoredCustomer360 | None:
        """As `stored_360`, but None where that refuses (no such customer, erased, merged)."""
        if self.batches is None:
            rows: Sequence[Mapping[str, Any]] = await _rows_360(
                self._engine, customer_id, self._recent
            )
        else:
            rows = await self.batches.get(customer_id) or []
        if not rows:
            return None
        try:
            ensure_active(customer_id, rows[0]["status"], rows[0]["merged_into_id"])
        except Problem:
            return None
        return _view_of(rows)

    async def _rows_of_many(
        self, customer_ids: Sequence[str]
    ) -> dict[str, list[Mapping[str, Any]]]:
        rows = await _read_360("postgresql").rows(
            self._engine, customer_ids=list(customer_ids), recent=self._recent
        )
        by_customer: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:  # ordered by customer, then consent
            by_customer.setdefault(row["id"], []).append(row)
        return by_customer


async def _rows_360(
    engine: AsyncEngine, customer_id: str, recent: int
) -> Sequence[Mapping[str, Any]]:
    # One row per consent, at least one when the customer exists.
    read = _read_360(engine.dialect.name)
    if engine.dialect.name == "postgresql":
        return await read.rows(engine, customer_ids=[customer_id], recent=recent)
    return await read.rows(engine, customer_id=customer_id, recent=recent)


def _view_of(rows: Sequence[Mapping[str, Any]]) -> StoredCustomer360:
    first = rows[0]
    return StoredCustomer360(
        customer=first,
        external_ids=json.loads(first["external_ids"]),
        consents=[row for row in rows if row["channel"] is not None],
        scores_json=first["scores"],
        # A warning can arrive before any stage change; that row has a warning but no stage.
        lifecycle_json=first["stage_detail"] if first["stage"] is not None else None,
        churn_warning_json=first["warning"],
        recent_notifications_json=first["recent_notifications"],
    )


@cache
def _read_360(dialect: str) -> RawRead:
    return RawRead(_statement_360(dialect))


def _statement_360(dialect: str) -> Select[Any]:
    # Built once per dialect. The customer row is joined to its consents (one row each,
    # usually a handful) and to its score and stage rows (at most one each); external ids
    # and recent messages would multiply those rows, so they come aggregated into JSON
    # arrays by scalar subqueries. On PostgreSQL the statement reads any number of customers
    # (`customer_ids`, an array: a batch of reads), its subqueries correlated to each
    # customer row; SQLite reads one (`customer_id`), its subqueries run once per statement.
    customers, consents = Customer.__table__.c, Consent.__table__.c
    scores, stages = ScoreView.__table__.c, StageView.__table__.c
    identities, messages = CustomerIdentity.__table__.c, NotificationView.__table__.c
    if dialect == "postgresql":
        customer_id: ColumnElement[str] = customers.id
        wanted = customers.id == any_(bindparam("customer_ids", type_=ARRAY(Text)))
    else:
        customer_id = bindparam("customer_id", type_=Text)
        wanted = customers.id == customer_id
    external_ids = (
        select(identities.value, identities.created_at)
        .where(
            identities.customer_id == customer_id,
            identities.kind == IdentityKind.EXTERNAL_ID.value,
        )
        .order_by(identities.created_at, identities.value)
        .correlate(Customer.__table__)
        .subquery("external_ids")
    )
    recent = (
        select(messages.detail, messages.occurred_at, messages.id)
        .where(messages.customer_id == customer_id)
        .order_by(messages.occurred_at.desc(), messages.id.desc())
        .limit(bindparam("recent"))
        .correlate(Customer.__table__)
        .subquery("recent")
    )
    ids_array = _json_array(
        dialect,
        external_ids.c.value,
        order_by=(external_ids.c.created_at, external_ids.c.value),
        elements_are_json=False,
    )
    recent_array = _json_array(
        dialect,
        recent.c.detail,
        order_by=(recent.c.occurred_at.desc(), recent.c.id.desc()),
        elements_are_json=True,
    )
    return (
        select(
            *(customers[name] for name in _PROFILE_COLUMNS),
            # As text on both drivers: decoded once, by the same json.loads (see RawRead).
            _as_text(customers.attributes).label("attributes"),
            _as_text(customers.tags).label("tags"),
            select(ids_array).scalar_subquery().label("external_ids"),
            consents.channel,
            consents.purpose,
            consents.granted,
            consents.source,
            consents.changed_at,
            _as_text(scores.scores).label("scores"),
            stages.stage,
            _as_text(stages.stage_detail).label("stage_detail"),
            _as_text(stages.warning).label("warning"),
            select(recent_array).scalar_subquery().label("recent_notifications"),
        )
        .select_from(
            Customer.__table__.outerjoin(Consent.__table__, consents.customer_id == customers.id)
            .outerjoin(ScoreView.__table__, scores.customer_id == customers.id)
            .outerjoin(StageView.__table__, stages.customer_id == customers.id)
        )
        .where(wanted)
        .order_by(customers.id, consents.channel, consents.purpose)
    )


_PROFILE_COLUMNS = (
    "id",
    "status",
    "merged_into_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "time_zone",
    "locale",
    "created_at",
    "updated_at",
)


def _json_array(
    dialect: str,
    element: ColumnElement[Any],
    *,
    order_by: tuple[ColumnElement[Any], ...],
    elements_are_json: bool,
) -> ColumnElement[str]:
    """A JSON array (as text) of `element` over the rows of its (ordered) subquery."""
    if dialect == "postgresql":
        aggregated = func.json_agg(aggregate_order_by(element, *order_by))
        return _as_text(func.coalesce(aggregated, func.json_build_array()))
    # SQLite before 3.44 has no ORDER BY inside an aggregate: json_group_array takes the
    # rows in the order the ordered subquery yields them. The tests pin that order.
    if elements_are_json:
        element = func.json(element)  # embed the stored document, not a string holding it
    return _as_text(func.json_group_array(element))


def _as_text(document: ColumnElement[Any]) -> ColumnElement[str]:
    # A cast in SQL, not only in SQLAlchemy: asyncpg decodes json and jsonb values itself,
    # and the point is to hand the stored text on without decoding it.
    return cast(document, Text)
