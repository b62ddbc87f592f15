"""Card payments online: a PaymentIntent per attempt, paid in the customer's browser.

Choosing ``card`` at step 3 places the order (awaiting payment) and starts attempt 1: a
``processing`` payment for the order's balance and its PaymentIntent on the organization's
connected account (:func:`comptoir.billing.stripe_payments.start_intent`, idempotency key
``order-<id>-attempt-<n>``). The answer's ``next_action`` gives the browser what Stripe.js needs
(the intent's client secret, the platform's publishable key and the connected account) and, with
simulated payments, the fake's test card form.

The browser never says whether it paid: the order becomes paid only when Stripe's
``payment_intent.succeeded`` reaches the webhook (or the reconciliation sweep finds it). What the
pages may do is ask Stripe again (:func:`note_intent_outcome`) to show a decline at once.

A declined attempt is over; paying again is a new attempt with a new intent. Starting one
cancels the previous intent at Stripe first, so an abandoned card form cannot take money for an
attempt we already closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from comptoir.billing import stripe_payments
from comptoir.billing.models import Method, MoneyState, Order, OrderState, Payment
from comptoir.billing.orders import figures, lock_order, state_label
from comptoir.billing.payment_methods import CheckoutOutcome, CheckoutPayment
from comptoir.billing.stripe_errors import (
    CardDeclinedError,
    InvalidRequestError,
    StripeGatewayError,
    StripeNotFoundError,
)
from comptoir.billing.stripe_gateway import PaymentIntent, StripeGateway, current_gateway
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.errors import ConflictError, DomainError, ValidationError
from comptoir.tenants.models import Organization
from comptoir.tenants.permissions import Permission, ensure

logger = logging.getLogger(__name__)

CARD_PAYMENT_METHOD_TYPES = ("card",)
NEXT_ACTION_TYPE = "stripe_payment"
# Stripe statuses in which the customer may still enter or confirm a card.
OPEN_STATUSES = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})
# Stripe has the money or is taking it: nothing must start another attempt.
UNDER_WAY_STATUSES = frozenset({"processing", "requires_capture", "succeeded"})


class PaymentProviderError(DomainError):
    """Stripe could not be reached or refused for a reason of its own: nothing was placed."""

    status = 502
    code = "payment_failed"


# --------------------------------------------------------------------------- starting attempts


def _provider_refusal(error: StripeGatewayError, field: str) -> DomainError:
    """A gateway error as a refusal people understand, beside the field they chose."""
    if isinstance(error, StripeNotFoundError):
        message = _("Card payments are not available: Stripe is not connected yet.")
        return ValidationError(message, fields={field: [message]})
    if isinstance(error, InvalidRequestError):
        message = error.user_message
        return ValidationError(message, fields={field: [message]})
    logger.warning("card payment could not start: %s", error)
    return PaymentProviderError(
        _(
            "Card payments are unavailable right now. Try again in a moment or choose another way "
            "to pay."
        )
    )


def _chargeable(organization: Organization, field: str) -> None:
    """Refuse cleanly, beside the method chosen, when the organization cannot take cards."""
    try:
        stripe_payments.chargeable_account(organization)
    except ConflictError as refusal:
        raise ValidationError(refusal.message, fields={field: [refusal.message]}) from refusal


def _refuse_unpayable(order: Order) -> None:
    if order.state is OrderState.CANCELLED:
        raise ConflictError(_("This order is cancelled: it cannot be paid."))
    if order.state is not OrderState.AWAITING_PAYMENT:
        raise ConflictError(
            _(
                "This order is %(state)s: nothing is left to pay.",
                state=state_label(order.state),
            )
        )


def latest_card_payment(order: Order) -> Payment | None:
    """The last card attempt on ``order`` (what the customer is paying, or just failed)."""
    return db.session.execute(
        sa.select(Payment)
        .where(Payment.order_id == order.id, Payment.method == Method.CARD)
        .order_by(Payment.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _account_of(payment: Payment, organization: Organization) -> str | None:
    account = payment.details.get("account")
    if account:
        return str(account)
    connected = stripe_payments.connected_account(organization)
    return connected.account_id if connected is not None else None


def note_intent_outcome(
    *, organization: Organization, payment: Payment, gateway: StripeGateway
) -> PaymentIntent | None:
    """Ask Stripe (the truth, never the browser) how the payment's intent stands, and record a
    decline or a cancellation at once so the customer can try again without waiting.

    A success is left to the webhook or the reconciliation sweep: the order becomes paid only
    from them, whatever the browser's return looks like.
    """
    account_id = _account_of(payment, organization)
    if not account_id or not payment.provider_reference:
        return None
    intent = gateway.retrieve_payment_intent(account_id, payment.provider_reference)
    would_pay = intent.status == "succeeded" and payment.state is MoneyState.PROCESSING
    if not would_pay:
        stripe_payments.sync_payment(organization=organization, payment=payment, intent=intent)
    if intent.last_payment_error is not None:
        error = intent.last_payment_error
        code = error.decline_code or error.code or ""
        if code and payment.details.get("failure_code") != code:
            payment.details = {**payment.details, "failure_code": code}
            db.session.flush()
    return intent


def _close_previous_attempt(
    *, organization: Organization, payment: Payment, gateway: StripeGateway
) -> None:
    """Cancel the previous attempt's intent at Stripe before a new one, unless Stripe already
    has (or is taking) the money, which refuses the new attempt."""
    if payment.state not in (MoneyState.PROCESSING, MoneyState.FAILED):
        return
    account_id = _account_of(payment, organization)
    if not account_id or not payment.provider_reference:
        return
    intent = note_intent_outcome(organization=organization, payment=payment, gateway=gateway)
    if payment.review_reason:
        raise ConflictError(
            _("A card payment of this order is being checked by the shop: it will contact you.")
        )
    if intent is None:
        return
    if intent.status in UNDER_WAY_STATUSES:
        raise ConflictError(
            _("A card payment of this order is already under way. Wait for its confirmation.")
        )
    if intent.status in OPEN_STATUSES:
        try:
            intent = gateway.cancel_payment_intent(
                account_id,
                intent.id,
                cancellation_reason="abandoned",
                idempotency_key=f"cancel-{intent.id}",
            )
        except InvalidRequestError:
            # The customer finished paying it just now: Stripe's word decides.
            intent = gateway.retrieve_payment_intent(account_id, intent.id)
            if intent.status in UNDER_WAY_STATUSES:
                raise ConflictError(
                    _(
                        "A card payment of this order is already under way. Wait for its "
                        "confirmation."
                    )
                ) from None
    if payment.state is MoneyState.PROCESSING:
        stripe_payments.sync_payment(organization=organization, payment=payment, intent=intent)


def start_card_attempt(
    *,
    organization: Organization,
    order: Order,
    actor: Actor,
    gateway: StripeGateway,
    amount: int | None = None,
    field: str = "method",
) -> stripe_payments.StartedIntent:
    """A new card attempt on ``order``: the previous one closed, a new intent for ``amount``
    (default: what is left to pay once other payments in progress are counted).

    A paid or cancelled order is refused (``ConflictError``), so is an order whose card payment
    Stripe is already taking.
    """
    _chargeable(organization, field)
    order = lock_order(order.id)
    _refuse_unpayable(order)
    try:
        previous = latest_card_payment(order)
        if previous is not None:
            _close_previous_attempt(organization=organization, payment=previous, gateway=gateway)
        current = figures(order)
        remaining = current.balance - current.pending_payments
        if remaining <= 0:
            raise ConflictError(_("Nothing is left to pay on this order."))
        return stripe_payments.start_intent(
            organization=organization,
            order=order,
            actor=actor,
            gateway=gateway,
            method=Method.CARD,
            amount=remaining if amount is None else amount,
            payment_method_types=CARD_PAYMENT_METHOD_TYPES,
        )
    except StripeGatewayError as error:
        raise _provider_refusal(error, field) from error


def next_action(
    gateway: StripeGateway, started: stripe_payments.StartedIntent, *, return_url: str = ""
) -> dict[str, Any]:
    """What a payer's browser needs to pay the intent: Stripe.js's Payment Element on the
    connected account (a direct charge), or with simulated payments the fake's test card form."""
    intent = started.intent
    return {
        "type": NEXT_ACTION_TYPE,
        "payment_id": started.payment.id,
        "payment_intent": intent.id,
        "client_secret": intent.client_secret,
        "publishable_key": gateway.publishable_key,
        "stripe_account": intent.account_id,
        "amount": intent.amount,
        "currency": intent.currency,
        "simulated": gateway.simulated,
        "hosted_url": gateway.hosted_test_payment_url(intent, return_url=return_url)
        if gateway.simulated
        else None,
    }


