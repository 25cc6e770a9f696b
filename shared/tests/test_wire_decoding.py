"""The consumers' msgspec decoder agrees with the pydantic contracts on every record.

For every registered event type, valid events and mutated ones (a field replaced by tricky
JSON, removed, an unknown one added, the bytes broken) are decoded both ways: what
`decode_event` accepts, `WireDecoder` accepts with identical values (same JSON, same fields
set, same types); what it refuses, `WireDecoder` refuses with the same reason and field. And
what the fast path accepts, pydantic accepts: the fast path is never the one that decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict
from test_contracts import NOW, PAYLOAD_FACTORIES, SOURCE

from crm_contracts import (
    EVENT_TYPES,
    ISO_4217_CURRENCIES,
    CloudEvent,
    EventPayload,
    InvalidEvent,
    OrderPlaced,
    build_event,
    decode_event,
    encode_event,
)
from crm_shared._wire_decoding import WireDecoder, decode_record_value

WIRE = WireDecoder()
TYPES = sorted(EVENT_TYPES)
FACTORIES: dict[str, Callable[..., EventPayload]] = {
    model.event_type: factory for model, factory in PAYLOAD_FACTORIES.items()
}
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def a_document(event_type: str) -> dict[str, Any]:
    """A valid event of `event_type` as its JSON object, every field the factory fills."""
    event = build_event(FACTORIES[event_type](), source=SOURCE, time=NOW)
    document: dict[str, Any] = json.loads(encode_event(event))
    return document


def fields_sets(model: object) -> object:
    """Every nested model's fields set, to compare what `exclude_unset` would see."""
    if isinstance(model, BaseModel):
        return (
            type(model),
            sorted(model.model_fields_set),
            {name: fields_sets(value) for name, value in model.__dict__.items()},
        )
    if isinstance(model, list):
        return [fields_sets(item) for item in model]
    return type(model)


def assert_identical(fast: CloudEvent, slow: CloudEvent) -> None:
    assert fast == slow
    assert type(fast.data) is type(slow.data)
    # The JSON tells "12.5" from "12.50" and an offset from another; == does not.
    assert encode_event(fast) == encode_event(slow)
    assert fields_sets(fast) == fields_sets(slow)


def outcome(decode: Callable[[bytes], CloudEvent], raw: bytes) -> CloudEvent | tuple[str, Any]:
    try:
        return decode(raw)
    except InvalidEvent as refusal:
        return (refusal.reason, refusal.field)


def assert_agree(raw: bytes) -> None:
    """The wire decoder's verdict on `raw` is pydantic's, and its fast path never decides."""
    expected = outcome(decode_event, raw)
    fast = WIRE.fast(raw)
    if fast is not None:
        assert isinstance(expected, CloudEvent), (
            f"the fast path accepted what pydantic refuses: {expected}"
        )
        assert_identical(fast, expected)
    actual = outcome(WIRE.decode, raw)
    if isinstance(expected, CloudEvent):
        assert isinstance(actual, CloudEvent)
        assert_identical(actual, expected)
    else:
        assert actual == expected


# --- tricky JSON values ---------------------------------------------------------------------


def _times() -> st.SearchStrategy[str]:
    """Times in the layouts pydantic reads and a few it does not, near the supported ends too."""
    moments = st.datetimes(
        min_value=datetime(1899, 12, 30), max_value=datetime(2200, 1, 2)
    ) | st.sampled_from([datetime(1900, 1, 1), datetime(2199, 12, 31, 23, 59, 59)])
    offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    ) | st.just(UTC)

    @st.composite
    def layout(draw: st.DrawFn) -> str:
        moment = draw(moments).replace(tzinfo=draw(offsets))
        text = moment.isoformat(sep=draw(st.sampled_from(["T", " ", "t", "_", "x"])))
        if draw(st.booleans()):
            text = text.replace("+00:00", draw(st.sampled_from(["Z", "z", "-00:00"])))
        digits = draw(st.integers(min_value=0, max_value=9))
        if digits:  # a fraction of any length (pydantic truncates past six)
            fraction = "".join(
                draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits))
            )
            head, tail = text[:19], text[19:]
            if "." in tail:
                tail = tail[tail.index(".") + 7 :]
            text = f"{head}.{fraction}{tail}"
        mangle = draw(
            st.sampled_from(["", "no-seconds", "no-colon-offset", "short-offset", "naive", "dot"])
        )
        if mangle == "no-seconds":
            text = text[:16] + text[19:]
        elif mangle == "no-colon-offset" and text[-3] == ":":
            text = text[:-3] + text[-2:]
        elif mangle == "short-offset" and text[-3] == ":":
            text = text[:-3]
        elif mangle == "naive":
            text = text[:19]
        elif mangle == "dot":
            text = text[:19] + "." + text[19:]
        return text

    return layout()


