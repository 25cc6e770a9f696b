"""Bounds every input shares, on HTTP and Kafka alike: times, currencies, amounts, text.

These are the static limits (no clock, no settings): what any CRM service can store and compute
with. Limits that depend on the moment of judgement or on configuration (how far in the future an
order may be dated, the accounting currency) are applied on top of these by the edge policy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field
from pydantic_core import PydanticCustomError

EARLIEST_SUPPORTED_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_SUPPORTED_TIME = datetime(2200, 1, 1, tzinfo=UTC)


def within_supported_time(moment: datetime) -> datetime:
    """Return `moment` in UTC, or refuse it when it lies outside 1900-2200.

    Python's datetime spans years 1 to 9999, but an offset at either end ("9999-12-31T23:59-23:59")
    overflows as soon as it is converted to UTC, and date arithmetic near the ends overflows too.
    A naive datetime (a query parameter without offset) is taken as UTC.
    """
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_SUPPORTED_TIME <= utc < LATEST_SUPPORTED_TIME:
        raise PydanticCustomError(
            "time_out_of_range",
            "time must lie between {earliest} and {latest}",
            {"earliest": "1900-01-01T00:00:00Z", "latest": "2200-01-01T00:00:00Z"},
        )
    return utc


def _supported_keeping_offset(moment: datetime) -> datetime:
    # Events keep the offset they were written with (a shop's local time reads as it was sent).
    within_supported_time(moment)
    return moment


EventTime = Annotated[AwareDatetime, AfterValidator(_supported_keeping_offset)]
"""A moment with an explicit offset, between 1900 and 2200 once converted to UTC."""

QueryTime = Annotated[datetime, AfterValidator(within_supported_time)]
"""A moment from a query string or request body; without an offset it is UTC."""

MAX_INT64 = 2**63 - 1

PositiveInt64 = Annotated[int, Field(ge=1, le=MAX_INT64)]
"""A whole number a client names a stored row by (an id, a position): 1 to 2**63-1, the range
of the databases' BIGINT. A larger one cannot name a row, and would overflow the driver."""

# Active ISO 4217 codes of money (as of 2025). Left out on purpose: precious metals (XAU, XAG,
# XPT, XPD), bond-market units (XBA-XBD), the SDR (XDR), XSU, XUA, and the codes that mean "no
# currency" (XXX) or "testing" (XTS): none of them is what a customer pays with.
ISO_4217_CURRENCIES = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BOV",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHE",
        "CHF",
        "CHW",
        "CLF",
        "CLP",
        "CNY",
        "COP",
        "COU",
        "CRC",
        "CUC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MXV",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SLL",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "USN",
        "UYI",
        "UYU",
        "UYW",
        "UZS",
        "VED",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
        "ZWL",
    ]
)


def _known_currency(code: str) -> str:
    if code not in ISO_4217_CURRENCIES:
        raise PydanticCustomError(
            "unknown_currency", "'{code}' is not an ISO 4217 currency code", {"code": code}
        )
    return code


CurrencyCode = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code.", examples=["EUR"]),
    AfterValidator(_known_currency),
]

# One order, refund or price a shop sends stays below a trillion; figures the CRM derives from
# many of them (a customer's total spend, a predicted CLV) may pass that, so any amount in any
# event stays below a quadrillion: float64, which the models compute in, holds integers exactly
# up to 2**53 (about 9e15), and no amount needs exponent notation.
MAX_ORDER_AMOUNT = Decimal("1000000000000")
MAX_MONEY_AMOUNT = Decimal("1000000000000000")
MAX_MONEY_DECIMAL_PLACES = 6


def within_money_bounds(amount: Decimal) -> Decimal:
    """Refuse amounts of a quadrillion or more (either sign) or with more than six decimals."""
    if abs(amount) >= MAX_MONEY_AMOUNT:
        raise PydanticCustomError(
            "amount_too_large",
            "money amount must be below {limit} in size",
            {"limit": format(MAX_MONEY_AMOUNT, "f")},
        )
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_MONEY_DECIMAL_PLACES:
        raise PydanticCustomError(
            "amount_too_precise",
            "money amount may have at most {places} decimal places",
            {"places": MAX_MONEY_DECIMAL_PLACES},
        )
    return amount


def without_nul(text: str) -> str:
    """Refuse text holding U+0000: PostgreSQL cannot store it, and no real value contains it."""
    if "\x00" in text:
        raise PydanticCustomError("nul_character", "text must not contain the NUL character")
    return text
