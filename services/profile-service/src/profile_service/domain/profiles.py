"""Customer profiles: normalising input, resolving identities, merging two profiles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from crm_contracts import (
    MAX_EXTERNAL_ID_LENGTH,
    MAX_EXTERNAL_IDS,
    MAX_NAME_LENGTH,
    MAX_TAGS,
    NUL_MESSAGE,
    Attributes,
    nul_location,
)
from profile_service.domain.contact import (
    InvalidContact,
    normalize_email,
    normalize_locale,
    normalize_phone,
    normalize_tags,
    normalize_time_zone,
)

PROFILE_FIELDS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "time_zone",
    "locale",
    "attributes",
    "tags",
)
# The customer contract's own rule, so what is accepted here can always be published.
_ATTRIBUTES: TypeAdapter[dict[str, Any]] = TypeAdapter(Attributes)
_TEXT_LIMITS = {
    "external_id": MAX_EXTERNAL_ID_LENGTH,
    "first_name": MAX_NAME_LENGTH,
    "last_name": MAX_NAME_LENGTH,
}


class IdentityKind(StrEnum):
    """Ways a customer is recognised, strongest first."""

    EXTERNAL_ID = "external_id"
    EMAIL = "email"
    PHONE = "phone"


@dataclass(frozen=True, order=True)
class Identity:
    """One identifier of a customer, normalised."""

    kind: IdentityKind
    value: str


@dataclass(frozen=True)
class ProfileChanges:
    """Normalised profile fields a caller sent; `provided` says which were present at all."""

    values: Mapping[str, Any]
    email_was_normalised: bool = False
    phone_was_normalised: bool = False

    @property
    def provided(self) -> frozenset[str]:
        """Names of the fields the caller sent (a null means: clear it)."""
        return frozenset(self.values)

    def identities(self) -> list[Identity]:
        """The identities these changes carry, strongest first."""
        found = []
        for kind in IdentityKind:
            value = self.values.get(kind.value)
            if value:
                found.append(Identity(kind, value))
        return found


def normalise_profile(
    raw: Mapping[str, Any], *, default_phone_region: str | None
) -> ProfileChanges:
    """Validate and normalise profile fields; raise InvalidContact naming the field at fault."""
    values: dict[str, Any] = {}
    email_changed = phone_changed = False
    for name, value in raw.items():
        if name not in PROFILE_FIELDS:
            raise InvalidContact(name, f"unknown field '{name}'")
        # The API refuses NUL at its edge; imports come here row by row (PostgreSQL stores none).
        if (location := nul_location(value)) is not None:
            raise InvalidContact(".".join((name, *location)), NUL_MESSAGE)
        if value is None or (isinstance(value, str) and not value.strip()):
            values[name] = None if name not in {"attributes", "tags"} else _empty(name)
            continue
        values[name] = _normalise_field(name, value, default_phone_region)
        if name == "email":
            email_changed = values[name] != value
        elif name == "phone":
            phone_changed = values[name] != value
    return ProfileChanges(values, email_changed, phone_changed)


def _empty(name: str) -> Any:
    return {} if name == "attributes" else []


def _normalise_field(name: str, value: Any, default_phone_region: str | None) -> Any:
    if name in {"email", "phone", "time_zone", "locale"}:
        if not isinstance(value, str):
            raise InvalidContact(name, f"{name} must be a string")
        if name == "email":
            return normalize_email(value)
        if name == "phone":
            return normalize_phone(value, default_phone_region)
        if name == "time_zone":
            return normalize_time_zone(value)
        return normalize_locale(value)
    if name in {"external_id", "first_name", "last_name"}:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise InvalidContact(name, f"{name} must be a string")
        text = str(value).strip()
        if len(text) > _TEXT_LIMITS[name]:
            raise InvalidContact(name, f"{name} is longer than {_TEXT_LIMITS[name]} characters")
        return text
    if name == "tags":
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
            raise InvalidContact("tags", "tags must be a list of strings")
        return normalize_tags(value)
    return _normalise_attributes(value)


def _normalise_attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidContact("attributes", "attributes must be an object")
    try:
        return _ATTRIBUTES.validate_python(value)
    except ValidationError as error:
        first = error.errors()[0]
        location = first["loc"]
        # A key's own error is located at the key, then "[key]": name the attributes instead.
        where = [] if location and location[-1] == "[key]" else [str(part) for part in location]
        raise InvalidContact(".".join(["attributes", *where]), first["msg"]) from None


def check_external_id_count(held: int, adding: int) -> None:
    """Refuse adding external ids past the contract's limit (a snapshot carries them all)."""
    if adding and held + adding > MAX_EXTERNAL_IDS:
        raise InvalidContact(
            "external_id",
            f"a customer has at most {MAX_EXTERNAL_IDS} external ids and this one has {held}",
        )


