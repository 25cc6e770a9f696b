"""How the OpenAPI documents problem+json answers, so every status an operation gives is listed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict

from crm_shared._problems import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
UNREADABLE_BODY_DESCRIPTION = "The body could not be read as JSON (e.g. it is not UTF-8)"


def problem_responses(descriptions: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for problem+json answers: status -> what it means here."""
    return {
        status: {
            "description": description,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        for status, description in descriptions.items()
    }


def request_body_config(*examples: dict[str, Any]) -> ConfigDict:
    """The model config of a request body: an unknown field is refused (a typo is not
    ignored), and `examples` are the bodies the OpenAPI shows."""
    config = ConfigDict(extra="forbid")
    if examples:
        config["json_schema_extra"] = {"examples": list(examples)}
    return config


def document_unreadable_bodies(schema: dict[str, Any]) -> None:
    """Add the 400 every operation reading a JSON body gives when the body cannot be decoded.

    FastAPI answers undecodable bytes (not UTF-8) with 400 before validation, while a body that
    decodes but is not JSON gets the 422 of any invalid field.
    """
    (bad_request,) = problem_responses({400: UNREADABLE_BODY_DESCRIPTION}).values()
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                operation.setdefault("responses", {}).setdefault("400", bad_request)
