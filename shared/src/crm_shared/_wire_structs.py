"""msgspec structs derived from the pydantic event contracts, and builders back to the models.

`crm_contracts` stays pydantic only (a shop installs it alone); this module reads each contract
model's fields (types, `Field` bounds, validators) and derives, once per process:

- a msgspec `Struct` that checks in C what msgspec expresses exactly: JSON types, string and
  list lengths, number bounds, patterns, literals and enums;
- a builder, generated Python source, that turns a decoded struct into the contract model
  without a second validation: amounts and times are read by the rules of `_wire_rules`
  (stated from the contracts' own constants), every other validator of the contract is called.

Soundness over reach: a construct without an exact translation raises `Untranslatable`, and
its event type is left to pydantic. Whatever a struct or builder refuses is decoded by pydantic
too (`_wire_decoding`), so a translation may be narrower than the contract, never wider.
"""

from __future__ import annotations

import copy
import inspect
import re
import types
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import msgspec
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    PlainValidator,
    WithJsonSchema,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from crm_shared._wire_rules import (
    AmountText,
    Between,
    Choices,
    NestedAmount,
    WireRule,
    moment_reader,
)

# Metadata that only shapes serialisation (and JSON holds no infinities or NaN to allow).
_IGNORED_METADATA = frozenset({"PlainSerializer", "AllowInfNan", "SerializeAsAny"})


# Model settings that leave validation as msgspec does it: frozen (no setting after building),
# unknown fields ignored, no infinities (JSON has none), and documentation.
_TRANSLATED_CONFIG = frozenset({"frozen", "extra", "allow_inf_nan", "json_schema_extra", "title"})


class Untranslatable(Exception):
    """A contract construct without an exact msgspec translation: pydantic decodes that type."""


def _anchored(pattern: str) -> str:
    # pydantic matches patterns with Rust's regex, where "$" is the end of the text; msgspec
    # with Python's `re`, where "$" also matches before a final newline. "\Z" is Rust's "$".
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + r"\Z"
    raise Untranslatable(f"pattern {pattern!r} does not end with $")


def _refuse() -> None:
    """Called by generated builders where a value is outside its wire rule."""
    raise ValueError("outside the wire rule")


class _Field:
    """One field's msgspec type and how its decoded value becomes the model's value."""

    def __init__(self, wire: Any, finish: Callable[[str], str] | None = None) -> None:
        self.wire = wire
        self.finish = finish  # from the expression of the decoded value, the final one's


