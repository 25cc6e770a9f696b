"""Fixtures for every test suite: the embedded broker and PostgreSQL from crm_shared.testing."""

pytest_plugins = ["crm_shared.testing.plugin"]