def _organization_of(order: Order) -> Organization:
    organization = db.session.get(Organization, order.organization_id)
    assert organization is not None
    return organization


def card_at_checkout(order: Order, actor: Actor, request: CheckoutPayment) -> CheckoutOutcome:
    """Step 3 with ``card``: attempt 1 for the new order's balance, and its next action."""
    organization = _organization_of(order)
    _chargeable(organization, "payment_method")
    if figures(order).balance <= 0:
        return CheckoutOutcome()  # nothing to pay: the order settles at once
    gateway = current_gateway()
    started = start_card_attempt(
        organization=organization,
        order=order,
        actor=actor,
        gateway=gateway,
        field="payment_method",
    )
    return CheckoutOutcome(payment=started.payment, next_action=next_action(gateway, started))


def card_at_payment(
    order: Order, actor: Actor, amount: int | None, request: CheckoutPayment
) -> CheckoutOutcome:
    """Staff start another card attempt on an order (``amount`` None: what is left to pay)."""
    ensure(actor.role, Permission.SELL)
    gateway = current_gateway()
    started = start_card_attempt(
        organization=_organization_of(order),
        order=order,
        actor=actor,
        gateway=gateway,
        amount=amount,
    )
    return CheckoutOutcome(payment=started.payment, next_action=next_action(gateway, started))


