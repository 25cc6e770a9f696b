"""The contracts' Python validators, restated as checks the wire decoder makes without calling them.

pydantic calls `within_money_bounds`, `_known_currency`, the supported-time check and the
order-money checks for every amount, currency and time of every event: most of what decoding
costs. Each rule here says what a validator accepts in a form msgspec checks in C or one Python
call makes at once, built from the constants `crm_contracts` exports (so a bound changed there
changes here). A rule may be narrower than its validator, never wider: a value outside it is
not refused, it is decoded by pydantic, which has the last word. The contract tests
(shared/tests/test_wire_decoding.py) prove each rule against its validator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, get_args

from pydantic import AfterValidator, BeforeValidator

from crm_contracts import (
    EARLIEST_SUPPORTED_TIME,
    ISO_4217_CURRENCIES,
    LATEST_SUPPORTED_TIME,
    MAX_MONEY_AMOUNT,
    MAX_MONEY_DECIMAL_PLACES,
    MAX_ORDER_AMOUNT,
    CurrencyCode,
    EventTime,
    Money,
    OrderPlaced,
    OrderRefunded,
)


@dataclass(frozen=True)
class Choices:
    """The text is one of `values` (a msgspec literal)."""

    values: frozenset[str]


@dataclass(frozen=True)
class AmountText:
    """A decimal string matching `pattern` in full: one Python call reads and checks it."""

    pattern: str

    def reader(self) -> Callable[[str], Decimal]:
        """The function turning a matching string into its Decimal, raising otherwise."""
        matches = re.compile(self.pattern).fullmatch

        def amount(text: str) -> Decimal:
            if matches(text) is None:
                raise ValueError("outside the wire rule")
            return Decimal(text)

        return amount


@dataclass(frozen=True)
class NestedAmount:
    """The model's `field` (an amount) is read by `rule` instead of its own."""

    field: str
    rule: AmountText


@dataclass(frozen=True)
class Between:
    """A time in [earliest, latest), compared as instants."""

    earliest: datetime
    latest: datetime


WireRule = Choices | AmountText | NestedAmount | Between


def moment_reader(between: Between | None) -> Callable[[str], datetime]:
    """The function reading a time to the value pydantic reads, refusing it outside `between`.

    `datetime.fromisoformat` truncates digits past microseconds as pydantic does (msgspec would
    round them), but reads more layouts than pydantic: a few index checks admit only RFC 3339,
    "YYYY-MM-DD(T| )HH:MM:SS[.digits](Z|+HH:MM|-HH:MM)"; the digits are `fromisoformat`'s to check.
    """
    parse = datetime.fromisoformat
    earliest, latest = (between.earliest, between.latest) if between else (None, None)

    def moment(text: str) -> datetime:
        end = len(text) - (1 if text[-1:] == "Z" else 6)
        if not (
            end >= 19
            and (end == 19 or (end > 20 and text[19] == "."))
            and text[4] == "-"
            and text[7] == "-"
            and (text[10] == "T" or text[10] == " ")
            and text[13] == ":"
            and text[16] == ":"
            and (text[-1] == "Z" or ((text[-6] == "+" or text[-6] == "-") and text[-3] == ":"))
        ):
            raise ValueError("outside the wire rule")
        value = parse(text)
        if earliest is not None and not earliest <= value < latest:  # type: ignore[operator]
            raise ValueError("outside the supported times")
        return value

    return moment


def _whole_digits(limit: Decimal) -> int:
    """k where `limit` is 10**k: every number of at most k whole digits lies below it."""
    digits = len(str(int(limit))) - 1
    if limit != Decimal(10) ** digits:
        raise ValueError(f"{limit} is not a power of ten: no digit-count rule states it")
    return digits


def _validators(annotation: Any) -> list[Callable[..., Any]]:
    """The functions of the Before/AfterValidators among an Annotated alias's metadata."""
    found: list[Callable[..., Any]] = []
    for item in get_args(annotation)[1:]:
        for part in getattr(item, "metadata", [item]):
            if isinstance(part, AfterValidator | BeforeValidator):
                found.append(part.func)
    return found


def _field_validators(model: Any, name: str) -> list[Callable[..., Any]]:
    metadata = model.model_fields[name].metadata
    return [item.func for item in metadata if isinstance(item, AfterValidator | BeforeValidator)]


def contract_rules() -> Mapping[Callable[..., Any], WireRule]:
    """Each contract validator the wire decoder does not call, and the rule it checks instead."""
    places = MAX_MONEY_DECIMAL_PLACES
    fraction = rf"(\.\d{{1,{places}}})?"
    any_money = AmountText(rf"-?\d{{1,{_whole_digits(MAX_MONEY_AMOUNT)}}}{fraction}")
    order_digits = _whole_digits(MAX_ORDER_AMOUNT)
    order_money = AmountText(rf"\d{{1,{order_digits}}}{fraction}")
    # Above zero: not negative, and some digit is not 0.
    refund_money = AmountText(rf"(?=[\d.]*[1-9])\d{{1,{order_digits}}}{fraction}")
    rules: dict[Callable[..., Any], WireRule] = {}
    for function in _field_validators(Money, "amount"):  # the decimal string and its bounds
        rules[function] = any_money
    for function in _validators(CurrencyCode):
        rules[function] = Choices(frozenset(ISO_4217_CURRENCIES))
    for function in _validators(EventTime):
        rules[function] = Between(EARLIEST_SUPPORTED_TIME, LATEST_SUPPORTED_TIME)
    for function in _field_validators(OrderPlaced, "total"):  # zero or more, below a trillion
        rules[function] = NestedAmount("amount", order_money)
    for function in _field_validators(OrderRefunded, "amount"):  # above zero, below a trillion
        rules[function] = NestedAmount("amount", refund_money)
    return rules
