"""Write the JSON Schemas and the AsyncAPI document from the payload models: the contract, once.

python -m crm_contracts.generate          # (re)write contracts/
python -m crm_contracts.generate --check  # exit 1 when the checked-in files are stale
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import models_json_schema

from crm_contracts._envelope import CloudEvent
from crm_contracts._order_intake import CancelledOrder, PlacedOrder, RefundedOrder
from crm_contracts._payload import EventPayload, Topic
from crm_contracts._registry import EVENT_TYPES

# contracts/src/crm_contracts/generate.py -> contracts
CONTRACTS_DIR = Path(__file__).resolve().parents[2]
ASYNCAPI_FILE = "asyncapi.json"
SCHEMAS_DIR = "schemas"

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"
# Structured mode: the whole CloudEvent is the Kafka message value.
MESSAGE_CONTENT_TYPE = "application/cloudevents+json"

_TOPIC_DESCRIPTIONS: dict[Topic, str] = {
    Topic.ORDERS: "Orders placed, refunded and cancelled, naming and keyed by the CRM customer "
    "id only: from shop backends that hold CRM ids, or from profile-service's order intake "
    "(HTTP, and crm.order-intake for shops that name customers by their own identities). "
    "Amounts are in the deployment's accounting currency; every consumer refuses others.",
    Topic.CUSTOMERS: "Customer profiles, merges, erasures and consent, from profile-service.",
    Topic.ACTIVITIES: "What customers do besides buying (page views, email opens, logins, "
    "abandoned carts: activity.recorded) and what they tell the shop (complaints, support "
    "tickets, NPS and CSAT answers, return requests: feedback.recorded).",
    Topic.SCORES: "RFM, CLV, churn risk, health and segments, from scoring-service.",
    Topic.LIFECYCLE: "Lifecycle stage changes and churn warnings, from lifecycle-service.",
    Topic.NOTIFICATIONS: "Outreach sent, failed or suppressed, from notification-service.",
    Topic.ORDER_INTAKE: "Orders from shops that name the customer by their own identities "
    "(e-mail, phone, their customer id) instead of the CRM id: the same JSON documents as the "
    "body of profile-service's POST /v1/orders, not CloudEvents. profile-service resolves the "
    "customer and publishes the order.* event with the CRM customer id on crm.orders.",
}

# Plain JSON documents, not CloudEvents: what a shop POSTs to /v1/orders, sent over Kafka.
_INTAKE_DOCUMENTS: dict[str, type[BaseModel]] = {
    "intake.order.placed": PlacedOrder,
    "intake.order.refunded": RefundedOrder,
    "intake.order.cancelled": CancelledOrder,
}
_INTAKE_CONTENT_TYPE = "application/json"


def _envelope_model(payload_model: type[EventPayload]) -> type[BaseModel]:
    """The CloudEvent envelope with `data` narrowed to `payload_model`, e.g. OrderPlacedEvent."""
    return create_model(
        f"{payload_model.__name__}Event",
        __base__=CloudEvent,
        __doc__=_docstring(payload_model),
        data=(payload_model, Field(description=f"The {payload_model.event_type} payload.")),
    )


def _docstring(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "")


def _pin_type(envelope_schema: dict[str, Any], event_type: str) -> None:
    # The envelope model types `type` as any registered type; each message has exactly one.
    envelope_schema["properties"]["type"] = {
        "const": event_type,
        "description": "The event type; it decides the shape of `data`.",
        "type": "string",
    }


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def render_json_schemas() -> dict[str, str]:
    """Return {"order.placed.json": schema text, ...}: each event's full envelope schema."""
    rendered: dict[str, str] = {}
    for event_type, payload_model in EVENT_TYPES.items():
        schema = _envelope_model(payload_model).model_json_schema()
        _pin_type(schema, event_type)
        rendered[f"{event_type}.json"] = _dump({"$schema": JSON_SCHEMA_DIALECT, **schema})
    return rendered


