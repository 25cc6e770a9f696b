"""Plumbing shared by the CRM services: settings, database, outbox, consumer, auth, errors.

Event contracts live in :mod:`crm_contracts`; test fixtures and the embedded broker
in :mod:`crm_shared.testing` (development only: its broker needs the ``testing`` extra).
"""

from crm_shared._app import ScheduledJob, create_service_app, settings_dependency
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
from crm_shared._batched_reads import KeyedBatches
from crm_shared._body_limit import RequestBodyLimits, allow_larger_body
from crm_shared._bulk import BulkUpdate, BulkWrite, among, among_hashed
from crm_shared._cached_route import serve_cached_route
from crm_shared._clock import as_utc, utc_now
from crm_shared._consumer import (
    BatchFinisher,
    Decoder,
    EventConsumer,
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
from crm_shared._decoding import cloud_event_decoder, judgement_time
from crm_shared._idempotency import (
    IDEMPOTENCY_HEADER,
    IdempotencyKeys,
    StoredResponse,
    request_fingerprint,
)
from crm_shared._ids import new_id
from crm_shared._kafka import create_consumer, create_producer, ensure_topics
from crm_shared._kafka_security import KafkaSecurity
from crm_shared._list_queries import in_id_order, newest_first, where_given, within
from crm_shared._logging import configure_logging, event_id_var, redact, request_id_var
from crm_shared._metrics import ServiceMetrics
from crm_shared._openapi import problem_responses, request_body_config
from crm_shared._outbox import (
    OutboxRelay,
    add_encoded_to_outbox,
    add_many_to_outbox,
    add_to_outbox,
)
from crm_shared._pagination import (
    AfterId,
    CursorPosition,
    CursorText,
    Page,
    PageLimit,
    PageSlice,
    decode_cursor,
    encode_cursor,
    page_of,
    slice_page,
)
from crm_shared._periods import EARLIEST_DAY, DayPeriod, TimeWindow, day_period, time_window
from crm_shared._profiling import (
    ProfilingChange,
    objecting_customers,
    profiling_decisions_table,
    record_profiling_decisions,
)
from crm_shared._raw_reads import RawRead
from crm_shared._read_cache import ReadCache
from crm_shared._read_cache_changes import keeping_reads
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
from crm_shared._settings import (
    ApiKeyRecord,
    ProcessSettings,
    Scope,
    ServiceSettings,
    job_interval,
)
from crm_shared._tables import (
    ContactColumns,
    CustomerIdColumn,
    Json,
    MoneyColumn,
    ServiceTables,
)
from crm_shared.errors import (
    BadRequest,
    Conflict,
    ContentTooLarge,
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
    "EARLIEST_DAY",
    "IDEMPOTENCY_HEADER",
    "AdminAccess",
    "AfterId",
    "ApiKeyAuthenticator",
    "ApiKeyRecord",
    "AutoIncrementId",
    "BadRequest",
    "BatchFinisher",
    "BulkUpdate",
    "BulkWrite",
    "Conflict",
    "ContactColumns",
    "ContentTooLarge",
    "CursorPosition",
    "CursorText",
    "CustomerIdColumn",
    "DayPeriod",
    "Decoder",
    "EventConsumer",
    "Forbidden",
    "Gone",
    "IdempotencyKeys",
    "Json",
    "KafkaSecurity",
    "KeyedBatches",
    "MoneyColumn",
    "NotFound",
    "OutboxRelay",
    "Page",
    "PageLimit",
    "PageSlice",
    "PlumbingTables",
    "Principal",
    "Problem",
    "ProcessSettings",
    "ProfilingChange",
    "RawRead",
    "ReadAccess",
    "ReadCache",
    "RequestBodyLimits",
    "RetryPolicy",
    "RuntimeDep",
    "ScheduledJob",
    "Scope",
    "ServiceMetrics",
    "ServiceRuntime",
    "ServiceSettings",
    "ServiceTables",
    "ServiceUnavailable",
    "SessionDep",
    "StoredResponse",
    "Subscription",
    "TimeWindow",
    "Unauthorized",
    "UnprocessableContent",
    "UnsupportedMediaType",
    "UtcDateTime",
    "WriteAccess",
    "add_encoded_to_outbox",
    "add_many_to_outbox",
    "add_to_outbox",
    "allow_larger_body",
    "among",
    "among_hashed",
    "as_utc",
    "attach_runtime",
    "cloud_event_decoder",
    "configure_logging",
    "create_consumer",
    "create_engine",
    "create_producer",
    "create_service_app",
    "create_session_factory",
    "day_period",
    "decode_cursor",
    "encode_cursor",
    "ensure_topics",
    "event_id_var",
    "generate_api_key",
    "hash_api_key",
    "hold_job_lock",
    "in_id_order",
    "is_sqlite",
    "is_transient",
    "job_interval",
    "job_lock",
    "judgement_time",
    "keeping_reads",
    "new_id",
    "new_metadata",
    "newest_first",
    "normalise_database_url",
    "objecting_customers",
    "page_of",
    "plumbing_tables",
    "problem_responses",
    "profiling_decisions_table",
    "record_profiling_decisions",
    "redact",
    "request_body_config",
    "request_fingerprint",
    "request_id_var",
    "require_scope",
    "run_periodically",
    "run_service",
    "runtime_of",
    "serve_cached_route",
    "settings_dependency",
    "slice_page",
    "time_window",
    "transaction",
    "upsert_into",
    "utc_now",
    "where_given",
    "within",
]