def _tricky_like(value: object) -> st.SearchStrategy[object]:
    """Values near the bounds of the kind of field `value` sits in (amounts, times, numbers)."""
    if isinstance(value, bool) or value is None:
        return st.none() | st.booleans() | st.integers(-1, 2)
    if isinstance(value, int | float):
        return (
            st.sampled_from([-1, 0, 1, 5, 6, 10, 11, 100, 101, 1e308, -0.0, 0.5, 1.5, 100.0001])
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.integers(-(2**64), 2**64)
        )
    if isinstance(value, str) and value[:1].isdigit() and ":" in value:
        return _times()
    if isinstance(value, str) and value and all(char in "0123456789.-" for char in value):
        return _amounts()
    return _texts()


def _amounts() -> st.SearchStrategy[object]:
    digits = st.text("0123456789", min_size=1, max_size=16)
    texts = st.builds(
        lambda sign, whole, fraction: f"{sign}{whole}{fraction}",
        st.sampled_from(["", "", "-", "+"]),
        digits,
        st.sampled_from([""]) | digits.map(lambda d: "." + d[:10]),
    )
    edges = st.sampled_from(
        [
            "0",
            "-0",
            "0.00",
            "-0.000001",
            "0.000001",
            "0.0000001",
            "999999999999.999999",
            "1000000000000",
            "999999999999999.999999",
            "1000000000000000",
            "1e3",
            " 1",
            "1 ",
            "١٢",
            "12.",
            ".5",
            "12.5000000",
            "NaN",
            "Infinity",
        ]
    )
    return texts | edges | st.integers() | st.floats(allow_nan=False, allow_infinity=False)


def _texts() -> st.SearchStrategy[str]:
    return (
        st.text(max_size=40)
        | st.text(min_size=190, max_size=210)
        | st.sampled_from(
            [
                "",
                " ",
                "x\n",
                "\u0000",
                "a\u0000b",
                "+4915112345678",
                "+4915112345678\n",
                "a-b.c_d",
                "A",
                "USD",
                "EUR",
                "XXX",
                "usd",
                "lower_case",
            ]
        )
        | st.sampled_from(sorted(ISO_4217_CURRENCIES))
    )


def json_values() -> st.SearchStrategy[object]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.sampled_from([0, 1, 5, 6, 10, 11, -1, 2**53, 2**63])
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.sampled_from([0.0, 1.0, 100.0, 100.5, -0.0, 1e308, 0.5])
        | _texts()
        | _times()
        | _amounts()
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=6,
    )


