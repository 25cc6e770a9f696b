"""Decoding events at the consumer in one msgspec pass, with pydantic's verdict on every refusal.

`crm_contracts.decode_event` (pydantic) parses a record and validates its payload through the
contract models: 8-27 µs an event, a fifth of a consumer's CPU. `WireDecoder` decodes the same
bytes into the same `CloudEvent` with msgspec structs derived from those contracts
(`crm_shared._wire_structs`): one tagged union over the event types, then the models built
without a second validation, the contracts' Python validators called on the way.

Acceptance stays pydantic's by construction: a record the fast path refuses for any reason
(bad JSON, a bound, an unknown type, a form it reads more narrowly, a NUL) is decoded again by
`decode_event`, which accepts it or raises `InvalidEvent` with its usual reason; the fast path
only ever accepts what pydantic accepts, with equal values (shared/tests/test_wire_decoding.py
proves it over valid and mutated events of every registered type).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Union

import msgspec

from crm_contracts import EVENT_TYPES, CloudEvent, EventPayload, decode_event
from crm_shared._wire_rules import contract_rules
from crm_shared._wire_structs import StructBuilder, Untranslatable

# What a refusal on the fast path may raise: msgspec's errors, the contracts' validators
# (PydanticCustomError and ValidationError are ValueErrors), `fromisoformat`, `Decimal`.
_REFUSALS = (msgspec.MsgspecError, ValueError, ArithmeticError)
_BACKSLASH = ord("\\")


class WireDecoder:
    """Decodes CloudEvents of the registered types with msgspec, falling back to pydantic."""

    def __init__(self, event_types: Mapping[str, type[EventPayload]] = EVENT_TYPES) -> None:
        builder = StructBuilder(contract_rules())
        envelopes: list[Any] = []
        self._builders: dict[type, Callable[[Any], Any]] = {}
        self.untranslated: dict[str, str] = {}
        """Event types left to pydantic alone, and why (none in today's contracts)."""
        for event_type, payload in event_types.items():
            try:
                struct, build = builder.model(
                    CloudEvent,
                    fixed={"type": event_type},
                    overrides={"data": builder.as_field(payload)},
                    tag=event_type,
                )
            except Untranslatable as reason:
                self.untranslated[event_type] = str(reason)
                continue
            envelopes.append(struct)
            self._builders[struct] = builder.builder(build)
        self._decoder: msgspec.json.Decoder[Any] | None = (
            msgspec.json.Decoder(Union[tuple(envelopes)]) if envelopes else None  # noqa: UP007
        )

    def fast(self, raw: bytes | str) -> CloudEvent | None:
        """The event decoded on the fast path, or None where pydantic must judge it."""
        if self._decoder is None:
            return None
        # decode_event refuses an escaped NUL naming its field: leave that to it. Looking for a
        # backslash first is one memchr (an int operand; a bytes one takes the slower substring
        # search); few events hold one, so the search for the escape itself is rare.
        if isinstance(raw, bytes):
            if _BACKSLASH in raw and b"\\u0000" in raw:
                return None
        elif "\\" in raw and "\\u0000" in raw:
            return None
        try:
            struct = self._decoder.decode(raw)
            event: CloudEvent = self._builders[type(struct)](struct)
        except _REFUSALS:
            return None
        return event

    def decode(self, raw: bytes | str) -> CloudEvent:
        """Decode `raw` as `decode_event` does (same events, same `InvalidEvent` refusals)."""
        event = self.fast(raw)
        return event if event is not None else decode_event(raw)


@functools.cache
def wire_decoder() -> WireDecoder:
    """The process's decoder of the registered event types (derived once, on first use)."""
    return WireDecoder()


def decode_record_value(raw: bytes | str) -> CloudEvent:
    """`decode_event`'s result for `raw`, on the fast path whenever it is sure of it."""
    return wire_decoder().decode(raw)
