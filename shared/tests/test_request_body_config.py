"""A request body refuses unknown fields and shows its examples in the JSON schema."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from crm_shared import request_body_config


class Renaming(BaseModel):
    model_config = request_body_config({"name": "Ada"}, {"name": "Grace"})

    name: str


class Bare(BaseModel):
    model_config = request_body_config()

    name: str


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        Renaming.model_validate({"name": "Ada", "nmae": "typo"})


def test_the_examples_are_in_the_schema_in_order() -> None:
    assert Renaming.model_json_schema()["examples"] == [{"name": "Ada"}, {"name": "Grace"}]


def test_without_examples_the_schema_has_none() -> None:
    assert "examples" not in Bare.model_json_schema()
    with pytest.raises(ValidationError, match="extra_forbidden"):
        Bare.model_validate({"name": "Ada", "age": 3})