def check_merge_limits(merged: Profile, external_ids: int) -> None:
    """Refuse a merge whose union of tags, attributes or external ids passes a limit."""
    if external_ids > MAX_EXTERNAL_IDS:
        raise InvalidContact(
            "external_ids",
            f"together the customers have {external_ids} external ids (at most {MAX_EXTERNAL_IDS})",
        )
    if len(merged.tags) > MAX_TAGS:
        raise InvalidContact("tags", f"together the customers have more than {MAX_TAGS} tags")
    _normalise_attributes(dict(merged.attributes))


@dataclass(frozen=True)
class IdentityResolution:
    """Which existing customer an incoming profile belongs to, and what contradicts that."""

    customer_id: str | None
    conflicts: tuple[tuple[Identity, str], ...] = ()

    @property
    def is_ambiguous(self) -> bool:
        """Some identities point at a different customer than the strongest match."""
        return bool(self.conflicts)


def resolve_identity(
    identities: Iterable[Identity], owners: Mapping[Identity, str]
) -> IdentityResolution:
    """Attach to the customer owning the strongest identity (external id > email > phone)."""
    ordered = sorted(identities, key=lambda identity: list(IdentityKind).index(identity.kind))
    matched = [(identity, owners[identity]) for identity in ordered if identity in owners]
    if not matched:
        return IdentityResolution(None)
    owner = matched[0][1]
    conflicts = tuple((identity, other) for identity, other in matched if other != owner)
    return IdentityResolution(owner, conflicts)


# How to reach a customer and what to call them: plain values, kept under these names by the
# profile, the customer's columns, the API's customer and every customer event.
CONTACT_FIELDS: Final = ("email", "phone", "first_name", "last_name", "time_zone", "locale")


def contact_values(source: object) -> dict[str, Any]:
    """The contact fields of `source` (a profile, a stored customer), by name."""
    return {name: getattr(source, name) for name in CONTACT_FIELDS}


@dataclass(frozen=True)
class Profile:
    """The profile fields of one customer (no ids, no timestamps)."""

    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    time_zone: str | None = None
    locale: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    def apply(self, changes: ProfileChanges) -> tuple[Profile, list[str]]:
        """The profile after `changes`, and the names of the fields that really changed."""
        updates: dict[str, Any] = {}
        for name, value in changes.values.items():
            new_value = tuple(value) if name == "tags" else value
            if getattr(self, name) != new_value:
                updates[name] = new_value
        return replace(self, **updates), sorted(updates)

    def fill_from(self, other: Profile) -> tuple[Profile, list[str]]:
        """Keep this profile's values; take the other's where this one has none (merge)."""
        updates: dict[str, Any] = {}
        for name in ("external_id", "email", "phone", "first_name", "last_name", "time_zone"):
            if getattr(self, name) is None and getattr(other, name) is not None:
                updates[name] = getattr(other, name)
        if self.locale is None and other.locale is not None:
            updates["locale"] = other.locale
        merged_attributes = {**other.attributes, **self.attributes}
        if merged_attributes != dict(self.attributes):
            updates["attributes"] = merged_attributes
        merged_tags = tuple(dict.fromkeys((*self.tags, *other.tags)))
        if merged_tags != self.tags:
            updates["tags"] = merged_tags
        return replace(self, **updates), sorted(updates)
