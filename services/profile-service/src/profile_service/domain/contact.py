"""Normalising a customer's contact details into the one form the profile stores.

Every customer identity and attribute that arrives (from the API, an import file or an order)
passes through these functions, so two spellings of the same address or number always match
the same customer. Each returns the canonical value or raises :class:`InvalidContact` naming
the field at fault and a reason a user can act on.

Reasons never repeat the rejected email address or phone number: they end up in import reports
and logs, where personal data must not appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crm_contracts import MAX_TAG_LENGTH, MAX_TAGS

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "InvalidContact",
    "normalize_email",
    "normalize_locale",
    "normalize_phone",
    "normalize_tags",
    "normalize_time_zone",
]

_TAG = re.compile(r"[a-z0-9_:-]+")
# BCP 47 subset: language, optional script, optional region ("en", "zh-Hant-TW", "es-419").
_LOCALE = re.compile(
    r"(?P<language>[A-Za-z]{2,3})"
    r"(?:[-_](?P<script>[A-Za-z]{4}))?"
    r"(?:[-_](?P<region>[A-Za-z]{2}|[0-9]{3}))?"
)
# Names the zone database ships that do not describe a place: "localtime" means whatever the
# server is set to, "Factory" is a placeholder zone, "posixrules" is an internal template.
_NOT_CUSTOMER_ZONES = frozenset({"localtime", "Factory", "posixrules"})


class InvalidContact(ValueError):
    """A contact detail that cannot be stored: which field, and why (``str(exc)`` is the reason)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason

    @property
    def code(self) -> str:
        """A short stable code for reports, e.g. ``invalid_email``."""
        return f"invalid_{self.field}"


def normalize_email(raw: str) -> str:
    """The address in the form identities are matched on: syntax-checked, entirely lower-case.

    The whole address is lower-cased (not only the domain, as RFC 5321 would allow) because we
    match customers case-insensitively: "Ann@X.com" and "ann@x.com" are one customer.
    Deliverability (DNS) is not checked: the domain layer does no I/O.
    """
    address = raw.strip()
    if not address:
        raise InvalidContact("email", "email address is empty")
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidContact("email", f"not a valid email address: {exc}") from None
    return checked.normalized.lower()


def normalize_phone(raw: str, default_region: str | None) -> str:
    """The number in E.164 form (e.g. "+4930123456"), accepted only if it is a valid number.

    Numbers written with "+" or "00" carry their country code; any other number is read as a
    national number of ``default_region`` (an ISO 3166 code such as "US" or "DE").
    """
    number_text = raw.strip()
    if not number_text:
        raise InvalidContact("phone", "phone number is empty")
    if number_text.startswith("00"):
        number_text = "+" + number_text[2:]
    international = number_text.startswith("+")
    region = default_region.strip().upper() if default_region else None
    if not international:
        if region is None:
            raise InvalidContact(
                "phone", "needs a country code (+...) because no default region is set"
            )
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidContact("phone", f"default region {region!r} is not a known region")
    try:
        number = phonenumbers.parse(number_text, None if international else region)
    except phonenumbers.NumberParseException as exc:
        if (
            international
            and exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE
        ):
            raise InvalidContact("phone", "the country code after '+' is not known") from None
        raise InvalidContact("phone", "not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        if international:
            region = phonenumbers.region_code_for_country_code(number.country_code or 0)
        raise InvalidContact("phone", f"not a valid number for region {region}")
    e164: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164


def normalize_time_zone(raw: str) -> str:
    """The IANA time zone name, e.g. "Europe/Berlin", with the database's own capitalisation.

    Case is forgiven ("europe/berlin" gives "Europe/Berlin"); links such as "US/Eastern" are
    kept as given, since they are valid names the customer or shop chose.
    """
    name = raw.strip()
    if not name:
        raise InvalidContact("time_zone", "time zone is empty")
    canonical = _time_zones_by_folded_name().get(name.casefold())
    if canonical is None:
        raise InvalidContact(
            "time_zone", f"{name!r} is not an IANA time zone name (e.g. 'Europe/Berlin')"
        )
    try:
        ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidContact("time_zone", f"time zone {name!r} cannot be loaded") from None
    return canonical


def normalize_locale(raw: str) -> str:
    """The locale as a canonical BCP 47 tag: "en", "en-US", "zh-Hant-TW", "es-419".

    Accepted: a 2-3 letter language, then optionally a 4-letter script and/or a region
    (2 letters or 3 digits), separated by "-" or "_" ("en_us" gives "en-US").
    """
    tag = raw.strip()
    match = _LOCALE.fullmatch(tag)
    if match is None:
        raise InvalidContact(
            "locale",
            f"{tag!r} is not a language tag like 'en', 'en-US', 'pt-BR' or 'zh-Hant-TW'",
        )
    parts = [match["language"].lower()]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    return "-".join(parts)


def normalize_tags(raw: Iterable[str]) -> list[str]:
    """Tags trimmed and lower-cased, empties dropped, duplicates removed (first one kept).

    A tag is at most 64 characters of a-z, 0-9, "_", ":" and "-" (":" allows namespaces such
    as "source:shopify"); a customer has at most 100 (the customer contract's limits).
    """
    if isinstance(raw, str):
        # A lone string is iterable too and would silently become one tag per character.
        raise TypeError("normalize_tags expects a collection of tags, not a single string")
    tags: dict[str, None] = {}
    for given in raw:
        tag = given.strip().lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidContact(
                "tags", f"tag {tag[:20]!r}... is longer than {MAX_TAG_LENGTH} characters"
            )
        if not _TAG.fullmatch(tag):
            raise InvalidContact("tags", f"tag {tag!r} may contain only a-z, 0-9, '_', ':' and '-'")
        tags[tag] = None
    if len(tags) > MAX_TAGS:
        raise InvalidContact("tags", f"at most {MAX_TAGS} tags, not {len(tags)}")
    return list(tags)


@cache
def _time_zones_by_folded_name() -> dict[str, str]:
    return {
        name.casefold(): name for name in available_timezones() if name not in _NOT_CUSTOMER_ZONES
    }
