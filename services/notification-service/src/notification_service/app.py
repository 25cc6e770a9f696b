"""notification-service: the factory that wires settings, database, channels, consumer, loops."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from fastapi import FastAPI

from crm_contracts import NotificationChannel, Topic
from crm_shared import ServiceRuntime, Subscription, create_service_app, utc_now
from notification_service.api import (
    analytics_routes,
    inbox_routes,
    notification_routes,
    rules_routes,
    template_routes,
    unsubscribe_routes,
)
from notification_service.channels.base import Channel
from notification_service.channels.email import SmtpChannel
from notification_service.channels.sms import HttpSmsGateway
from notification_service.channels.webhook import WebhookChannel
from notification_service.db.models import PLUMBING
from notification_service.domain.delivery_decision import DecisionSettings
from notification_service.events.handlers import NOTIFICATION_TOPICS, apply_events
from notification_service.settings import NotificationSettings
from notification_service.workflows import interrupted_sends, playbook_store
from notification_service.workflows.delivery import DeliveryConfig, deliver_until_idle
from notification_service.workflows.opt_outs import forward_opt_outs
from notification_service.workflows.rendering import TemplateRenderer

OPT_OUT_FORWARD_SECONDS = 5.0

DESCRIPTION = """
Playbooks that turn churn warnings, stage changes, new customers and orders into email, SMS,
webhook or in-app messages. Before anything is sent: consent for the channel and purpose, a
frequency cap, quiet hours in the customer's time zone and priority arbitration; a triggering
event never sends twice. Publishes `notification.sent`, `notification.failed` and
`notification.suppressed` (with the reason) on `crm.notifications`.
"""


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    """Build the app; nothing starts until the lifespan runs."""
    settings = settings or NotificationSettings()
    deliver_now = asyncio.Event()

    @asynccontextmanager
    async def http_client(app: FastAPI) -> AsyncIterator[None]:
        # Opened before the runtime and closed after it: the loops that send stop first.
        async with httpx.AsyncClient(timeout=settings.send_timeout_seconds) as client:
            app.state.http_client = client
            yield

    @asynccontextmanager
    async def start_delivery(app: FastAPI, runtime: ServiceRuntime) -> AsyncIterator[None]:
        client: httpx.AsyncClient = app.state.http_client
        async with runtime.sessions() as session, session.begin():
            await playbook_store.seed_defaults(session, utc_now())
        # Alive for the process's life: a replica that finds this name's lock free knows
        # the process is gone and recovers its interrupted sends.
        async with interrupted_sends.hold_sender(runtime) as sender:
            renderer = TemplateRenderer(settings.render_limits(), workers=settings.render_workers)
            try:
                app.state.renderer = renderer
                config = delivery_config(settings, client, sender, renderer)
                app.state.delivery = config
                if settings.delivery_interval_seconds > 0:
                    deliver = functools.partial(deliver_until_idle, runtime, config, utc_now)
                    runtime.every(
                        "deliver", settings.delivery_interval_seconds, deliver, wake=deliver_now
                    )
                key = settings.profile_service_api_key
                forward = functools.partial(
                    forward_opt_outs,
                    runtime.sessions,
                    client,
                    settings.profile_service_url,
                    key.get_secret_value() if key else None,
                )
                runtime.every("opt-outs", OPT_OUT_FORWARD_SECONDS, forward)
                yield
            finally:
                renderer.close()

    return create_service_app(
        settings=settings,
        description=DESCRIPTION,
        plumbing=PLUMBING,
        produces=[Topic.NOTIFICATIONS],
        subscriptions=[
            Subscription(
                "notifications",
                NOTIFICATION_TOPICS,
                # Where a loop delivers, a batch stores a new customer's unsendable messages
                # decided (the loop would decide them the same way a moment later).
                functools.partial(apply_events, decisions=decision_settings(settings))
                if settings.delivery_interval_seconds > 0
                else apply_events,
                # A batch's due-now messages are decided right after it commits.
                after_batch=deliver_now.set,
            )
        ],
        resources=http_client,
        on_start=start_delivery,
        routers=[
            module.router
            for module in (
                rules_routes,
                template_routes,
                notification_routes,
                inbox_routes,
                unsubscribe_routes,
                analytics_routes,
            )
        ],
    )


def decision_settings(settings: NotificationSettings) -> DecisionSettings:
    """The deployment's side of a delivery decision: policy, the channels
    :func:`delivery_config` configures, the oldest trigger that may still send."""
    configured = {NotificationChannel.EMAIL, NotificationChannel.WEBHOOK}
    if settings.sms_gateway_url:
        configured.add(NotificationChannel.SMS)
    return DecisionSettings(settings.policy(), frozenset(configured), _max_trigger_age(settings))


def _max_trigger_age(settings: NotificationSettings) -> timedelta | None:
    age = settings.max_trigger_age_hours
    return timedelta(hours=age) if age > 0 else None


def delivery_config(
    settings: NotificationSettings,
    client: httpx.AsyncClient,
    sender: str,
    renderer: TemplateRenderer,
) -> DeliveryConfig:
    """The channels and policy the delivery loop works with, from settings; ``sender`` names
    this process on the rows it sends."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    channels: dict[NotificationChannel, Channel] = {
        NotificationChannel.EMAIL: SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            username=settings.smtp_username,
            password=password,
            start_tls=settings.smtp_start_tls,
            timeout=settings.send_timeout_seconds,
        ),
        NotificationChannel.WEBHOOK: WebhookChannel(
            settings.webhook_key(), timeout=settings.send_timeout_seconds, client=client
        ),
    }
    if settings.sms_gateway_url:
        token = settings.sms_gateway_token
        channels[NotificationChannel.SMS] = HttpSmsGateway(
            settings.sms_gateway_url,
            sender_id=settings.sms_sender_id,
            api_token=token.get_secret_value() if token else None,
            timeout=settings.send_timeout_seconds,
            client=client,
        )
    return DeliveryConfig(
        policy=settings.policy(),
        channels=channels,
        public_base_url=settings.public_base_url,
        unsubscribe_secret=settings.unsubscribe_secret_bytes(),
        sender=sender,
        renderer=renderer,
        batch_size=settings.delivery_batch_size,
        parallel_sends=settings.parallel_sends,
        max_trigger_age=_max_trigger_age(settings),
    )
