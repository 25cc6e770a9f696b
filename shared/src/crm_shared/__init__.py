"""Plumbing shared by the CRM services: settings, database, outbox, consumer, auth, errors.

Event contracts live in :mod:`crm_shared.contracts`; test fixtures in
:mod:`crm_shared.testing`.
"""

from crm_shared._app import create_service_app
from crm_shared._auth import (
    API_KEY_HEADER,
    AdminAccess,
    ApiKeyAuthenticator,
    Principal,
    ReadAccess,
    WriteAccess,
    generate_api_key,
    hash_api_key,
    require_scope,
)
from crm_shared._broker import BrokerStartError, EmbeddedBroker, free_loopback_port
from crm_shared._clock import as_utc, utc_now
from crm_shared._consumer import (
    BatchFinisher,
    EventConsumer,
    EventHandler,
    RetryPolicy,
    is_transient,
)
from crm_shared._db import (
    AutoIncrementId,
    PlumbingTables,
    UtcDateTime,
    create_engine,
    create_session_factory,
    is_sqlite,
    new_metadata,
    normalise_database_url,
    plumbing_tables,
    transaction,
    upsert_into,
)
from crm_shared._idempotency import (
    IDEMPOTENCY_HEADER,
    IdempotencyKeys,
    StoredResponse,
    request_fingerprint,
)
from crm_shared._ids import new_id
from crm_shared._kafka import create_consumer, create_producer, ensure_topics
from crm_shared._logging import configure_logging, event_id_var, redact, request_id_var
from crm_shared._metrics import ServiceMetrics
from crm_shared._openapi import problem_responses
from crm_shared._outbox import OutboxRelay, add_many_to_outbox, add_to_outbox
from crm_shared._pagination import Page, decode_cursor, encode_cursor
from crm_shared._processes import StartedInWith, stop_process_group
from crm_shared._runtime import (
    RuntimeDep,
    ServiceRuntime,
    SessionDep,
    Subscription,
    attach_runtime,
    run_service,
    runtime_of,
)
from crm_shared._schedule import hold_job_lock, job_lock, run_periodically
from crm_shared._settings import ApiKeyRecord, Scope, ServiceSettings
from crm_shared.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    Problem,
    ServiceUnavailable,
    Unauthorized,
    UnprocessableContent,
    UnsupportedMediaType,
)

__all__ = [
    "API_KEY_HEADER",
    "IDEMPOTENCY_HEADER",
    "AdminAccess",
    "ApiKeyAuthenticator",
    "ApiKeyRecord",
    "AutoIncrementId",
    "BadRequest",
    "BatchFinisher",
    "BrokerStartError",
    "Conflict",
    "EmbeddedBroker",
    "EventConsumer",
    "EventHandler",
    "Forbidden",
    "Gone",
    "IdempotencyKeys",
    "NotFound",
    "OutboxRelay",
    "Page",
    "PlumbingTables",
    "Principal",
    "Problem",
    "ReadAccess",
    "RetryPolicy",
    "RuntimeDep",
    "Scope",
    "ServiceMetrics",
    "ServiceRuntime",
    "ServiceSettings",
    "ServiceUnavailable",
    "SessionDep",
    "StartedInWith",
    "StoredResponse",
    "Subscription",
    "Unauthorized",
    "UnprocessableContent",
    "UnsupportedMediaType",
    "UtcDateTime",
    "WriteAccess",
    "add_many_to_outbox",
    "add_to_outbox",
    "as_utc",
    "attach_runtime",
    "configure_logging",
    "create_consumer",
    "create_engine",
    "create_producer",
    "create_service_app",
    "create_session_factory",
    "decode_cursor",
    "encode_cursor",
    "ensure_topics",
    "event_id_var",
    "free_loopback_port",
    "generate_api_key",
    "hash_api_key",
    "hold_job_lock",
    "is_sqlite",
    "is_transient",
    "job_lock",
    "new_id",
    "new_metadata",
    "normalise_database_url",
    "plumbing_tables",
    "problem_responses",
    "redact",
    "request_fingerprint",
    "request_id_var",
    "require_scope",
    "run_periodically",
    "run_service",
    "runtime_of",
    "stop_process_group",
    "transaction",
    "upsert_into",
    "utc_now",
]
