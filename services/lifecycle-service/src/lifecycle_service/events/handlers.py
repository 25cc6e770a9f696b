"""Consumed events: orders, scores and customer changes, applied a batch at a time."""

from __future__ import annotations

from crm_contracts import Topic

LIFECYCLE_TOPICS = (Topic.ORDERS, Topic.SCORES, Topic.CUSTOMERS)
