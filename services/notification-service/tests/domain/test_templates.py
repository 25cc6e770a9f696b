"""Templates: every channel renders, values are escaped where they land, bad templates are named."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from crm_contracts import NotificationChannel
from notification_service.domain import templates
from notification_service.domain.sandbox import RenderLimits
from notification_service.domain.templates import (
    SAMPLE_CONTEXT,
    InvalidTemplate,
    RenderedMessage,
    Template,
    channel_parts,
    render,
    validate_template,
)


def context(**customer: Any) -> dict[str, Any]:
    """The sample context with some of the customer's fields replaced."""
    sample = dict(SAMPLE_CONTEXT)
    sample["customer"] = {**SAMPLE_CONTEXT["customer"], **customer}
    return sample


def email(
    *,
    subject: str = "We miss you, {{ customer.first_name }}",
    text_body: str = "Hello {{ customer.first_name }},\ncome back.\n{{ unsubscribe_url }}",
    html_body: str | None = "<p>Hello {{ customer.first_name }}</p>",
) -> Template:
    return Template.email("winback", subject=subject, text_body=text_body, html_body=html_body)


def sms(text: str) -> Template:
    return Template.sms("sms", text=text)


def webhook(json_body: str) -> Template:
    return Template.webhook("task", json_body=json_body)


def problems_of(template: Template) -> list[tuple[str, str, int | None]]:
    return [(problem.part, problem.kind, problem.line) for problem in validate_template(template)]


# --- rendering each channel ---------------------------------------------------------------------


def test_email_renders_subject_text_and_html_for_the_customer() -> None:
    rendered = render(email(), context(first_name="Grace"))

    assert rendered.channel is NotificationChannel.EMAIL
    assert rendered.subject == "We miss you, Grace"
    assert rendered.text_body == f"Hello Grace,\ncome back.\n{SAMPLE_CONTEXT['unsubscribe_url']}"
    assert rendered.html_body == "<p>Hello Grace</p>"
    assert rendered.text is None


def test_email_without_html_body_renders_as_plain_text() -> None:
    rendered = render(email(html_body=None), SAMPLE_CONTEXT)

    assert rendered.html_body is None
    assert set(rendered.parts) == {"subject", "text_body"}


def test_html_body_is_escaped_and_text_parts_are_not() -> None:
    name = "<b>Tom & Jerry</b>"
    template = email(
        subject="For {{ customer.first_name }}",
        text_body="Hi {{ customer.first_name }}",
        html_body="<p>Hi {{ customer.first_name }}</p>",
    )

    rendered = render(template, context(first_name=name))

    assert rendered.html_body == "<p>Hi &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert rendered.text_body == f"Hi {name}"
    assert rendered.subject == f"For {name}"


def test_subject_and_title_are_one_line() -> None:
    template = email(subject="{% if scores.churn_risk > 0.5 %}\n  We miss you\n{% endif %}")
    inbox = Template.in_app("inbox", title="Hello\n{{ customer.first_name }}", body="a\nb")

    assert render(template, SAMPLE_CONTEXT).subject == "We miss you"
    rendered_inbox = render(inbox, SAMPLE_CONTEXT)
    assert rendered_inbox.title == "Hello Ada"
    assert rendered_inbox.body == "a\nb"


def test_sms_renders_its_text() -> None:
    rendered = render(sms("{{ customer.first_name }}, 10% off today"), SAMPLE_CONTEXT)

    assert rendered == RenderedMessage(NotificationChannel.SMS, text="Ada, 10% off today")


def test_in_app_renders_title_and_body() -> None:
    template = Template.in_app(
        "inbox",
        title="Your {{ scores.value_tier }} benefits",
        body="{{ stage.previous_stage }} -> {{ stage.stage }}",
    )

    rendered = render(template, SAMPLE_CONTEXT)

    assert (rendered.title, rendered.body) == ("Your growth benefits", "loyal -> at_risk")