def render_asyncapi() -> str:
    """Return the AsyncAPI 3.0.0 document: one channel per topic, one message per event type."""
    envelopes = {event_type: _envelope_model(model) for event_type, model in EVENT_TYPES.items()}
    _, definitions = models_json_schema(
        [(model, "validation") for model in (*envelopes.values(), *_INTAKE_DOCUMENTS.values())],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = definitions["$defs"]
    for event_type, envelope in envelopes.items():
        _pin_type(schemas[envelope.__name__], event_type)

    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in Topic:
        if topic is Topic.ORDER_INTAKE:
            continue
        channel_id = topic.name.lower()
        models = [model for model in EVENT_TYPES.values() if model.topic is topic]
        channels[channel_id] = {
            "address": topic.value,
            "description": _TOPIC_DESCRIPTIONS[topic],
            "messages": {
                model.__name__: {"$ref": f"#/components/messages/{model.__name__}"}
                for model in models
            },
            "bindings": {"kafka": {"topic": topic.value, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "summary": f"Publish to {topic.value}; the message key is the customer id.",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{model.__name__}"} for model in models
            ],
        }
        for model in models:
            messages[model.__name__] = _message(model, envelopes[model.event_type])
    _add_intake_channel(channels, operations, messages)

    return _dump(
        {
            "asyncapi": "3.0.0",
            "info": {
                "title": "CRM event contracts",
                "version": "1.0.0",
                "description": "Every event the CRM services exchange over Kafka: a CloudEvents "
                "1.0 envelope in structured JSON mode around a typed payload. The Kafka key and "
                "the CloudEvents `subject` are the customer id, so one customer's events stay in "
                "order. Money is a decimal string plus an ISO 4217 code, never a float. "
                "Generated from crm_contracts; do not edit by hand.",
            },
            "defaultContentType": MESSAGE_CONTENT_TYPE,
            "channels": channels,
            "operations": operations,
            "components": {"messages": messages, "schemas": schemas},
        }
    )


def _message(payload_model: type[EventPayload], envelope: type[BaseModel]) -> dict[str, Any]:
    docstring = _docstring(payload_model)
    return {
        "name": payload_model.event_type,
        "title": payload_model.__name__,
        "summary": docstring.split("\n\n")[0].replace("\n", " "),
        "description": docstring,
        "contentType": MESSAGE_CONTENT_TYPE,
        "payload": {"$ref": f"#/components/schemas/{envelope.__name__}"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The customer id (the event's subject)."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _add_intake_channel(
    channels: dict[str, Any], operations: dict[str, Any], messages: dict[str, Any]
) -> None:
    topic = Topic.ORDER_INTAKE
    channel_id = topic.name.lower()
    channels[channel_id] = {
        "address": topic.value,
        "description": _TOPIC_DESCRIPTIONS[topic],
        "messages": {
            model.__name__: {"$ref": f"#/components/messages/{model.__name__}"}
            for model in _INTAKE_DOCUMENTS.values()
        },
        "bindings": {"kafka": {"topic": topic.value, "bindingVersion": KAFKA_BINDING_VERSION}},
    }
    operations[f"publish_{channel_id}"] = {
        "action": "send",
        "summary": f"Publish to {topic.value}; key it by the shop's own customer identity.",
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [
            {"$ref": f"#/channels/{channel_id}/messages/{model.__name__}"}
            for model in _INTAKE_DOCUMENTS.values()
        ],
    }
    for name, model in _INTAKE_DOCUMENTS.items():
        docstring = _docstring(model)
        messages[model.__name__] = {
            "name": name,
            "title": model.__name__,
            "summary": docstring,
            "description": docstring,
            "contentType": _INTAKE_CONTENT_TYPE,
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "description": "The shop's own id of the customer (or the identity it "
                        "names): one customer's documents then stay in order.",
                    },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }


def render_all() -> dict[Path, str]:
    """Every generated file, by its path relative to the contracts directory."""
    files = {Path(SCHEMAS_DIR) / name: text for name, text in render_json_schemas().items()}
    files[Path(ASYNCAPI_FILE)] = render_asyncapi()
    return files


def _stale_schema_files(directory: Path, expected: dict[Path, str]) -> list[Path]:
    return sorted(
        path.relative_to(directory)
        for path in (directory / SCHEMAS_DIR).glob("*.json")
        if path.relative_to(directory) not in expected
    )


def out_of_date(directory: Path = CONTRACTS_DIR) -> list[Path]:
    """The generated files that are missing, different, or no longer generated."""
    expected = render_all()
    changed = [
        relative
        for relative, text in expected.items()
        if not (directory / relative).is_file()
        or (directory / relative).read_text(encoding="utf-8") != text
    ]
    return sorted(changed + _stale_schema_files(directory, expected))


def write(directory: Path = CONTRACTS_DIR) -> None:
    """Write every generated file into `directory` and delete schemas no model produces any more."""
    expected = render_all()
    for stale in _stale_schema_files(directory, expected):
        (directory / stale).unlink()
    for relative, text in expected.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the files on disk are out of date"
    )
    arguments = parser.parse_args(argv)
    if arguments.check:
        stale = out_of_date()
        for path in stale:
            print(f"out of date: {CONTRACTS_DIR / path}", file=sys.stderr)
        if stale:
            print("run `make contracts` to regenerate them", file=sys.stderr)
            return 1
        return 0
    write()
    print(f"wrote {len(render_all())} files to {CONTRACTS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
