"""Local tooling for the CRM services: ``make run`` (the whole system on the embedded broker and
SQLite or, with ``--postgres``, an embedded PostgreSQL server, with a local SMTP sink for the
mail), ``make demo`` (the CDNOW purchases replayed through it) and the migration drift check
``make test`` runs before pytest.

Tests that need the whole system use `start_stack`, `crm_devstack.shop` to publish orders and
`crm_devstack.progress` to wait for the services to catch up (``broker_storage="s3"`` keeps
the broker's log in a `LocalObjectStore`, so a broker restart loses nothing); the CLI is
``python -m crm_devstack``.
"""

from crm_devstack.launcher import (
    BrokerStorage,
    RunningService,
    ServiceExit,
    Stack,
    StackError,
    start_stack,
)
from crm_devstack.mail_sink import MailSink, MailSinkError
from crm_devstack.migrations_check import (
    MigrationCheckFailure,
    check_migrations,
    check_service_migrations,
)
from crm_devstack.object_store import LocalObjectStore, ObjectStoreError
from crm_devstack.services import SERVICES, RepositoryNotFound, ServiceSpec, discover_services

__all__ = [
    "SERVICES",
    "BrokerStorage",
    "LocalObjectStore",
    "MailSink",
    "MailSinkError",
    "MigrationCheckFailure",
    "ObjectStoreError",
    "RepositoryNotFound",
    "RunningService",
    "ServiceExit",
    "ServiceSpec",
    "Stack",
    "StackError",
    "check_migrations",
    "check_service_migrations",
    "discover_services",
    "start_stack",
]