def test_webhook_renders_a_json_document() -> None:
    template = webhook(
        '{"customer": "{{ customer.id }}", "risk": {{ scores.churn_risk }},'
        ' "reasons": {{ warning.reasons | tojson }},'
        ' "card": {{ customer.attributes.loyalty_card }}}'
    )

    document = json.loads(render(template, SAMPLE_CONTEXT).json_body or "")

    assert document == {
        "customer": SAMPLE_CONTEXT["customer"]["id"],
        "risk": 0.71,
        "reasons": ["churn_risk_above_threshold", "spend_dropped"],
        "card": True,
    }


def test_webhook_values_cannot_break_out_of_their_json_string() -> None:
    template = webhook('{"name": "{{ customer.first_name }}", "vip": false}')
    name = 'Ada", "vip": true, "x": "\\'

    document = json.loads(render(template, context(first_name=name)).json_body or "")

    assert document == {"name": name, "vip": False}


def test_webhook_template_that_does_not_render_json_is_refused() -> None:
    template = webhook('{"name": {{ customer.first_name }}}')  # an unquoted string

    assert problems_of(template) == [("json_body", "invalid_json", None)]
    with pytest.raises(InvalidTemplate, match="does not render to JSON"):
        render(template, SAMPLE_CONTEXT)


def test_webhook_number_that_is_not_finite_is_not_json() -> None:
    template = webhook('{"risk": {{ scores.churn_risk }}}')
    scores = {**SAMPLE_CONTEXT["scores"], "churn_risk": float("nan")}

    with pytest.raises(InvalidTemplate, match="NaN is not JSON"):
        render(template, {**SAMPLE_CONTEXT, "scores": scores})


@pytest.mark.parametrize(
    "template",
    [
        email(),
        sms("Hi {{ customer.first_name }}"),
        webhook('{"id": "{{ customer.id }}"}'),
        Template.in_app("inbox", title="Hi", body="{{ event.type }}"),
    ],
    ids=lambda template: template.channel.value,
)
def test_a_valid_template_of_each_channel_has_no_problems(template: Template) -> None:
    assert validate_template(template) == []


def test_sample_context_offers_what_templates_are_told_they_can_use() -> None:
    template = sms(
        "{{ customer.id }} {{ customer.first_name }} {{ customer.last_name }} {{ customer.email }}"
        " {{ customer.phone }} {{ customer.locale }} {{ customer.time_zone }}"
        " {{ customer.attributes.favourite_store }} {{ scores.churn_risk }} {{ scores.value_tier }}"
        " {{ scores.grade }} {{ scores.predicted_clv_12m.amount }} {{ scores.rfm_segment }}"
        " {{ stage.stage }} {{ stage.previous_stage }} {{ warning.reasons | join(',') }}"
        " {{ warning.recommended_action }} {{ event.type }} {{ event.time }} {{ unsubscribe_url }}"
    )

    assert validate_template(template) == []


# --- problems found on save ---------------------------------------------------------------------


def test_undefined_name_is_reported_with_part_and_line() -> None:
    template = email(text_body="Hello,\n\n{{ custmer.first_name }}")

    (problem,) = validate_template(template)

    assert (problem.part, problem.kind, problem.line) == ("text_body", "undefined", 3)
    assert "custmer" in problem.message
    assert str(problem).startswith("text_body, line 3: ")


def test_a_missing_attribute_is_undefined_too_and_default_guards_it() -> None:
    assert problems_of(sms("{{ customer.attributes.shoe_size }}")) == [("text", "undefined", 1)]
    assert problems_of(sms("{{ customer.attributes.shoe_size | default('?') }}")) == []


def test_syntax_error_is_reported_with_part_and_line() -> None:
    template = email(html_body="<p>\nHi {{ customer.first_name }\n</p>")

    (problem,) = validate_template(template)

    assert (problem.part, problem.kind, problem.line) == ("html_body", "syntax", 2)


def test_unclosed_block_is_reported_at_the_line_that_opens_it() -> None:
    template = email(html_body="<p>\n{% if customer.first_name %}\nHi\n</p>")

    (problem,) = validate_template(template)

    assert (problem.part, problem.kind, problem.line) == ("html_body", "syntax", 2)
    assert "endif" in problem.message


