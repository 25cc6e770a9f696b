"""The playbook notification-service ships with: editable defaults for the common journeys.

Welcome and care after a first order, member benefits at 30 days, an offer at 40 days for
customers who have not bought again, a wake-up message on dormancy, a win-back offer on churn,
for a churn warning either a task for an account manager (high-value customers) or a
retention offer, an apology with a service follow-up after a complaint, and a reminder
four hours after an abandoned cart (not sent when the customer ordered meanwhile).
Customers sliding toward churn get fewer messages through the delivery policy's stricter
cap, not through extra rules.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from crm_contracts import CART_ABANDONED, Category, FeedbackKind, NotificationChannel, Stage
from notification_service.domain.playbooks import (
    ACTIVITY_RECORDED,
    CHURN_WARNING,
    FEEDBACK_RECORDED,
    ORDER_PLACED,
    STAGE_CHANGED,
    Conditions,
    PlaybookRule,
)

__all__ = ["DEFAULT_RULES", "DEFAULT_TEMPLATE_IDS"]

_EMAIL_THEN_INBOX: Final = (NotificationChannel.EMAIL, NotificationChannel.IN_APP)
_FIRST_ORDER: Final = Conditions(first_order_only=True)

# Welcome and care speak about the purchase just made (what happens next, how to look after
# it), so they are service messages: no opt-in needed, no cap. Their templates must carry no
# offer; one that does is marketing. The account-manager task goes to an internal hook, not to
# the customer, so it is service too: consent, cap and quiet hours protect the customer, and
# they would only delay a person's call. "High value" is lifecycle's recommended_action, so the
# definition lives in one place and the task replaces the offer rather than adding to it.
DEFAULT_RULES: Final = (
    PlaybookRule(
        rule_id="welcome-first-order",
        name="Welcome after the first order",
        event_type=ORDER_PLACED,
        conditions=_FIRST_ORDER,
        template_id="welcome-first-order",
        channels=_EMAIL_THEN_INBOX,
        category=Category.SERVICE,
        priority=40,
    ),
    PlaybookRule(
        rule_id="care-15d",
        name="Care message 15 days after the first order",
        event_type=ORDER_PLACED,
        conditions=_FIRST_ORDER,
        template_id="first-order-care",
        channels=_EMAIL_THEN_INBOX,
        category=Category.SERVICE,
        priority=20,
        delay=timedelta(days=15),
    ),
    PlaybookRule(
        rule_id="member-benefits-30d",
        name="Member benefits 30 days after the first order",
        event_type=ORDER_PLACED,
        conditions=_FIRST_ORDER,
        template_id="member-benefits",
        channels=_EMAIL_THEN_INBOX,
        category=Category.MARKETING,
        priority=30,
        delay=timedelta(days=30),
    ),
    PlaybookRule(
        rule_id="offer-40d-no-repeat",
        name="Second-order offer at 40 days for customers who have not bought again",
        event_type=ORDER_PLACED,
        conditions=Conditions(first_order_only=True, unless_ordered_since_trigger=True),
        template_id="second-order-offer",
        channels=_EMAIL_THEN_INBOX,
        category=Category.MARKETING,
        priority=50,
        delay=timedelta(days=40),
    ),
    PlaybookRule(
        rule_id="dormant-wake-up",
        name="Wake-up message when a customer turns dormant",
        event_type=STAGE_CHANGED,
        conditions=Conditions(stages=frozenset({Stage.DORMANT.value})),
        template_id="dormant-wake-up",
        channels=_EMAIL_THEN_INBOX,
        category=Category.MARKETING,
        priority=60,
    ),
    PlaybookRule(
        rule_id="churned-win-back",
        name="Win-back offer when a customer churns",
        event_type=STAGE_CHANGED,
        conditions=Conditions(stages=frozenset({Stage.CHURNED.value})),
        template_id="win-back-offer",
        channels=(NotificationChannel.EMAIL, NotificationChannel.SMS),
        category=Category.MARKETING,
        priority=80,
    ),
    PlaybookRule(
        rule_id="high-value-warning-task",
        name="Account-manager task for a churn warning on a high-value customer",
        event_type=CHURN_WARNING,
        conditions=Conditions(recommended_actions=frozenset({"account_manager_task"})),
        template_id="account-manager-churn-task",
        channels=(NotificationChannel.WEBHOOK,),
        category=Category.SERVICE,
        priority=100,
    ),
    PlaybookRule(
        rule_id="warning-retention-offer",
        name="Retention offer for a churn warning",
        event_type=CHURN_WARNING,
        conditions=Conditions(recommended_actions=frozenset({"retention_offer"})),
        template_id="retention-offer",
        channels=_EMAIL_THEN_INBOX,
        category=Category.MARKETING,
        priority=70,
    ),
    # About the customer's own complaint, with no offer: a service message (no opt-in, no cap).
    PlaybookRule(
        rule_id="complaint-follow-up",
        name="Apology and service follow-up after a complaint",
        event_type=FEEDBACK_RECORDED,
        conditions=Conditions(feedback_kinds=frozenset({FeedbackKind.COMPLAINT.value})),
        template_id="complaint-follow-up",
        channels=_EMAIL_THEN_INBOX,
        category=Category.SERVICE,
        priority=90,
    ),
    # A nudge to buy: marketing (consent, cap and quiet hours apply).
    PlaybookRule(
        rule_id="cart-abandoned-reminder",
        name="Reminder four hours after an abandoned cart",
        event_type=ACTIVITY_RECORDED,
        conditions=Conditions(
            activity_types=frozenset({CART_ABANDONED}), unless_ordered_since_trigger=True
        ),
        template_id="cart-reminder",
        channels=_EMAIL_THEN_INBOX,
        category=Category.MARKETING,
        priority=45,
        delay=timedelta(hours=4),
    ),
)

# The templates the shipped rules use, for the template store to ship beside them.
DEFAULT_TEMPLATE_IDS: Final = tuple(dict.fromkeys(rule.template_id for rule in DEFAULT_RULES))
