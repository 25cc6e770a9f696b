"""Consumed events: scores, stages, warnings and message outcomes feed the 360 read model."""

from __future__ import annotations

from crm_contracts import Topic

# Applied a batch at a time by `workflows.view_batch.apply_view_batch`.
CUSTOMER_VIEW_TOPICS = (Topic.SCORES, Topic.LIFECYCLE, Topic.NOTIFICATIONS)
