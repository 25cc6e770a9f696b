"""The templates the default playbook sends: one per template id and channel, editable.

Marketing texts carry the unsubscribe link themselves (the email adapter adds a footer to any
email whose template forgot it). The account-manager task is JSON for the team's tool.
"""

from __future__ import annotations

from typing import Final

from crm_contracts import Category
from notification_service.domain.templates import Template

__all__ = ["DEFAULT_TEMPLATES"]

_HELLO = "Hello {{ customer.first_name or 'there' }},"
_UNSUBSCRIBE_TEXT = "\n\nNo more of these? Unsubscribe: {{ unsubscribe_url }}"
_UNSUBSCRIBE_HTML = '<p style="font-size:12px"><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


def _email_and_inbox(
    template_id: str, subject: str, text: str, *, marketing: bool
) -> tuple[Template, Template]:
    footer_text = _UNSUBSCRIBE_TEXT if marketing else ""
    footer_html = _UNSUBSCRIBE_HTML if marketing else ""
    category = Category.MARKETING if marketing else Category.SERVICE
    paragraphs = "".join(f"<p>{line}</p>" for line in text.split("\n\n"))
    return (
        Template.email(
            template_id,
            subject=subject,
            text_body=f"{_HELLO}\n\n{text}{footer_text}",
            html_body=f"<p>{_HELLO}</p>{paragraphs}{footer_html}",
            category=category,
        ),
        Template.in_app(template_id, title=subject, body=text, category=category),
    )


DEFAULT_TEMPLATES: Final[tuple[Template, ...]] = (
    *_email_and_inbox(
        "welcome-first-order",
        "Thank you for your first order",
        "We are glad you found us. Your order is on its way; we will tell you when it ships.",
        marketing=False,
    ),
    *_email_and_inbox(
        "first-order-care",
        "How is your order treating you?",
        "Two weeks in: if anything is not right with your order, reply to this message and we"
        " will sort it out.",
        marketing=False,
    ),
    *_email_and_inbox(
        "member-benefits",
        "Your member benefits",
        "As a customer you get free returns for 60 days and early access to our sales.",
        marketing=True,
    ),
    *_email_and_inbox(
        "second-order-offer",
        "10% off your next order",
        "It has been a while since your first order. Here is 10% off the next one with the"
        " code WELCOME10, valid for two weeks.",
        marketing=True,
    ),
    *_email_and_inbox(
        "dormant-wake-up",
        "We have missed you",
        "A lot is new since your last visit. Come and have a look at what arrived this season.",
        marketing=True,
    ),
    *_email_and_inbox(
        "complaint-follow-up",
        "We are sorry",
        "Thank you for telling us what went wrong, and we are sorry it did. A member of our"
        " service team is looking into it and will get back to you personally.",
        marketing=False,
    ),
    *_email_and_inbox(
        "cart-reminder",
        "You left something in your cart",
        "Your cart is saved: pick up where you left off whenever you like.",
        marketing=True,
    ),
    *_email_and_inbox(
        "retention-offer",
        "Something for you",
        "Thank you for being a customer. Here is 15% off your next order with the code"
        " THANKYOU15, valid for 30 days.",
        marketing=True,
    ),
    Template.email(
        "win-back-offer",
        subject="Come back for 20% off",
        text_body=f"{_HELLO}\n\nWe would love to see you again: 20% off your next order with"
        f" the code COMEBACK20.{_UNSUBSCRIBE_TEXT}",
        html_body=f"<p>{_HELLO}</p><p>We would love to see you again: 20% off your next order"
        f" with the code COMEBACK20.</p>{_UNSUBSCRIBE_HTML}",
    ),
    Template.sms(
        "win-back-offer",
        text="{{ customer.first_name or 'Hi' }}, 20% off your next order: COMEBACK20",
    ),
    Template.webhook(
        "account-manager-churn-task",
        category=Category.SERVICE,
        json_body="""{
  "task": "call_customer_at_risk",
  "customer_id": "{{ customer.id }}",
  "name": "{{ customer.first_name or '' }} {{ customer.last_name or '' }}",
  "email": {{ customer.email | tojson }},
  "phone": {{ customer.phone | tojson }},
  "value_tier": {{ scores.value_tier | tojson }},
  "grade": {{ scores.grade | tojson }},
  "churn_risk": {{ scores.churn_risk | tojson }},
  "predicted_clv_12m": {{ scores.predicted_clv_12m | tojson }},
  "reasons": {{ warning.reasons | tojson }},
  "stage": {{ stage.stage | tojson }}
}""",
    ),
)
