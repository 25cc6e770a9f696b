"""Every service `make run` starts ships in the production shape too, wired the same way
(the operator console too: image, compose and Kubernetes, at the end of this file).

Its image, its place in docker-compose.yml with its own PostgreSQL database, its Prometheus
target, its Kubernetes manifest, and the topics it uses; its secrets come from the environment
or a Kubernetes Secret, and its settings accept what each shape gives it in production. Read from
the files only: no Docker engine or cluster is needed, so a service that joins `make run`
without joining these fails here.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import re
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from secrets import token_bytes
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import SecretStr

from crm_console.settings import ConsoleSettings
from crm_contracts import Topic
from crm_devstack.services import SERVICES, ServiceSpec, console_spec, repo_root
from crm_shared import Scope, ServiceSettings, generate_api_key

ROOT = repo_root()
DEPLOY = ROOT / "deploy"
CONTAINER_PORT = 8000  # deploy/docker/service-entrypoint.sh serves every image on it

each_service = pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = _load_yaml(ROOT / "docker-compose.yml")
    return compose


@cache
def _topic_partitions() -> dict[str, int]:
    documents = yaml.safe_load_all((DEPLOY / "k8s" / "topics.yaml").read_text(encoding="utf-8"))
    return {doc["spec"]["topicName"]: doc["spec"]["partitions"] for doc in documents if doc}


def _settings_class(spec: ServiceSpec) -> type[ServiceSettings]:
    module = importlib.import_module(f"{spec.package}.settings")
    (settings,) = (
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, ServiceSettings)
        and value is not ServiceSettings
    )
    return settings


def _variables(spec: ServiceSpec) -> set[str]:
    """The environment variables the service's settings read, e.g. ``LIFECYCLE_LOG_LEVEL``."""
    return {f"{spec.env_prefix}{name.upper()}" for name in _settings_class(spec).model_fields}


def _secret_variables(spec: ServiceSpec) -> set[str]:
    """The variables of the settings typed as secrets, e.g. ``NOTIFICATION_SIGNING_SECRET``."""
    return {
        f"{spec.env_prefix}{name.upper()}"
        for name, field in _settings_class(spec).model_fields.items()
        if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)
    }


def _database(spec: ServiceSpec) -> str:
    """The service's PostgreSQL database and login role, e.g. ``lifecycle``."""
    return spec.env_prefix.removesuffix("_").lower()


def _secret_refs(container: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The container's variables read from a Secret: name and key, whether optional or not."""
    return {
        variable["name"]: {
            part: value
            for part, value in variable["valueFrom"]["secretKeyRef"].items()
            if part != "optional"
        }
        for variable in container.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    }


def _optional_secret_refs(container: dict[str, Any]) -> set[str]:
    """The container's variables read from a Secret key that may be missing."""
    return {
        variable["name"]
        for variable in container.get("env", [])
        if variable.get("valueFrom", {}).get("secretKeyRef", {}).get("optional") is True
    }


# ${NAME:?message}, ${NAME:-default} or ${NAME}: compose fills these in from the environment.
_SUBSTITUTION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<operator>:?[?-])(?P<argument>[^}]*))?\}")


def _stand_in_secret() -> str:
    """A fresh random secret of the whsec_ form: it passes for any secret, the webhook's too."""
    return "whsec_" + base64.b64encode(token_bytes(32)).decode()


def _stand_in_keys() -> str:
    _key, record = generate_api_key("stand-in", list(Scope))
    return json.dumps([record.model_dump(mode="json")])


def _compose_value(value: object) -> str:
    """A compose environment value with each substitution filled in by a stand-in."""

    def stand_in(match: re.Match[str]) -> str:
        if match["operator"] in (":-", "-"):
            return match["argument"]  # an optional setting, unset: compose uses its default
        if match["name"] == "CRM_API_KEYS":
            return _stand_in_keys()
        return _stand_in_secret()

    return _SUBSTITUTION.sub(stand_in, str(value))


