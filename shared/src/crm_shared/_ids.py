"""Identifiers: UUIDv7 strings, sortable by creation time (defined with the event contracts)."""

from __future__ import annotations

from crm_contracts._ids import new_id

__all__ = ["new_id"]
