"""Message templates: Jinja2 sources per channel part, rendered in a sandbox.

A :class:`Template` holds one Jinja2 source per *part* of its channel's message:

- ``email``: ``subject`` and ``text_body`` (required), ``html_body`` (optional: without it
  the email is plain text);
- ``sms``: ``text``;
- ``webhook``: ``json_body``, which must render to a JSON document;
- ``in_app``: ``title`` and ``body``.

Templates are written by CRM users, not by developers, so they render in Jinja2's immutable
sandbox: attributes that reach Python internals (``''.__class__``, ``cycler.__init__``) and
methods that mutate the context (``list.append``) raise ``SecurityError``, and every render
has a budget of steps, time and value size (:mod:`notification_service.domain.sandbox`):
memory bombs (``'a' * 10**9``, ``'x'|center(5000000)``) and runaway loops are refused
(problem kind ``limit``). Undefined names are errors
(``StrictUndefined``), so a misspelt ``{{ custmer.first_name }}`` fails on save instead of
sending "Hello ,". Values are escaped by where they land: HTML in ``html_body``, JSON string
content in ``json_body`` (a name with a quote cannot break or extend the document; ``tojson``
still writes a whole value), nothing in plain-text parts. ``subject`` and ``title`` are one
line: their whitespace, line breaks included, collapses to single spaces.

:func:`validate_template` names every problem of a template by part (missing parts, syntax
errors with their line, failures to render :data:`SAMPLE_CONTEXT`); :func:`render` renders
a template for one customer and raises :class:`InvalidTemplate` when it cannot.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal

import jinja2
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from crm_contracts import Category, NotificationChannel
from notification_service.domain.sandbox import (
    DEFAULT_LIMITS,
    RenderBudget,
    RenderLimitExceeded,
    RenderLimits,
    Sandbox,
    spending,
)

__all__ = [
    "OPTIONAL_PARTS",
    "REQUIRED_PARTS",
    "SAMPLE_CONTEXT",
    "InvalidTemplate",
    "ProblemKind",
    "RenderedMessage",
    "Template",
    "TemplateProblem",
    "channel_parts",
    "render",
    "render_checked",
    "validate_template",
]

REQUIRED_PARTS: Final[Mapping[NotificationChannel, tuple[str, ...]]] = MappingProxyType(
    {
        NotificationChannel.EMAIL: ("subject", "text_body"),
        NotificationChannel.SMS: ("text",),
        NotificationChannel.WEBHOOK: ("json_body",),
        NotificationChannel.IN_APP: ("title", "body"),
    }
)
OPTIONAL_PARTS: Final[Mapping[NotificationChannel, tuple[str, ...]]] = MappingProxyType(
    {NotificationChannel.EMAIL: ("html_body",)}
)

_HTML_PARTS: Final = frozenset({"html_body"})
_JSON_PARTS: Final = frozenset({"json_body"})
_ONE_LINE_PARTS: Final = frozenset({"subject", "title"})

ProblemKind = Literal[
    "missing_part",
    "unknown_part",
    "syntax",
    "undefined",
    "security",
    "limit",
    "invalid_json",
    "render",
]


def channel_parts(channel: NotificationChannel) -> tuple[str, ...]:
    """Every part a template of ``channel`` may have, required ones first."""
    return REQUIRED_PARTS[channel] + OPTIONAL_PARTS.get(channel, ())


@dataclass(frozen=True)
class Template:
    """A message template of one channel: the Jinja2 source of each part, by part name.

    ``category`` is what the text is, the same for every channel of a template id: a
    marketing text needs the customer's consent whoever sends it, so rules and one-off sends
    take their category from it (marketing unless said otherwise: the safe side).
    """

    template_id: str
    channel: NotificationChannel
    parts: Mapping[str, str]
    category: Category = Category.MARKETING

    def __post_init__(self) -> None:
        # The channel and category as read from storage may be their plain values.
        object.__setattr__(self, "channel", NotificationChannel(self.channel))
        object.__setattr__(self, "category", Category(self.category))
        # A read-only copy: a caller's dict changing later must not change a saved template.
        object.__setattr__(self, "parts", MappingProxyType(dict(self.parts)))

    @classmethod
    def email(
        cls,
        template_id: str,
        *,
        subject: str,
        text_body: str,
        html_body: str | None = None,
        category: Category = Category.MARKETING,
    ) -> Template:
        """An email template; without ``html_body`` the email is plain text."""
        parts = {"subject": subject, "text_body": text_body}
        if html_body is not None:
            parts["html_body"] = html_body
        return cls(template_id, NotificationChannel.EMAIL, parts, category)

    @classmethod
    def sms(
        cls, template_id: str, *, text: str, category: Category = Category.MARKETING
    ) -> Template:
        """An SMS template."""
        return cls(template_id, NotificationChannel.SMS, {"text": text}, category)

    @classmethod
    def webhook(
        cls, template_id: str, *, json_body: str, category: Category = Category.MARKETING
    ) -> Template:
        """A webhook template whose ``json_body`` renders to a JSON document."""
        return cls(template_id, NotificationChannel.WEBHOOK, {"json_body": json_body}, category)

    @classmethod
    def in_app(
        cls, template_id: str, *, title: str, body: str, category: Category = Category.MARKETING
    ) -> Template:
        """An in-app inbox template."""
        parts = {"title": title, "body": body}
        return cls(template_id, NotificationChannel.IN_APP, parts, category)


@dataclass(frozen=True)
class RenderedMessage:
    """A template rendered for one customer; the parts its channel does not use are None."""

    channel: NotificationChannel
    subject: str | None = None
    text_body: str | None = None
    html_body: str | None = None
    text: str | None = None
    json_body: str | None = None
    title: str | None = None
    body: str | None = None

    @classmethod
    def from_parts(cls, channel: NotificationChannel, parts: Mapping[str, str]) -> RenderedMessage:
        """The message of ``channel`` with these rendered parts (as :attr:`parts` returns them)."""
        unknown = set(parts) - set(channel_parts(channel))
        if unknown:
            raise ValueError(f"{channel.value} messages have no part {', '.join(sorted(unknown))}")
        return cls(
            channel,
            subject=parts.get("subject"),
            text_body=parts.get("text_body"),
            html_body=parts.get("html_body"),
            text=parts.get("text"),
            json_body=parts.get("json_body"),
            title=parts.get("title"),
            body=parts.get("body"),
        )

    @property
    def parts(self) -> dict[str, str]:
        """The rendered parts by name, as stored or shown in a preview."""
        candidates = {
            "subject": self.subject,
            "text_body": self.text_body,
            "html_body": self.html_body,
            "text": self.text,
            "json_body": self.json_body,
            "title": self.title,
            "body": self.body,
        }
        return {name: value for name, value in candidates.items() if value is not None}


@dataclass(frozen=True)
class TemplateProblem:
    """One thing wrong with a template: the part at fault, what kind of fault, and where."""

    part: str
    kind: ProblemKind
    message: str
    line: int | None = None  # the line in the part's source, when Jinja2 knows it

    def __str__(self) -> str:
        where = self.part if self.line is None else f"{self.part}, line {self.line}"
        return f"{where}: {self.message}"


class InvalidTemplate(ValueError):
    """A template that cannot be saved or rendered; ``problems`` lists every part at fault."""

    def __init__(self, problems: list[TemplateProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems))


# What a template sees. The context builder gives every template these same keys, so a
# template that renders this sample renders for every customer; `warning` is None when the
# trigger is not a churn warning and `stage.previous_stage` None for a new customer, so
# templates used for several triggers guard them with `{% if warning %}`.
SAMPLE_CONTEXT: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "customer": {
            "id": "01932c4e-5f1a-7c3b-8d2e-9f0a1b2c3d4e",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "phone": "+4915112345678",
            "locale": "de-DE",
            "time_zone": "Europe/Berlin",
            "tags": ["newsletter", "b2b"],
            "attributes": {"loyalty_card": True, "favourite_store": "Berlin Mitte"},
        },
        "scores": {
            "churn_risk": 0.71,
            "p_alive": 0.42,
            "health_index": 38.0,
            "value_tier": "growth",
            "grade": "high",
            "rfm_segment": "at_risk",
            "recency_score": 2,
            "frequency_score": 4,
            "monetary_score": 4,
            "order_count": 7,
            "last_purchase_at": "2024-11-02T18:04:00Z",
            "expected_interpurchase_days": 41.5,
            "predicted_clv_12m": {"amount": "1240.50", "currency": "EUR"},
            "historic_clv": {"amount": "2210.00", "currency": "EUR"},
            "total_spend": {"amount": "2210.00", "currency": "EUR"},
        },
        "stage": {"stage": "at_risk", "previous_stage": "loyal"},
        "warning": {
            "warning_id": "01932c4f-1111-7c3b-8d2e-9f0a1b2c3d4e",
            "status": "open",
            "reasons": ["churn_risk_above_threshold", "spend_dropped"],
            "recommended_action": "retention_offer",
        },
        # Set for order.placed triggers only; other templates see None (guard: {% if order %}).
        "order": {
            "order_id": "ord-5521",
            "total": {"amount": "59.90", "currency": "EUR"},
        },
        # Set for activity.recorded triggers only (guard: {% if activity %}).
        "activity": {
            "activity_id": "act-7f3a9c",
            "activity_type": "cart_abandoned",
            "properties": {"cart_value": "59.90"},
        },
        # Set for feedback.recorded triggers only (guard: {% if feedback %}).
        "feedback": {
            "feedback_id": "fb-1001",
            "kind": "complaint",
            "occurred_at": "2025-03-14T09:20:00Z",
            "survey": None,
            "score": None,
            "ticket_id": None,
            "order_id": "ord-5521",
            "about": "late_delivery",
        },
        "event": {
            "id": "01932c4f-1111-7c3b-8d2e-9f0a1b2c3d4e",
            "type": "churn.warning",
            "time": "2025-03-14T09:30:00Z",
        },
        "unsubscribe_url": "https://crm.example.com/v1/unsubscribe/u1.MDE5MzJjNGUtNWYxYQ.em.q0nRk2yO4ppA5CGpD1iA8w",
    }
)


def render(
    template: Template,
    context: Mapping[str, Any],
    limits: RenderLimits = DEFAULT_LIMITS,
    clock: Callable[[], float] = time.monotonic,
) -> RenderedMessage:
    """Render every part of ``template`` with ``context``; :class:`InvalidTemplate` if any fails.

    The whole render spends one budget of ``limits`` (``clock``: monotonic seconds). Parts
    the channel does not use are ignored here (:func:`validate_template` reports them).
    """
    with spending(RenderBudget(limits, clock)):
        return _render_parts(template, context)


def _render_parts(template: Template, context: Mapping[str, Any]) -> RenderedMessage:
    problems = _missing_parts(template)
    rendered: dict[str, str] = {}
    for part in channel_parts(template.channel):
        source = template.parts.get(part)
        if source is None or part in {problem.part for problem in problems}:
            continue
        try:
            rendered[part] = _render_part(part, source, context)
        except InvalidTemplate as error:
            problems.extend(error.problems)
    if problems:
        raise InvalidTemplate(problems)
    return RenderedMessage.from_parts(template.channel, rendered)


def validate_template(
    template: Template,
    context: Mapping[str, Any] = SAMPLE_CONTEXT,
    limits: RenderLimits = DEFAULT_LIMITS,
    clock: Callable[[], float] = time.monotonic,
) -> list[TemplateProblem]:
    """Every problem of ``template``, by part: missing, unknown, not compiling, not rendering.

    Rendering ``context`` (the sample by default) catches undefined names, sandbox
    violations, templates past their limits and webhook bodies that are not JSON before the
    template is saved.
    """
    try:
        render_checked(template, context, limits, clock)
    except InvalidTemplate as error:
        return error.problems
    return []


def render_checked(
    template: Template,
    context: Mapping[str, Any],
    limits: RenderLimits = DEFAULT_LIMITS,
    clock: Callable[[], float] = time.monotonic,
) -> RenderedMessage:
    """:func:`render`, refusing parts the channel does not have as well (a preview or a save)."""
    allowed = channel_parts(template.channel)
    problems = [
        TemplateProblem(part, "unknown_part", f"{template.channel.value} templates have no {part}")
        for part in template.parts
        if part not in allowed
    ]
    try:
        rendered = render(template, context, limits, clock)
    except InvalidTemplate as error:
        problems.extend(error.problems)
    if problems:
        raise InvalidTemplate(problems)
    return rendered


def _missing_parts(template: Template) -> list[TemplateProblem]:
    return [
        TemplateProblem(part, "missing_part", f"{template.channel.value} templates need {part}")
        for part in REQUIRED_PARTS[template.channel]
        if not (template.parts.get(part) or "").strip()
    ]


def _render_part(part: str, source: str, context: Mapping[str, Any]) -> str:
    try:
        compiled = _compiled(_escaping_of(part), source)
    except TemplateSyntaxError as error:
        raise InvalidTemplate(
            [TemplateProblem(part, "syntax", error.message or "syntax error", error.lineno)]
        ) from error
    try:
        output = compiled.render(context)
    except RenderLimitExceeded as error:
        raise _failure(part, "limit", str(error), error) from error
    except SecurityError as error:
        raise _failure(part, "security", f"not allowed in a template: {error}", error) from error
    except UndefinedError as error:
        raise _failure(part, "undefined", str(error), error) from error
    # Anything else a template can raise (1/0, 'a' + 1) is the template's fault too.
    except Exception as error:
        raise _failure(part, "render", f"{type(error).__name__}: {error}", error) from error
    if part in _ONE_LINE_PARTS:
        return " ".join(output.split())
    if part in _JSON_PARTS:
        try:
            json.loads(output, parse_constant=_refuse_non_finite)
        except ValueError as error:
            problem = TemplateProblem(part, "invalid_json", f"does not render to JSON: {error}")
            raise InvalidTemplate([problem]) from error
    return output


def _refuse_non_finite(constant: str) -> Any:
    # Python reads NaN and Infinity; the receivers' JSON parsers do not.
    raise ValueError(f"{constant} is not JSON")


def _failure(part: str, kind: ProblemKind, message: str, error: Exception) -> InvalidTemplate:
    return InvalidTemplate(
        [TemplateProblem(part, kind, message, _template_line(error.__traceback__))]
    )


def _template_line(traceback: TracebackType | None) -> int | None:
    # Jinja2 rewrites tracebacks so template frames carry the template's own line numbers.
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


_Escaping = Literal["none", "html", "json"]


def _escaping_of(part: str) -> _Escaping:
    if part in _HTML_PARTS:
        return "html"
    if part in _JSON_PARTS:
        return "json"
    return "none"


def _json_finalize(value: Any) -> Any:
    # Markup (what `tojson` and `safe` return) is a whole JSON value the author chose to write.
    if hasattr(value, "__html__"):
        return value
    if value is None or isinstance(value, bool | int | float | list | dict):
        return json.dumps(value, default=str)
    return json.dumps(str(value))[1:-1]


_ENVIRONMENTS: Final[Mapping[_Escaping, jinja2.Environment]] = MappingProxyType(
    {
        "none": Sandbox(undefined=StrictUndefined, autoescape=False),
        "html": Sandbox(undefined=StrictUndefined, autoescape=True),
        "json": Sandbox(undefined=StrictUndefined, autoescape=False, finalize=_json_finalize),
    }
)


@functools.lru_cache(maxsize=1024)
def _compiled(escaping: _Escaping, source: str) -> jinja2.Template:
    # Compiling is the slow step (parse, generate Python, exec); the same template renders
    # for thousands of customers, so each source is compiled once per process.
    return _ENVIRONMENTS[escaping].from_string(source)