def test_every_failing_part_is_reported_not_only_the_first() -> None:
    template = email(subject="{{ nope }}", text_body="{% for %}", html_body="{{ 1 / 0 }}")

    assert problems_of(template) == [
        ("subject", "undefined", 1),
        ("text_body", "syntax", 1),
        ("html_body", "render", 1),
    ]


def test_missing_and_unknown_parts_are_reported() -> None:
    template = Template("odd", NotificationChannel.SMS, {"text": "  ", "subject": "Hi"})

    assert problems_of(template) == [
        ("subject", "unknown_part", None),
        ("text", "missing_part", None),
    ]


def test_channel_may_be_given_as_its_stored_value() -> None:
    template = Template("t", "sms", {"text": "Hi"})  # type: ignore[arg-type]

    assert template.channel is NotificationChannel.SMS
    assert channel_parts(template.channel) == ("text",)


def test_render_raises_for_a_customer_the_template_cannot_render() -> None:
    template = sms("{{ customer.attributes.favourite_store }}")
    customer_without_store = context(attributes={})

    assert validate_template(template) == []
    with pytest.raises(InvalidTemplate) as raised:
        render(template, customer_without_store)
    assert [problem.kind for problem in raised.value.problems] == ["undefined"]


# --- the sandbox --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ customer.__class__ }}",
        "{{ () | attr('__class__') }}",
        "{{ '{0.__class__}'.format(customer) }}",
        "{{ self._TemplateReference__context }}",
        "{{ customer.tags.append('owned') }}",
        "{{ customer.attributes.update(vip=true) }}",
    ],
)
def test_template_reaching_python_internals_is_refused(payload: str) -> None:
    (problem,) = validate_template(sms(f"Hi {{{{ customer.first_name }}}} {payload}"))

    assert (problem.part, problem.kind) == ("text", "security")
    assert problem.message.startswith("not allowed in a template")


def test_sandbox_leaves_ordinary_expressions_alone() -> None:
    template = sms("{{ '-' * 3 }} {{ 2 ** 10 }} {{ (scores.churn_risk * 100) | round | int }}%")

    assert render(template, SAMPLE_CONTEXT).text == "--- 1024 71%"


def test_sandbox_keeps_the_context_unchanged() -> None:
    shared: Mapping[str, Any] = context(tags=["newsletter"])

    with pytest.raises(InvalidTemplate):
        render(sms("{{ customer.tags.append('owned') }}"), shared)
    assert shared["customer"]["tags"] == ["newsletter"]


# --- values -------------------------------------------------------------------------------------


def test_template_parts_are_a_read_only_copy() -> None:
    parts = {"text": "first"}
    template = Template("t", NotificationChannel.SMS, parts)
    parts["text"] = "changed"

    assert template.parts["text"] == "first"
    with pytest.raises(TypeError):
        template.parts["text"] = "changed"  # type: ignore[index]


def test_rendered_message_round_trips_through_its_parts() -> None:
    rendered = render(email(), SAMPLE_CONTEXT)

    assert RenderedMessage.from_parts(rendered.channel, rendered.parts) == rendered
    with pytest.raises(ValueError, match="no part text"):
        RenderedMessage.from_parts(NotificationChannel.EMAIL, {"text": "x"})


def test_each_source_is_compiled_once() -> None:
    source = "Compiled once for {{ customer.first_name }}"
    render(sms(source), SAMPLE_CONTEXT)
    misses = templates._compiled.cache_info().misses

    for _ in range(100):
        render(sms(source), SAMPLE_CONTEXT)

    assert templates._compiled.cache_info().misses == misses


def test_lipsum_is_not_there_to_reach_python_through() -> None:
    (problem,) = validate_template(sms("{{ lipsum.__globals__['os'] }}"))

    assert (problem.part, problem.kind) == ("text", "undefined")


