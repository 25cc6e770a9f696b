"""What every service's declarative base has in common: its own metadata and UTC timestamps.

Each service keeps its own base (its own registry and metadata, so Alembic sees only that
service's tables even when several services are imported in one process), declared as
``class Base(ServiceTables, DeclarativeBase)``; the settings it needs are defined here once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_shared._db import UtcDateTime, new_metadata

Json = JSON().with_variant(JSONB(), "postgresql")
"""A JSON column: JSONB on PostgreSQL, JSON text on SQLite."""

CustomerIdColumn = String(64)
"""A customer id as events carry it (the contracts bound it to 64 characters)."""

MoneyColumn = Numeric(18, 4)
"""Money in the accounting currency (one per deployment; see the order policy)."""


class ContactColumns:
    """Mixin: how to reach a customer and what to call them, as the profile keeps it and the
    services that replicate it from customer events store it (the phone column stays with
    each table: the profile keeps it normalised, a replica as the event carried it)."""

    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)


class ServiceTables:
    """Mixin for a service's declarative base: a fresh metadata with the naming convention
    Alembic relies on, and timezone-aware UTC ``datetime`` columns.

    Put it before ``DeclarativeBase``; the metadata is made when the base class is declared
    (before SQLAlchemy builds the registry from it), never for the mapped classes below it.
    """

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if DeclarativeBase in cls.__bases__ and "metadata" not in cls.__dict__:
            cls.metadata = new_metadata()  # type: ignore[attr-defined]
        super().__init_subclass__(**kwargs)
