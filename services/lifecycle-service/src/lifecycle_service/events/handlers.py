"""Consumed events: orders, scores, customer changes and feedback, applied a batch at a time."""

from __future__ import annotations

from crm_contracts import Topic

LIFECYCLE_TOPICS = (Topic.ORDERS, Topic.SCORES, Topic.CUSTOMERS, Topic.ACTIVITIES)