class StructBuilder:
    """Derives, per contract model, its struct and its generated builder (cached)."""

    def __init__(self, rules: Mapping[Callable[..., Any], WireRule]) -> None:
        self._rules = rules
        self._namespace: dict[str, Any] = {
            "_new": object.__new__,
            "_dict": BaseModel.__dict__["__dict__"].__set__,
            # The slots every pydantic model has, set directly (what `model_construct` does).
            "_fields_set": BaseModel.__dict__["__pydantic_fields_set__"].__set__,
            "_extra": BaseModel.__dict__["__pydantic_extra__"].__set__,
            "_private": BaseModel.__dict__["__pydantic_private__"].__set__,
            "_UNSET": msgspec.UNSET,
            "_copy": copy.deepcopy,
            "_Decimal": Decimal,
            "_refuse": _refuse,
        }
        self._made: dict[object, tuple[Any, str]] = {}
        self._counter = 0

    def builder(self, name: str) -> Callable[[Any], Any]:
        """The generated builder called `name` (second item of `model`'s result)."""
        return self._namespace[name]  # type: ignore[no-any-return]

    def model(
        self,
        model: type[BaseModel],
        *,
        amounts: Mapping[str, AmountText] | None = None,
        fixed: Mapping[str, object] | None = None,
        overrides: Mapping[str, _Field] | None = None,
        tag: str | None = None,
    ) -> tuple[Any, str]:
        """`model`'s struct and the name of its builder.

        `amounts` narrows amount fields (money an order's rule bounds); the envelope passes
        `fixed` (its `type`, the struct's `tag`) and `overrides` (its `data`, the payload's
        struct), whose field validators those imply.
        """
        amounts, fixed, overrides = amounts or {}, fixed or {}, overrides or {}
        key = (model, tuple(sorted(amounts.items())), tag)
        if key in self._made:
            return self._made[key]
        self._check_model(model, implied={*fixed, *overrides})
        fields: dict[str, _Field] = {}
        for name, info in model.model_fields.items():
            if name in fixed:
                continue
            fields[name] = overrides.get(name) or self._field(
                info.annotation, info.metadata, amounts.get(name)
            )
        self._counter += 1
        struct = msgspec.defstruct(
            f"{model.__name__}Wire{self._counter}",
            [
                (name, field.wire)
                if model.model_fields[name].is_required()
                else (name, Union[field.wire, msgspec.UnsetType], msgspec.UNSET)  # noqa: UP007
                for name, field in fields.items()
            ],
            kw_only=True,
            # Decoded from JSON, a struct holds no reference cycle: untracked by the collector,
            # it is cheaper to make and to free (each lives for one decode).
            gc=False,
            tag_field="type" if tag is not None else None,
            tag=tag,
        )
        builder = f"_build_{model.__name__}_{self._counter}"
        self._generate(builder, model, fields, fixed)
        self._made[key] = (struct, builder)
        return struct, builder

    def as_field(self, model: type[BaseModel]) -> _Field:
        """`model` as a field: its struct, finished by its builder."""
        return self._shape(model, {}, [])

    @staticmethod
    def _check_model(model: type[BaseModel], implied: set[str]) -> None:
        decorators = model.__pydantic_decorators__
        for decorator in decorators.field_validators.values():
            if not set(decorator.info.fields) <= implied:
                raise Untranslatable(f"{model.__name__} has field validators")
        if (
            decorators.field_serializers
            or decorators.computed_fields
            or model.__private_attributes__
        ):
            raise Untranslatable(f"{model.__name__} has serializers, computed fields or privates")
        config = model.model_config
        if config.get("extra") not in (None, "ignore") or set(config) - _TRANSLATED_CONFIG:
            raise Untranslatable(f"{model.__name__} has a configuration msgspec does not share")
        for name, info in model.model_fields.items():
            if info.alias not in (None, name) or info.validation_alias not in (None, name):
                raise Untranslatable(f"{model.__name__}.{name} has an alias")

    def _constant(self, value: object) -> str:
        self._counter += 1
        name = f"_c{self._counter}"
        self._namespace[name] = value
        return name

    def _generate(
        self,
        builder: str,
        model: type[BaseModel],
        fields: dict[str, _Field],
        fixed: Mapping[str, object],
    ) -> None:
        """Write the builder: each field's value finished, the instance made, model checks run.

        The instance is made as `model_construct` makes it (dict, fields set, no extras, no
        privates), without its per-call overhead; the fields set holds what the JSON held.
        Producers send every field (the models dump them all), so when every optional field is
        present a first branch fills the dict at once, without a test and a set insertion for
        each; any absent one takes the general branch.
        """
        infos = model.model_fields
        required = frozenset(n for n, info in infos.items() if info.is_required())
        optional = [n for n in infos if n not in required and n not in fixed]
        lines = [f"def {builder}(s):"]
        if optional:
            present = " and ".join(f"s.{name} is not _UNSET" for name in optional)
            lines.append(f"    if {present}:")
            every = frozenset(infos) - frozenset(fixed) | required
            self._fill(lines, "        ", model, fields, fixed, every, every_present=True)
            lines.append("    else:")
        self._fill(lines, "        " if optional else "    ", model, fields, fixed, required)
        lines.append(f"    o = _new({self._constant(model)})")
        lines.append("    _dict(o, d)")
        lines.append("    _fields_set(o, fs)")
        lines.append("    _extra(o, None)")
        lines.append("    _private(o, None)")
        for decorator in model.__pydantic_decorators__.model_validators.values():
            function = decorator.func
            if decorator.info.mode != "after" or len(inspect.signature(function).parameters) != 1:
                raise Untranslatable(f"{model.__name__} has a model validator other than after")
            lines.append(f"    {self._constant(function)}(o)")
        lines.append("    return o")
        exec("\n".join(lines), self._namespace)  # our own generated source, from field names

    def _fill(
        self,
        lines: list[str],
        indent: str,
        model: type[BaseModel],
        fields: dict[str, _Field],
        fixed: Mapping[str, object],
        fields_set: frozenset[str],
        *,
        every_present: bool = False,
    ) -> None:
        """Append the lines setting `fs` (starting from `fields_set`) and `d`, the values."""
        if model.model_config.get("frozen") and (
            every_present
            or all(info.is_required() or n in fixed for n, info in model.model_fields.items())
        ):
            # No field of a frozen model is ever set, so nothing adds to its fields set (copies
            # copy it): instances with the same fields share one set instead of making their own.
            lines.append(f"{indent}fs = {self._constant(set(fields_set))}")
        else:
            lines.append(f"{indent}fs = set({self._constant(fields_set)})")
        values: list[str] = []
        for number, (name, info) in enumerate(model.model_fields.items()):
            if name in fixed:  # the envelope's type: the struct's tag
                values.append(f"{name!r}: {self._constant(fixed[name])}")
                continue
            finish = fields[name].finish or (lambda v: v)
            if info.is_required() or every_present:
                values.append(f"{name!r}: {finish(f's.{name}')}")
                continue
            local = f"v{number}"
            lines.append(f"{indent}{local} = s.{name}")
            lines.append(f"{indent}if {local} is _UNSET:")
            lines.append(f"{indent}    {local} = {self._default(info)}")
            lines.append(f"{indent}else:")
            lines.append(f"{indent}    fs.add({name!r})")
            if fields[name].finish is not None:
                lines.append(f"{indent}    {local} = {finish(local)}")
            values.append(f"{name!r}: {local}")
        # One dict display, in the model's field order (as validation fills `__dict__`).
        lines.append(f"{indent}d = {{{', '.join(values)}}}")

    def _default(self, info: FieldInfo) -> str:
        if info.default_factory is not None or info.default is PydanticUndefined:
            raise Untranslatable("an optional field without a plain default")
        default = info.default
        if default is None or isinstance(default, str | int | float | bool | Enum):
            return self._constant(default)
        return f"_copy({self._constant(default)})"  # each instance its own mutable default

    def _field(
        self, annotation: Any, metadata: list[Any], amount: AmountText | None = None
    ) -> _Field:
        """Translate one annotated type (with its metadata) into a `_Field`."""
        flat: list[Any] = []
        for item in metadata:  # Field(...) inside Annotated carries its own metadata
            flat.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        if get_origin(annotation) is Annotated:
            inner, *more = get_args(annotation)
            return self._field(inner, [*more, *flat], amount)
        constraints: dict[str, Any] = {}
        called: list[Callable[[Any], Any]] = []
        rules: list[WireRule] = []
        plain: Callable[[Any], Any] | None = None
        schema: dict[str, Any] | None = None
        for item in flat:
            if isinstance(item, at.MinLen):
                constraints["min_length"] = item.min_length
            elif isinstance(item, at.MaxLen):
                constraints["max_length"] = item.max_length
            elif isinstance(item, at.Ge | at.Le | at.Gt | at.Lt):
                key = type(item).__name__.lower()
                constraints[key] = getattr(item, key)
            elif type(item).__name__ == "_PydanticGeneralMetadata" and set(vars(item)) == {
                "pattern"
            }:
                constraints["pattern"] = _anchored(item.pattern)
            elif isinstance(item, AfterValidator | BeforeValidator):
                if item.func in self._rules:
                    rules.append(self._rules[item.func])
                elif isinstance(item, BeforeValidator):
                    raise Untranslatable(f"the before validator {item.func!r}")
                else:
                    called.append(_one_argument(item.func))
            elif isinstance(item, PlainValidator):
                plain = _one_argument(item.func)
            elif isinstance(item, WithJsonSchema):
                schema = item.json_schema
            elif type(item).__name__ not in _IGNORED_METADATA:
                raise Untranslatable(f"metadata {item!r}")
        if plain is not None:
            if constraints or rules:
                raise Untranslatable("a plain validator beside constraints")
            return self._called(_Field(Any, self._call(plain)), called)
        if annotation is Decimal:
            amount = amount or next((r for r in rules if isinstance(r, AmountText)), None)
            if amount is None or constraints or schema is None or schema.get("type") != "string":
                raise Untranslatable("a decimal without an amount rule")
            if any(not isinstance(rule, AmountText) for rule in rules):
                raise Untranslatable("a decimal with a rule other than an amount's")
            matches = self._constant(re.compile(amount.pattern).fullmatch)
            return self._called(
                _Field(str, lambda v: f"(_Decimal({v}) if {matches}({v}) else _refuse())"), called
            )
        if amount is not None:
            raise Untranslatable("an amount rule on something other than a decimal")
        return self._called(self._shape(annotation, constraints, rules), called)

    def _shape(self, annotation: Any, constraints: dict[str, Any], rules: list[WireRule]) -> _Field:
        """The field of a bare type: scalars, literals, enums, models, lists, options."""
        meta = [msgspec.Meta(**constraints)] if constraints else []
        origin, args = get_origin(annotation), get_args(annotation)
        if annotation is AwareDatetime:
            betweens = [rule for rule in rules if isinstance(rule, Between)]
            if constraints or len(betweens) != len(rules) or len(betweens) > 1:
                raise Untranslatable("a time with constraints or other rules")
            return _Field(str, self._call(moment_reader(betweens[0] if betweens else None)))
        if annotation is str and rules:
            return self._choice(constraints, rules)
        if rules and not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            raise Untranslatable(f"rules {rules!r} on {annotation!r}")
        if annotation in (str, int, float):
            return _Field(Annotated[annotation, *meta] if meta else annotation)
        if constraints and origin not in (list, dict, Union, types.UnionType):
            raise Untranslatable(f"constraints on {annotation!r}")
        if annotation is bool or annotation is type(None):
            return _Field(annotation)
        if origin is Literal and all(isinstance(arg, str) for arg in args):
            return _Field(annotation)
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            if not all(isinstance(member.value, str) for member in annotation):
                raise Untranslatable(f"{annotation!r} has values other than strings")
            return _Field(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            amounts = {}
            for rule in rules:
                if not isinstance(rule, NestedAmount):
                    raise Untranslatable(f"the rule {rule!r} on a model")
                amounts[rule.field] = rule.rule
            struct, builder = self.model(annotation, amounts=amounts)
            return _Field(struct, self._call(self.builder(builder)))
        if origin is list and len(args) == 1:
            item = self._field(args[0], [])
            wire: Any = list[item.wire]  # type: ignore[name-defined]
            return _Field(
                Annotated[wire, *meta] if meta else wire,
                None if item.finish is None else _each(item.finish),
            )
        if origin is dict and len(args) == 2:
            key, value = self._field(args[0], []), self._field(args[1], [])
            if key.finish is not None:
                raise Untranslatable("a dict key that needs finishing")
            wire = dict[key.wire, value.wire]  # type: ignore[name-defined]
            return _Field(
                Annotated[wire, *meta] if meta else wire,
                None if value.finish is None else _each_value(value.finish),
            )
        if origin in (Union, types.UnionType) and type(None) in args and len(args) == 2:
            (inner,) = [arg for arg in args if arg is not type(None)]
            # pydantic applies an option's bounds to its value: `str | None = Field(max_length=5)`.
            if get_origin(inner) is Annotated:
                if constraints:
                    raise Untranslatable("bounds on an option and on its value")
                field = self._field(inner, [])
            else:
                field = self._shape(inner, constraints, [])
            wire = Union[field.wire, None]  # noqa: UP007 - built at run time
            return _Field(wire, None if field.finish is None else _unless_none(field.finish))
        raise Untranslatable(f"the type {annotation!r}")

    def _choice(self, constraints: dict[str, Any], rules: list[WireRule]) -> _Field:
        (rule,) = rules
        if not isinstance(rule, Choices):
            raise Untranslatable(f"the rule {rule!r} on text")
        pattern = constraints.get("pattern")
        for value in rule.values:  # the choices must satisfy the field's own bounds too
            if pattern is not None and re.search(pattern, value) is None:
                raise Untranslatable(f"choice {value!r} outside {pattern!r}")
            if (
                not constraints.get("min_length", 0)
                <= len(value)
                <= constraints.get("max_length", len(value))
            ):
                raise Untranslatable(f"choice {value!r} outside the length bounds")
        return _Field(Literal[tuple(sorted(rule.values))])

    def _call(self, function: Callable[[Any], Any]) -> Callable[[str], str]:
        name = self._constant(function)
        return lambda v: f"{name}({v})"

    def _called(self, field: _Field, called: list[Callable[[Any], Any]]) -> _Field:
        """`field` with the contract's remaining validators called on its finished value."""
        if not called:
            return field
        calls = [self._constant(function) for function in called]
        inner = field.finish

        def finish(value: str) -> str:
            value = inner(value) if inner else value
            for call in calls:
                value = f"{call}({value})"
            return value

        return _Field(field.wire, finish)


def _one_argument(function: Callable[..., Any]) -> Callable[[Any], Any]:
    """A validator the builders may call with the value alone (not one that takes `info`)."""
    if len(inspect.signature(function).parameters) != 1:
        raise Untranslatable(f"the validator {function!r} takes more than the value")
    return function


def _each(finish: Callable[[str], str]) -> Callable[[str], str]:
    return lambda v: f"[{finish('x')} for x in {v}]"


def _each_value(finish: Callable[[str], str]) -> Callable[[str], str]:
    return lambda v: f"{{k: {finish('x')} for k, x in {v}.items()}}"


def _unless_none(finish: Callable[[str], str]) -> Callable[[str], str]:
    return lambda v: f"(None if {v} is None else {finish(v)})"
