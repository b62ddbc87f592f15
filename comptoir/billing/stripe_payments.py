"""Payments through Stripe (card online, card and Interac on a reader): the PaymentIntent for an
order, and the one place a PaymentIntent's news moves our payment row.

A PaymentIntent is a direct charge on the organization's connected account. Its idempotency key
comes from the order and the attempt (``order-42-attempt-3``): when our transaction fails after
Stripe created the intent, the retry asks with the same key and gets the same intent back.

Only :func:`sync_payment` moves a Stripe payment, and only forward (``payments.advance``); it is
called from webhook handlers and the reconciliation sweep with an intent re-fetched from Stripe,
never with what a browser says. An intent whose amount, currency, account or order differs from
our row is flagged for review and does not count as money received.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _

from comptoir.billing import payments
from comptoir.billing.models import Method, MoneyState, Order, Payment
from comptoir.billing.stripe_events import handles
from comptoir.billing.stripe_gateway import Event, PaymentIntent, StripeGateway
from comptoir.billing.stripe_models import StripeAccount
from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.errors import ConflictError
from comptoir.tenants.models import Organization

logger = logging.getLogger(__name__)

STRIPE_ACTOR = Actor.system("Stripe")
STRIPE_METHODS = (Method.CARD, Method.TERMINAL)
# Metadata keys on every intent Comptoir creates: how an intent is tied back to our rows.
META_ORGANIZATION = "comptoir_organization_id"
META_ORDER = "comptoir_order_id"
META_PAYMENT = "comptoir_payment_id"


def connected_account(organization: Organization) -> StripeAccount | None:
    return db.session.execute(
        sa.select(StripeAccount).where(StripeAccount.organization_id == organization.id)
    ).scalar_one_or_none()


def chargeable_account(organization: Organization) -> StripeAccount:
    """The connected account, when it can take payments; otherwise a clear refusal."""
    account = connected_account(organization)
    if account is None or not account.charges_enabled:
        raise ConflictError(_("Card payments are not available: Stripe is not connected yet."))
    return account


def application_fee(organization: Organization, amount: int) -> int:
    """The platform's fee on ``amount``: the percentage rounded half up, plus the fixed part,
    never more than the amount itself."""
    proportional = (amount * organization.application_fee_basis_points + 5_000) // 10_000
    return min(amount, proportional + organization.application_fee_fixed)


def attempt_number(order: Order) -> int:
    """The next attempt at paying ``order`` through Stripe (1 for the first)."""
    count = db.session.execute(
        sa.select(sa.func.count())
        .select_from(Payment)
        .where(Payment.order_id == order.id, Payment.method.in_(STRIPE_METHODS))
    ).scalar_one()
    return int(count) + 1


@dataclass(frozen=True)
class StartedIntent:
    payment: Payment
    intent: PaymentIntent


def start_intent(
    *,
    organization: Organization,
    order: Order,
    actor: Actor,
    gateway: StripeGateway,
    method: Method,
    amount: int,
    payment_method_types: tuple[str, ...],
    capture_method: str = "automatic",
) -> StartedIntent:
    """A ``processing`` payment for ``amount`` of ``order`` and its PaymentIntent at Stripe.

    Raises ``ConflictError`` when the order cannot be paid (paid already, cancelled) or Stripe is
    not connected; gateway errors pass through for the caller to explain.
    """
    account = chargeable_account(organization)
    attempt = attempt_number(order)
    payment = payments.start_payment(order=order, actor=actor, method=method.value, amount=amount)
    intent = gateway.create_payment_intent(
        account.account_id,
        amount=amount,
        currency=order.currency.lower(),
        application_fee_amount=application_fee(organization, amount) or None,
        metadata={
            META_ORGANIZATION: organization.id,
            META_ORDER: order.id,
            META_PAYMENT: payment.id,
            "order_number": order.number,
        },
        idempotency_key=f"order-{order.id}-attempt-{attempt}",
        payment_method_types=payment_method_types,
        capture_method=capture_method,
        description=_("Order %(number)s", number=order.number),
        receipt_email=order.customer_email or None,
    )
    payment.provider_reference = intent.id
    payment.details = {
        **payment.details,
        "account": account.account_id,
        "attempt": attempt,
        "application_fee_amount": application_fee(organization, amount),
    }
    db.session.flush()
    return StartedIntent(payment=payment, intent=intent)


def payment_for_intent(intent_id: str) -> Payment | None:
    """Our payment for a PaymentIntent id, in the organization in scope (never another's)."""
    return db.session.execute(
        sa.select(Payment).where(
            Payment.provider_reference == intent_id, Payment.method.in_(STRIPE_METHODS)
        )
    ).scalar_one_or_none()


def _mismatch(organization: Organization, payment: Payment, intent: PaymentIntent) -> str:
    """Why the intent cannot be this payment, or "" when everything agrees."""
    account = connected_account(organization)
    if account is None or intent.account_id != account.account_id:
        return f"intent on account {intent.account_id}, not the organization's"
    metadata = intent.metadata
    if metadata.get(META_ORGANIZATION) != str(organization.id) or metadata.get(META_ORDER) != str(
        payment.order_id
    ):
        return "intent made for another order"
    if intent.currency.upper() != payment.currency.upper():
        return f"currency {intent.currency.upper()} instead of {payment.currency.upper()}"
    if intent.status == "succeeded" and intent.amount_received != payment.amount:
        return f"amount received {intent.amount_received} instead of {payment.amount}"
    if intent.amount != payment.amount:
        return f"amount {intent.amount} instead of {payment.amount}"
    return ""


def flag_for_review(payment: Payment, reason: str) -> None:
    if payment.review_reason == reason:
        return
    before = {"review_reason": payment.review_reason}
    payment.review_reason = reason[:2000]
    db.session.flush()
    logger.warning("payment %s flagged for review: %s", payment.id, reason)
    audit.record(
        organization_id=payment.organization_id,
        actor=STRIPE_ACTOR,
        action="payment.flagged",
        target=payment,
        before=before,
        after={"review_reason": payment.review_reason, "order_id": payment.order_id},
    )


def failure_text(intent: PaymentIntent) -> str:
    error = intent.last_payment_error
    if error is None:
        return ""
    return error.message or error.decline_code or error.code or ""


def sync_payment(*, organization: Organization, payment: Payment, intent: PaymentIntent) -> bool:
    """Bring ``payment`` up to what Stripe says of its intent; True when its state moved."""
    problem = _mismatch(organization, payment, intent)
    if problem:
        flag_for_review(payment, problem)
        return False
    if intent.status == "succeeded" and payment.state in (MoneyState.FAILED, MoneyState.CANCELLED):
        # Paid on an intent whose attempt we had closed (a card form left open after a
        # decline): the money is at Stripe, so a person decides rather than losing it silently.
        flag_for_review(payment, f"intent succeeded after the attempt was {payment.state.value}")
        return False
    if intent.status == "succeeded":
        return payments.advance(payment=payment, actor=STRIPE_ACTOR, state=MoneyState.SUCCEEDED)
    if intent.status == "canceled":
        return payments.advance(
            payment=payment,
            actor=STRIPE_ACTOR,
            state=MoneyState.CANCELLED,
            failure_message=failure_text(intent),
        )
    if intent.status == "requires_payment_method" and intent.last_payment_error is not None:
        # A decline: this attempt is over; paying again starts a new attempt (a new intent).
        return payments.advance(
            payment=payment,
            actor=STRIPE_ACTOR,
            state=MoneyState.FAILED,
            failure_message=failure_text(intent),
        )
    return False  # processing, requires_action, requires_capture: still under way


def sync_intent(
    *, organization: Organization, gateway: StripeGateway, account_id: str, intent_id: str
) -> Payment | None:
    """Re-fetch an intent on ``account_id`` and sync our payment for it, if we have one."""
    payment = payment_for_intent(intent_id)
    if payment is None:
        return None
    intent = gateway.retrieve_payment_intent(account_id, intent_id)
    sync_payment(organization=organization, payment=payment, intent=intent)
    return payment


@handles(
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
    "payment_intent.partially_funded",
)
def on_payment_intent(organization: Organization, event: Event, gateway: StripeGateway) -> None:
    intent_id = event.object_id
    if not intent_id or not event.account:
        return
    sync_intent(
        organization=organization, gateway=gateway, account_id=event.account, intent_id=intent_id
    )