def _production_settings(
    spec: ServiceSpec, environment: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    """The service's settings read from exactly `environment` (and defaults), as at start."""
    for variable in _variables(spec):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    return _settings_class(spec)()


@each_service
def test_consumer_group_is_named_after_the_service(spec: ServiceSpec) -> None:
    # The group id and the dead-letter topics (<topic>.<group>.dlq) come from service_name.
    assert _settings_class(spec).model_fields["service_name"].default == spec.name


@each_service
def test_image_runs_the_service_in_production(spec: ServiceSpec) -> None:
    dockerfile = (spec.directory / "Dockerfile").read_text(encoding="utf-8")
    assert f"SERVICE_PACKAGE={spec.package}" in dockerfile
    assert f"{spec.env_prefix}ENVIRONMENT=production" in dockerfile
    assert f"COPY services/{spec.name}/ /app/" in dockerfile
    assert f"EXPOSE {CONTAINER_PORT}" in dockerfile
    admitted = (spec.directory / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for part in ("pyproject.toml", "alembic.ini", "migrations/", "src/"):
        assert f"!services/{spec.name}/{part}" in admitted.splitlines()


@each_service
def test_compose_runs_the_service_on_its_own_database(spec: ServiceSpec) -> None:
    compose = _compose()
    service = compose["services"][spec.name]
    prefix, database = spec.env_prefix, _database(spec)
    assert service["build"] == {"context": ".", "dockerfile": f"services/{spec.name}/Dockerfile"}
    environment = service["environment"]
    assert set(environment) <= _variables(spec), "a variable the settings do not read"
    assert environment[f"{prefix}ENVIRONMENT"] == "production"
    database_url = environment[f"{prefix}DATABASE_URL"]
    assert database_url.startswith(f"postgresql+asyncpg://{database}:${{{prefix}DB_PASSWORD:?")
    assert database_url.endswith(f"@postgres:5432/{database}")
    assert environment[f"{prefix}KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    partitions = compose["services"]["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"]
    assert environment[f"{prefix}KAFKA_TOPIC_PARTITIONS"] == partitions
    assert environment[f"{prefix}API_KEYS"].startswith("${CRM_API_KEYS:?")
    for variable in _secret_variables(spec) & set(environment):
        # From the environment, never a literal: required, or optional and empty by default.
        value = environment[variable]
        assert value.startswith(f"${{{variable}:?") or value == f"${{{variable}:-}}", variable
    assert service["ports"] == [f"{spec.port}:{CONTAINER_PORT}"]
    assert service["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "kafka": {"condition": "service_healthy"},
        "kafka-topics": {"condition": "service_completed_successfully"},
    }
    assert f"{prefix}DB_PASSWORD" in compose["services"]["postgres"]["environment"]
    init_sql = (DEPLOY / "postgres" / "init-databases.sql").read_text(encoding="utf-8")
    assert f"CREATE DATABASE {database} OWNER {database};" in init_sql


@each_service
def test_prometheus_scrapes_the_service(spec: ServiceSpec) -> None:
    config = _load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {
        target
        for job in config["scrape_configs"]
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert f"{spec.name}:{CONTAINER_PORT}" in targets
    assert spec.name in _compose()["services"]["prometheus"]["depends_on"]


@each_service
def test_kubernetes_manifest_migrates_then_serves_with_probes(spec: ServiceSpec) -> None:
    path = DEPLOY / "k8s" / f"{spec.name}.yaml"
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    by_kind = {doc["kind"]: doc for doc in documents}
    assert sorted(by_kind) == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    assert {doc["metadata"]["name"] for doc in documents} == {spec.name}
    prefix, labels = spec.env_prefix, {"app.kubernetes.io/name": spec.name}

    config = by_kind["ConfigMap"]["data"]
    assert set(config) <= _variables(spec), "a variable the settings do not read"
    assert config[f"{prefix}ENVIRONMENT"] == "production"
    assert {int(config[f"{prefix}KAFKA_TOPIC_PARTITIONS"])} == set(_topic_partitions().values())

    deployment = by_kind["Deployment"]["spec"]
    assert deployment["selector"]["matchLabels"] == labels
    assert labels.items() <= deployment["template"]["metadata"]["labels"].items()
    pod = deployment["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (migrate,) = pod["initContainers"]
    (server,) = pod["containers"]
    assert (migrate["args"], server["args"]) == (["migrate"], ["serve"])
    # Every secret the settings know can come from the service's Secret, never the ConfigMap.
    secret_variables = {f"{prefix}DATABASE_URL", f"{prefix}API_KEYS", *_secret_variables(spec)}
    assert not secret_variables & set(config)
    secrets = {variable: {"name": spec.name, "key": variable} for variable in secret_variables}
    for container in (migrate, server):
        assert container["image"].startswith(f"crm/{spec.name}:")
        assert container["envFrom"] == [{"configMapRef": {"name": spec.name}}]
        assert _secret_refs(container) == secrets
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory"}
    assert server["ports"] == [{"name": "http", "containerPort": CONTAINER_PORT}]
    assert server["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"

    assert by_kind["Service"]["spec"]["selector"] == labels
    assert by_kind["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels


@each_service
def test_settings_accept_the_compose_environment_in_production(
    spec: ServiceSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    # E.g. a secret production insists on (notification-service's signing secret) is missing.
    environment = _compose()["services"][spec.name]["environment"]
    filled = {variable: _compose_value(value) for variable, value in environment.items()}
    settings = _production_settings(spec, filled, monkeypatch)
    assert settings.environment == "production"


@each_service
def test_settings_accept_the_kubernetes_environment_in_production(
    spec: ServiceSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = DEPLOY / "k8s" / f"{spec.name}.yaml"
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    (config,) = (doc["data"] for doc in documents if doc["kind"] == "ConfigMap")
    (deployment,) = (doc for doc in documents if doc["kind"] == "Deployment")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    stand_ins = {
        f"{spec.env_prefix}DATABASE_URL": "postgresql+asyncpg://user:password@postgres:5432/db",
        f"{spec.env_prefix}API_KEYS": _stand_in_keys(),
    }
    # An optional key left out of the Secret leaves its variable unset.
    secrets = {
        variable: stand_ins.get(variable) or _stand_in_secret()
        for variable in set(_secret_refs(server)) - _optional_secret_refs(server)
    }
    settings = _production_settings(spec, {**config, **secrets}, monkeypatch)
    assert settings.environment == "production"


def test_topics_manifest_declares_every_event_topic_alike() -> None:
    partitions = _topic_partitions()
    assert {name for name in partitions if not name.endswith(".dlq")} == {t.value for t in Topic}
    assert set(partitions.values()) == {
        _compose()["services"]["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"]
    }


# The operator console: an image, a compose service and a Kubernetes manifest like the services,
# but no database, no topics and no migration; it reaches the services over HTTP only.
CONSOLE = console_spec()
CONSOLE_URLS = {
    "CONSOLE_PROFILE_SERVICE_URL": "profile-service",
    "CONSOLE_SCORING_SERVICE_URL": "scoring-service",
    "CONSOLE_LIFECYCLE_SERVICE_URL": "lifecycle-service",
    "CONSOLE_NOTIFICATION_SERVICE_URL": "notification-service",
}


def _console_variables() -> set[str]:
    return {f"CONSOLE_{name.upper()}" for name in ConsoleSettings.model_fields}


def _console_settings(
    environment: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> ConsoleSettings:
    for variable in _console_variables():
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    return ConsoleSettings()


def test_the_console_image_serves_it_in_production_without_migrating() -> None:
    assert CONSOLE is not None
    dockerfile = (CONSOLE.directory / "Dockerfile").read_text(encoding="utf-8")
    assert "SERVICE_PACKAGE=crm_console" in dockerfile
    assert "CONSOLE_ENVIRONMENT=production" in dockerfile
    assert "COPY services/console/ /app/" in dockerfile
    assert f"EXPOSE {CONTAINER_PORT}" in dockerfile
    assert 'CMD ["serve"]' in dockerfile
    admitted = (CONSOLE.directory / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for part in ("pyproject.toml", "src/"):
        assert f"!services/console/{part}" in admitted.splitlines()


def test_compose_runs_the_console_against_every_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert CONSOLE is not None
    service = _compose()["services"]["console"]
    assert service["build"] == {"context": ".", "dockerfile": "services/console/Dockerfile"}
    environment = service["environment"]
    assert set(environment) <= _console_variables(), "a variable the settings do not read"
    for variable, name in CONSOLE_URLS.items():
        assert environment[variable] == f"http://{name}:{CONTAINER_PORT}"
        assert name in service["depends_on"]
    assert environment["CONSOLE_SESSION_SECRET"].startswith("${CONSOLE_SESSION_SECRET:?")
    assert service["ports"] == [f"{CONSOLE.port}:{CONTAINER_PORT}"]
    filled = {variable: _compose_value(value) for variable, value in environment.items()}
    settings = _console_settings(filled, monkeypatch)
    assert settings.environment == "production"
    assert settings.secure_cookies


def test_the_console_kubernetes_manifest_serves_with_probes_and_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = DEPLOY / "k8s" / "console.yaml"
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    by_kind = {doc["kind"]: doc for doc in documents}
    assert sorted(by_kind) == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    assert {doc["metadata"]["name"] for doc in documents} == {"console"}
    labels = {"app.kubernetes.io/name": "console"}
    config = by_kind["ConfigMap"]["data"]
    assert set(config) <= _console_variables(), "a variable the settings do not read"
    assert config["CONSOLE_ENVIRONMENT"] == "production"
    for variable, name in CONSOLE_URLS.items():
        assert config[variable] == f"http://{name}"
    assert "CONSOLE_SESSION_SECRET" not in config

    deployment = by_kind["Deployment"]["spec"]
    assert deployment["selector"]["matchLabels"] == labels
    pod = deployment["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "initContainers" not in pod  # nothing to migrate
    (server,) = pod["containers"]
    assert server["args"] == ["serve"]
    assert server["image"].startswith("crm/console:")
    assert server["envFrom"] == [{"configMapRef": {"name": "console"}}]
    secret = {"name": "console", "key": "CONSOLE_SESSION_SECRET"}
    assert _secret_refs(server) == {"CONSOLE_SESSION_SECRET": secret}
    assert server["ports"] == [{"name": "http", "containerPort": CONTAINER_PORT}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert server[probe]["httpGet"]["path"] == "/healthz"
    assert by_kind["Service"]["spec"]["selector"] == labels
    assert by_kind["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels

    settings = _console_settings(
        {**config, "CONSOLE_SESSION_SECRET": _stand_in_secret()}, monkeypatch
    )
    assert settings.environment == "production"