def paths(document: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths(value, (*prefix, index))
    return found


def mutate(document: dict[str, Any], path: tuple[object, ...], action: str, value: object) -> None:
    *parents, last = path
    holder: Any = document
    for part in parents:
        holder = holder[part]
    if action == "replace":
        holder[last] = value
    elif action == "remove" and isinstance(holder, dict):
        del holder[last]
    elif action == "add" and isinstance(holder, dict):
        holder[f"{last}_extra"] = value


# --- the properties -------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", TYPES)
def test_every_event_type_is_decoded_on_the_fast_path_alike(event_type: str) -> None:
    assert event_type not in WIRE.untranslated
    raw = encode_event(build_event(FACTORIES[event_type](), source=SOURCE, time=NOW))
    fast = WIRE.fast(raw)
    assert fast is not None
    assert_identical(fast, decode_event(raw))


@pytest.mark.parametrize("event_type", TYPES)
@PROPERTY
@given(data=st.data())
def test_mutated_events_are_judged_as_pydantic_judges_them(
    event_type: str, data: st.DataObject
) -> None:
    document = a_document(event_type)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        candidates = paths(document)
        if not candidates:
            break
        path = data.draw(st.sampled_from(candidates))
        action = data.draw(st.sampled_from(["replace", "replace", "replace", "remove", "add"]))
        value = data.draw(_tricky_like(_at(document, path)) | json_values())
        mutate(document, path, action, value)
    assert_agree(json.dumps(document).encode())


@pytest.mark.parametrize("event_type", TYPES)
@PROPERTY
@given(data=st.data())
def test_valid_variants_are_accepted_with_identical_values(
    event_type: str, data: st.DataObject
) -> None:
    # Values in each field's own domain: most variants stay valid, and encode as producers do.
    event = build_event(FACTORIES[event_type](), source=SOURCE, time=NOW)
    document = json.loads(encode_event(event))
    leaves = [path for path in paths(document) if not isinstance(_at(document, path), dict | list)]
    for path in (
        data.draw(st.lists(st.sampled_from(leaves), max_size=4, unique=True)) if leaves else []
    ):
        current = _at(document, path)
        mutate(document, path, "replace", data.draw(_like(current)))
    assert_agree(json.dumps(document).encode())


def _at(document: Any, path: tuple[object, ...]) -> Any:
    for part in path:
        document = document[part]
    return document


def _like(value: object) -> st.SearchStrategy[object]:
    """Values of the same JSON kind as `value`, mostly inside the contracts' bounds."""
    if isinstance(value, bool) or value is None:
        return st.just(value) | st.booleans()
    if isinstance(value, int):
        return st.integers(min_value=0, max_value=12)
    if isinstance(value, float):
        return st.floats(min_value=0, max_value=100, allow_nan=False)
    assert isinstance(value, str)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        return st.datetimes(
            min_value=datetime(1901, 1, 1), max_value=datetime(2198, 1, 1), timezones=st.just(UTC)
        ).map(lambda moment: moment.isoformat().replace("+00:00", "Z"))
    if value and all(char in "0123456789.-" for char in value):
        return st.decimals(
            min_value=0, max_value=Decimal("999999999"), places=2, allow_nan=False
        ).map(lambda amount: format(amount, "f"))
    return st.just(value) | st.text(min_size=1, max_size=30)


def test_broken_bytes_are_refused_for_pydantic_s_reason() -> None:
    raw = encode_event(build_event(FACTORIES["order.placed"](), source=SOURCE, time=NOW))
    for broken in (
        raw[:-1],
        raw + b"x",
        b"",
        b"[]",
        b"null",
        raw.replace(b'"', b"'", 1),
        b"\xff" + raw,
    ):
        assert_agree(broken)


def test_a_repeated_key_counts_as_pydantic_counts_it() -> None:
    raw = encode_event(build_event(FACTORIES["order.placed"](), source=SOURCE, time=NOW))
    text = raw.decode()
    for key, value in (
        ('"type"', '"score.updated"'),
        ('"order_id"', '""'),
        ('"amount"', '"-5.00"'),
        ('"placed_at"', '"2025-03-14T09:30:00.1234567Z"'),
    ):
        repeated = text.replace(key + ":", f"{key}:{value},{key}:", 1)
        assert_agree(repeated.encode())


def test_an_unknown_type_and_a_mismatched_subject_are_refused_alike() -> None:
    document = a_document("order.placed")
    assert_agree(json.dumps(document | {"type": "order.exploded"}).encode())
    assert_agree(json.dumps(document | {"subject": "someone-else"}).encode())


def test_the_consumer_decoder_is_the_wire_decoder() -> None:
    order = OrderPlaced.model_validate(FACTORIES["order.placed"]().model_dump())
    raw = encode_event(build_event(order, source=SOURCE, time=NOW))
    assert_identical(decode_record_value(raw), decode_event(raw))
    with pytest.raises(InvalidEvent) as caught:
        decode_record_value(b'{"type": "order.placed"}')
    with pytest.raises(InvalidEvent) as expected:
        decode_event(b'{"type": "order.placed"}')
    assert (caught.value.reason, caught.value.field) == (
        expected.value.reason,
        expected.value.field,
    )


def test_fast_path_events_keep_their_fields_sets_apart() -> None:
    """Instances of a frozen model share one fields set: nothing may change it for the others."""
    raw = encode_event(build_event(FACTORIES["score.updated"](), source=SOURCE, time=NOW))
    first, second = WIRE.fast(raw), WIRE.fast(raw)
    assert first is not None
    assert second is not None
    before = fields_sets(second)
    # A copy's update adds its keys to the copy's fields set, never to the shared one.
    copied = first.data.total_spend.model_copy(update={"note": "copied"})
    assert copied.model_fields_set == {"amount", "currency", "note"}
    first.data.model_copy(update={"cluster": "copied", "note": "copied"}, deep=True)
    with pytest.raises(ValueError, match="frozen"):
        first.data.total_spend.currency = "EUR"  # type: ignore[misc]
    assert fields_sets(second) == before == fields_sets(first)
    assert_identical(second, decode_event(raw))


def test_text_with_escapes_stays_on_the_fast_path_and_an_escaped_nul_does_not() -> None:
    document = a_document("order.placed")
    document["data"]["items"][0]["name"] = 'A "quoted" \\ name\n'
    raw = json.dumps(document).encode()
    assert b"\\" in raw
    fast = WIRE.fast(raw)
    assert fast is not None
    assert_identical(fast, decode_event(raw))
    assert WIRE.fast(raw.decode()) is not None
    document["data"]["items"][0]["name"] = "A \x00 name"
    for nul in (json.dumps(document).encode(), json.dumps(document)):
        assert WIRE.fast(nul) is None
        assert_agree(nul.encode() if isinstance(nul, str) else nul)


EDGES: list[object] = [
    # amounts: signs, zero, the order and money bounds, decimal places, other spellings
    "-5.00",
    "-0",
    "-0.00",
    "0",
    "0.00",
    "0.000001",
    "0.0000001",
    "12.5000000",
    "12.50",
    "999999999999.999999",
    "1000000000000",
    "999999999999999.999999",
    "1000000000000000",
    "-999999999999999.999999",
    "1e3",
    "12.",
    ".5",
    "+1",
    "١٢",
    " 1",
    "00000000000012.50",
    5,
    5.5,
    # times: the supported ends with offsets, fractions past microseconds, other layouts
    "2025-03-14T09:30:00.1234567Z",
    "2025-03-14T09:30:00.9999995Z",
    "1900-01-01T00:00:00Z",
    "1900-01-01T00:30:00+01:00",
    "1899-12-31T23:59:59Z",
    "2199-12-31T23:59:59Z",
    "2199-12-31T23:00:00-05:00",
    "2200-01-01T00:00:00Z",
    "2025-03-14t09:30:00z",
    "2025-03-14 09:30:00Z",
    "2025-03-14T09:30Z",
    "2025-03-14T09:30:00+0200",
    "2025-03-14T09:30:00+02",
    "2025-03-14T09:30:00.+02:00",
    "20250314T093000Z",
    "2025-03-14T09:30:00",
    "2025-03-14T24:00:00Z",
    "2025-03-14T09:30:00+23:59",
    "2025-03-14T09:30:00,5Z",
    1741944600,
    # numbers and other kinds
    -1,
    0,
    1,
    5,
    6,
    10,
    11,
    0.5,
    1.0,
    100.0,
    100.5,
    2**63,
    1e308,
    "3",
    True,
    None,
    [],
    {},
    # texts: lengths at the bounds, currencies, patterns, NUL
    "",
    "x" * 36,
    "x" * 37,
    "x" * 200,
    "x" * 201,
    "x" * 501,
    "USD",
    "EUR",
    "XXX",
    "usd",
    "+4915112345678\n",
    "+4915112345678",
    "a\u0000",
    "open",
    "email",
    "retention_offer",
    "nps",
    "survey_answer",
    "champions",
    "strategic_partner",
    "vip",
    "loyal",
    "rfm_segment",
]


@pytest.mark.parametrize("event_type", TYPES)
def test_every_field_given_every_edge_value_is_judged_alike(event_type: str) -> None:
    document = a_document(event_type)
    for path in paths(document):
        for value in EDGES:
            changed = json.loads(json.dumps(document))
            mutate(changed, path, "replace", value)
            assert_agree(json.dumps(changed).encode())
        for action in ("remove", "add"):
            changed = json.loads(json.dumps(document))
            mutate(changed, path, action, "extra")
            assert_agree(json.dumps(changed).encode())


class _StrippingOrder(OrderPlaced):
    """A contract whose texts pydantic strips: a rule the derived structs do not state."""

    model_config = ConfigDict(str_strip_whitespace=True)


def test_a_contract_the_structs_cannot_state_is_left_to_pydantic() -> None:
    wire = WireDecoder({"order.placed": _StrippingOrder})
    raw = encode_event(build_event(FACTORIES["order.placed"](), source=SOURCE, time=NOW))

    assert "order.placed" in wire.untranslated
    assert wire.fast(raw) is None
    assert_identical(wire.decode(raw), decode_event(raw))
