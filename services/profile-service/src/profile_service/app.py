"""profile-service: the factory that wires settings, database, routers, consumer and relay."""

from __future__ import annotations

from fastapi import FastAPI

from crm_contracts import Topic
from crm_shared import (
    ReadCache,
    Scope,
    Subscription,
    allow_larger_body,
    create_service_app,
    keeping_reads,
    serve_cached_route,
)
from profile_service.api import activities, consents, customers, imports, orders
from profile_service.api.errors import install_error_handlers
from profile_service.db.models import PLUMBING
from profile_service.events.order_intake import intake_batch, intake_decoder
from profile_service.events.view_batch import CUSTOMER_VIEW_TOPICS, apply_view_batch
from profile_service.settings import ProfileSettings
from profile_service.workflows.customer_view import CHANGES_CHANNEL

DESCRIPTION = """
The unified customer profile: identities (external ids, email, phone), attributes, tags,
consent per channel and purpose, identity merge with audit, bulk import with a data-quality
report, GDPR export and erasure, order intake (over HTTP, or from `crm.order-intake` for shops
that name customers by their own identities), and the customer 360 view.
"""


def create_app(settings: ProfileSettings | None = None) -> FastAPI:
    """Build the app; nothing starts until the lifespan runs."""
    settings = settings or ProfileSettings()
    cache_360 = ReadCache(
        ttl_seconds=settings.customer_360_cache_seconds,
        max_entries=settings.customer_360_cache_entries,
    )
    app = create_service_app(
        settings=settings,
        description=DESCRIPTION,
        plumbing=PLUMBING,
        produces=[Topic.ORDERS, Topic.CUSTOMERS],
        subscriptions=[
            Subscription("customer-view", CUSTOMER_VIEW_TOPICS, apply_view_batch),
            Subscription(
                "order-intake",
                [Topic.ORDER_INTAKE],
                intake_batch(
                    settings.order_policy,
                    default_phone_region=settings.default_phone_region,
                ),
                decode=intake_decoder(settings.order_policy),
            ),
        ],
        routers=[
            customers.router,
            imports.router,
            consents.router,
            orders.router,
            activities.router,
        ],
        on_start=keeping_reads(cache_360, CHANGES_CHANNEL),
    )
    app.state.customer_360_cache = cache_360
    # A 360 is answered before routing and the key check's dependencies, which were most of a
    # cached read's CPU and 30% of a miss's; refusals still go through the route.
    serve_cached_route(
        app,
        customers.CUSTOMER_360_PATH,
        cache_360,
        load=customers.customer_360_loader(app),
        needed=Scope.READ,
        media_type=customers.CUSTOMER_360_MEDIA_TYPE,
    )
    install_error_handlers(app)
    allow_larger_body(app, imports.IMPORT_PATH, settings.import_max_body_bytes)
    return app
