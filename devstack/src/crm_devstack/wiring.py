"""Which service of the stack talks to which, beyond Kafka: the variables that connect them.

The services' settings default to the development addresses (notification-service looks for
profile-service on port 8001 and for SMTP on 1025), but the stack sets these variables anyway,
so the services stay connected when it runs on free ports beside a developer's ``make run``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from crm_devstack.mail_sink import MailSink
from crm_devstack.services import ServiceSpec

NOTIFICATION_SERVICE = "notification-service"
PROFILE_SERVICE = "profile-service"
# The stack's accounting currency, the same for every service (as in docker-compose.yml and
# deploy/k8s): an order in any other is refused wherever it enters.
ACCOUNTING_CURRENCY = "USD"

NO_SCHEDULED_JOBS: Mapping[str, str] = {
    "SCORING_REFIT_INTERVAL_SECONDS": "0",
    "SCORING_RESCORE_INTERVAL_SECONDS": "0",
    "LIFECYCLE_SWEEP_INTERVAL_SECONDS": "0",
}
"""Settings that leave model fits, full re-scores and aging sweeps to whoever drives the stack
(a test, the demo, a benchmark), instead of the services' own clocks."""


def sends_mail(service_names: Collection[str]) -> bool:
    """Whether any of these services sends email, so the stack needs its mail sink."""
    return NOTIFICATION_SERVICE in service_names


def service_links(
    name: str, *, urls: Mapping[str, str], api_key: str, mail_sink: MailSink | None
) -> dict[str, str]:
    """The variables that point service `name` at the others and at the mail sink.

    `urls` holds every service of the stack by name (its own included); `api_key` is the
    stack's all-scope key, which every service accepts.
    """
    if name != NOTIFICATION_SERVICE:
        return {}
    # Unsubscribe links in the mail point back at notification-service itself.
    links = {"NOTIFICATION_PUBLIC_BASE_URL": urls[name]}
    if mail_sink is not None:
        links["NOTIFICATION_SMTP_HOST"] = mail_sink.host
        links["NOTIFICATION_SMTP_PORT"] = str(mail_sink.port)
    profile_url = urls.get(PROFILE_SERVICE)
    if profile_url is not None:
        # Opt-outs are written to profile-service's consent API, which needs the write scope.
        links["NOTIFICATION_PROFILE_SERVICE_URL"] = profile_url
        links["NOTIFICATION_PROFILE_SERVICE_API_KEY"] = api_key
    return links


def deployment_policy(spec: ServiceSpec) -> dict[str, str]:
    """The settings every service of the stack must share: the accounting currency.

    Set for each explicitly, so a developer's ``SCORING_CURRENCY`` in the environment cannot
    leave one service keeping other books than the rest.
    """
    return {f"{spec.env_prefix}CURRENCY": ACCOUNTING_CURRENCY}


SERVICE_URL_SETTINGS: Mapping[str, str] = {
    "profile-service": "CONSOLE_PROFILE_SERVICE_URL",
    "scoring-service": "CONSOLE_SCORING_SERVICE_URL",
    "lifecycle-service": "CONSOLE_LIFECYCLE_SERVICE_URL",
    "notification-service": "CONSOLE_NOTIFICATION_SERVICE_URL",
}


def console_links(urls: Mapping[str, str]) -> dict[str, str]:
    """The variables that point the console at the stack's services (development mode:
    cookies without Secure, since the stack speaks plain HTTP on the loopback)."""
    links = {"CONSOLE_ENVIRONMENT": "development"}
    for name, variable in SERVICE_URL_SETTINGS.items():
        if name in urls:
            links[variable] = urls[name]
    return links