# --- render limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("{{ 'a' * 1000000000 }}", id="repeat-string"),
        pytest.param("{{ [0] * 1000000000 }}", id="repeat-list"),
        pytest.param("{{ 10 ** 100000 }}", id="power"),
        pytest.param("{{ (2 ** 4000) * (2 ** 4000) }}", id="product"),
        pytest.param("{{ 'x'|center(5000000) }}", id="center-filter"),
        pytest.param("{{ 'x'.center(5000000) }}", id="center-method"),
        pytest.param("{{ 'x'.ljust(10000000) }}", id="ljust"),
        pytest.param("{{ 'x'.zfill(10000000) }}", id="zfill"),
        pytest.param("{{ 'x'|indent(10000000, true) }}", id="indent"),
        pytest.param("{{ '%99999999s'|format('x') }}", id="format-filter"),
        pytest.param("{{ '%99999999s' % 'x' }}", id="percent"),
        pytest.param("{{ '%*s' % (99999999, 'x') }}", id="percent-star"),
        pytest.param("{{ '{:>99999999}'.format('x') }}", id="str-format"),
        pytest.param("{{ '{:>{w}}'.format('x', w=99999999) }}", id="str-format-nested"),
        pytest.param("{{ ('x' * 50000)|replace('x', 'y' * 50000) }}", id="replace"),
        pytest.param("{{ range(60000)|join('y' * 1000) }}", id="join-filter"),
        pytest.param("{{ ('y' * 1000).join(range(60000)|map('string')) }}", id="join-method"),
        pytest.param(
            "{{ range(100000)|map('string')|join('y' * 100000) }}", id="join-of-an-iterator"
        ),
        pytest.param("{{ ([('x' * 100000)] * 100000)|join }}", id="join-of-references"),
        pytest.param("{{ ([[0] * 100000] * 100000)|sum(start=[]) }}", id="sum-of-lists"),
        pytest.param("{{ ([[0] * 100000] * 100000)|map('list')|list|length }}", id="fresh-copies"),
        pytest.param("{{ range(10000000)|list|length }}", id="range"),
        pytest.param("{{ [1]|batch(100000000, 0)|list }}", id="batch"),
        pytest.param("{{ ('x' * 60000) ~ ('x' * 60000) }}", id="concat"),
        pytest.param("{{ ('x' * 60000) + ('x' * 60000) }}", id="plus"),
        pytest.param(
            "{% set ns = namespace(s='x' * 1000) %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            id="namespace-doubling",
        ),
        pytest.param(
            "{% macro d(n) %}{% if n %}{% set x = d(n - 1) %}{{ x }}{{ x }}{% else %}xx"
            "{% endif %}{% endmacro %}{{ d(40)|length }}",
            id="macro-doubling",
        ),
        pytest.param(
            "{% set x = 'x' * 60000 %}{% set y %}{{ x }}{{ x }}{% endset %}{{ y|length }}",
            id="block-set",
        ),
        pytest.param(
            "{% for i in range(4000) %}{% for j in range(4000) %}{% endfor %}{% endfor %}",
            id="nested-loop",
        ),
        pytest.param(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            id="range-squared",
        ),
        pytest.param(
            "{% for i in 'x' * 60000 %}{% for j in 'y' * 60000 %}{% endfor %}{% endfor %}",
            id="loop-over-strings",
        ),
    ],
)
def test_a_template_past_its_render_limits_is_refused_quickly(payload: str) -> None:
    (problem,) = validate_template(sms(payload))

    assert (problem.part, problem.kind) == ("text", "limit"), problem


def test_a_render_past_its_time_budget_stops_by_itself() -> None:
    ticks = iter(range(10**9))  # a clock a second further on at every look

    problems = validate_template(
        sms("{% for tag in customer.tags %}{{ tag }}{% endfor %}"),
        limits=RenderLimits(max_seconds=1.5),
        clock=lambda: float(next(ticks)),
    )

    assert [(p.kind, "longer than 1.5 s" in p.message) for p in problems] == [("limit", True)]


def test_limits_leave_a_long_but_reasonable_message_alone() -> None:
    source = (
        "{% for n in range(200) %}{% for tag in customer.tags %}"
        "{{ loop.index }}: {{ tag|upper|center(20) }} {{ '%5d'|format(n) }}\n"
        "{% endfor %}{% endfor %}{{ ', '.join(customer.tags) }}"
    )

    rendered = render(sms(source), SAMPLE_CONTEXT)

    assert rendered.text is not None
    assert rendered.text.count("NEWSLETTER") == 200
