"""Errors with an HTTP meaning, raisable from domain code (this module imports no web framework)."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


class Problem(Exception):
    """A failure the caller can act on; rendered as problem+json with this status."""

    status: int = 400
    title: str = "Bad request"
    type_slug: str = "bad-request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document."""
        document: dict[str, Any] = {
            "type": f"https://crm.example/problems/{self.type_slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            document["instance"] = instance
        document.update(self.extensions)
        return document


class BadRequest(Problem):
    """The request is well-formed JSON but asks for something impossible."""


class Unauthorized(Problem):
    """No valid API key."""

    status, title, type_slug = 401, "Unauthorized", "unauthorized"


class Forbidden(Problem):
    """The API key lacks the scope this operation needs."""

    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFound(Problem):
    """The resource does not exist."""

    status, title, type_slug = 404, "Not found", "not-found"


def must_exist(value: T | None, detail: str) -> T:
    """`value`, or a 404 problem saying `detail` when there is none (what a lookup by id
    returns for an unknown id)."""
    if value is None:
        raise NotFound(detail)
    return value


class Conflict(Problem):
    """The request conflicts with the current state (a duplicate, a reused key)."""

    status, title, type_slug = 409, "Conflict", "conflict"


class Gone(Problem):
    """The resource existed and was removed on purpose (erased)."""

    status, title, type_slug = 410, "Gone", "gone"


class UnprocessableContent(Problem):
    """A field's value is invalid; `errors` names the field."""

    status, title, type_slug = 422, "Unprocessable content", "validation-error"

    def __init__(self, detail: str, *, field: str | None = None, **extensions: Any) -> None:
        if field is not None:
            extensions.setdefault("errors", [{"field": field, "message": detail}])
        super().__init__(detail, **extensions)


class ContentTooLarge(Problem):
    """The request body is larger than the endpoint accepts."""

    status, title, type_slug = 413, "Content too large", "content-too-large"


class UnsupportedMediaType(Problem):
    """The body's content type is not one this endpoint reads."""

    status, title, type_slug = 415, "Unsupported media type", "unsupported-media-type"


class ServiceUnavailable(Problem):
    """A dependency (database, broker) is down; retry later."""

    status, title, type_slug = 503, "Service unavailable", "unavailable"
