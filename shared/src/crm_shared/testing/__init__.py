"""Test support for the services: real PostgreSQL and a real broker, started as processes.

Load the fixtures with ``pytest_plugins = ["crm_shared.testing.plugin"]``.
"""

from crm_shared.testing._postgres import EmbeddedPostgres
from crm_shared.testing._topics import read_topic

__all__ = ["EmbeddedPostgres", "read_topic"]