# --------------------------------------------------------------------------- where it stands


class Phase:
    NONE = "none"  # no card attempt to follow
    CONFIRMING = "confirming"  # an attempt is open: the customer pays, or Stripe confirms
    PAID = "paid"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REVIEW = "review"  # Stripe's figures differ from ours: a person looks first


@dataclass(frozen=True)
class CardStatus:
    phase: str
    message: str
    payment: Payment | None
    order_state: str
    balance: int

    @property
    def can_retry(self) -> bool:
        return self.phase in (Phase.FAILED, Phase.CANCELLED) and self.balance > 0

    def as_json(self) -> dict[str, Any]:
        payment = self.payment
        return {
            "phase": self.phase,
            "message": self.message,
            "order": {"state": self.order_state, "balance": self.balance},
            "payment": None
            if payment is None
            else {
                "id": payment.id,
                "state": payment.state.value,
                "amount": payment.amount,
                "failure_message": failure_message(payment) if payment.failure_message else "",
                "under_review": bool(payment.review_reason),
            },
            "can_retry": self.can_retry,
        }


def failure_message(payment: Payment) -> str:
    """Why the attempt failed, in the reader's language when Stripe's reason is a known one."""
    code = str(payment.details.get("failure_code") or "")
    if code:
        return CardDeclinedError(payment.failure_message, code=code, decline_code=code).user_message
    reason = payment.failure_message
    if not reason:
        return _("Your card payment did not go through.")
    # Stripe's common decline messages are the catalog's own English texts (stripe_errors).
    translated = _(reason)
    if translated != reason:
        return translated
    return _("Your card payment did not go through: %(reason)s", reason=reason)


def _phase_of(order: Order, payment: Payment | None) -> tuple[str, str]:
    if payment is None:
        return Phase.NONE, ""
    if order.state is not OrderState.AWAITING_PAYMENT:
        if payment.state is MoneyState.SUCCEEDED:
            return Phase.PAID, _("Your payment is received. Your order is paid.")
        return Phase.NONE, ""
    if payment.review_reason:
        return Phase.REVIEW, _("The shop is checking this payment before confirming your order.")
    if payment.state is MoneyState.FAILED:
        return Phase.FAILED, failure_message(payment)
    open_states = {
        MoneyState.PROCESSING: (Phase.CONFIRMING, _("Confirming your payment…")),
        MoneyState.CANCELLED: (Phase.CANCELLED, _("The card payment was cancelled.")),
    }
    return open_states.get(payment.state, (Phase.NONE, ""))


def card_status(order: Order) -> CardStatus:
    """Where the order's card payment stands, for the confirmation page and its polling."""
    payment = latest_card_payment(order)
    phase, message = _phase_of(order, payment)
    return CardStatus(phase, message, payment, order.state.value, figures(order).balance)
