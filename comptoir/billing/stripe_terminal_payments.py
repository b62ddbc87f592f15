"""Payments on Stripe Terminal readers: card or Interac debit, driven from the server.

A PaymentIntent accepting ``card_present`` and ``interac_present`` is created for the order
(:func:`stripe_payments.start_intent`) and handed to the reader; the customer taps or inserts the
card. The result reaches us as a ``terminal.reader.action_*`` event or, when webhooks are late or
lost, through the reader page's polling, which asks Stripe itself (:func:`poll_payment`). Either
way the payment moves only through :func:`stripe_payments.sync_payment`, from the intent as Stripe
has it now. Interac debit is captured at once; cards are captured automatically too.

When a reader cannot take a payment:

- what can be known before any Stripe object exists (an unknown reader, a reader Stripe reports
  busy or offline right now, Stripe not connected) refuses at once and nothing is created: a
  checkout is not placed, the cart stays as it was;
- when the reader refuses once the intent exists (another cashier was quicker), the attempt is
  closed — the intent cancelled at Stripe, the payment ``cancelled`` with the reader's message —
  and the order stays awaiting payment; staff choose another reader or another method on the
  reader page. Keeping the order is deliberate: its number and invoice are already given, and the
  closed attempt stays in its history instead of vanishing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import has_request_context, url_for
from flask_babel import gettext as _

from comptoir.billing import stripe_payments
from comptoir.billing.models import Method, MoneyState, Order, Payment
from comptoir.billing.orders import figures
from comptoir.billing.payment_methods import CheckoutOutcome, CheckoutPayment
from comptoir.billing.stripe_events import handles
from comptoir.billing.stripe_gateway import (
    Event,
    InvalidRequestError,
    Reader,
    StripeGateway,
    StripeGatewayError,
    StripeNotFoundError,
    StripeUnavailableError,
    current_gateway,
)
from comptoir.billing.stripe_models import StripeAccount, TerminalReader
from comptoir.billing.stripe_terminal import (
    IN_PROGRESS,
    ReaderNotReadyError,
    apply_reader,
    chosen_reader,
    close_attempt,
    is_busy,
    lock_reader,
    reader_query,
    reader_taking,
    refresh_reader,
    refusal,
    settle,
)
from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.errors import ConflictError, NotFoundError, ValidationError
from comptoir.tenants.models import Organization
from comptoir.tenants.permissions import Permission, ensure

logger = logging.getLogger(__name__)

PAYMENT_METHOD_TYPES = ("card_present", "interac_present")
# What the simulated reader's test buttons present: (payment method type, card number).
SIMULATED_CARDS: dict[str, tuple[str, str | None]] = {
    "visa": ("card_present", "4242424242424242"),
    "interac": ("interac_present", None),
    "declined": ("card_present", "4000000000000002"),
}


@dataclass(frozen=True)
class ReaderPayment:
    """A payment handed to a reader. ``refused`` is the reader's refusal once the intent
    existed: the attempt is closed (the payment cancelled) and the order still awaits payment."""

    payment: Payment
    reader: TerminalReader
    refused: str = ""


def _unavailable(message: str) -> ReaderNotReadyError:
    return ReaderNotReadyError(message, fields={"reader_id": [message]})


def _busy(reader: TerminalReader) -> ReaderNotReadyError:
    return _unavailable(
        _(
            "The reader “%(label)s” is busy with another payment. Wait for it to finish, cancel "
            "it, or choose another reader.",
            label=reader.label,
        )
    )


def _offline(reader: TerminalReader) -> ReaderNotReadyError:
    return _unavailable(
        _(
            "The reader “%(label)s” is offline. Check that it is switched on and connected to "
            "the internet, or choose another reader.",
            label=reader.label,
        )
    )


def payment_method_types(currency: str) -> tuple[str, ...]:
    # Interac debit exists in Canadian dollars only.
    return PAYMENT_METHOD_TYPES if currency.upper() == "CAD" else ("card_present",)


def _check_ready(
    organization: Organization, gateway: StripeGateway, account: StripeAccount, row: TerminalReader
) -> None:
    """Refuse a reader that Stripe reports busy or offline right now; nothing is created yet."""
    try:
        fresh = gateway.retrieve_reader(account.account_id, row.reader_id)
    except StripeNotFoundError:
        raise _unavailable(
            _(
                "The reader “%(label)s” is no longer registered at Stripe: remove it and "
                "register it again.",
                label=row.label,
            )
        ) from None
    except StripeUnavailableError:
        # Stripe is out of reach: go by what we know; the reader's own answer comes next.
        if is_busy(row):
            raise _busy(row) from None
        return
    except StripeGatewayError as error:
        raise refusal(error, "reader_id") from error
    apply_reader(row, fresh)
    try:
        settle(organization, gateway, account.account_id, row, fresh)
    except StripeGatewayError:
        logger.warning("reader %s: its last payment could not be settled now", row.reader_id)
    if fresh.status != "online":
        raise _offline(row)
    if fresh.busy:
        raise _busy(row)


def start_reader_payment(
    *,
    organization: Organization,
    actor: Actor,
    gateway: StripeGateway,
    order: Order,
    reader: TerminalReader,
    amount: int | None = None,
) -> ReaderPayment:
    """Hand a payment of ``order`` (``amount``, default what is left to pay) to ``reader``.

    Raises ``ReaderNotReadyError`` (busy, offline), ``ConflictError`` (Stripe not connected, the
    order paid or cancelled, a payment already in progress) or ``ValidationError`` (the amount)
    before anything is created. See the module's docstring for a refusal after that.
    """
    ensure(actor.role, Permission.SELL)
    account = stripe_payments.chargeable_account(organization)
    row = lock_reader(reader)
    _check_ready(organization, gateway, account, row)
    if amount is None:
        current = figures(order)
        amount = current.balance - current.pending_payments
        if amount <= 0 < current.pending_payments:
            raise ConflictError(_("A payment of this order is already in progress."))
    try:
        started = stripe_payments.start_intent(
            organization=organization,
            order=order,
            actor=actor,
            gateway=gateway,
            method=Method.TERMINAL,
            amount=amount,
            payment_method_types=payment_method_types(order.currency),
            capture_method="automatic",
        )
    except StripeGatewayError as error:
        raise refusal(error) from error
    payment = started.payment
    payment.details = {**payment.details, "reader_id": row.reader_id, "reader_label": row.label}
    db.session.flush()
    try:
        fresh = gateway.process_payment_intent_on_reader(
            account.account_id,
            row.reader_id,
            started.intent.id,
            idempotency_key=f"payment-{payment.id}-reader",
        )
    except StripeUnavailableError:
        # Whether the reader got it is unknown: watch it as if it had; a refresh settles it.
        logger.warning("reader %s: no answer to payment %s", row.reader_id, payment.id)
        row.payment_id = payment.id
        row.action = {
            "type": "process_payment_intent",
            "status": IN_PROGRESS,
            "payment_intent": started.intent.id,
            "checked_at": 0,
        }
        db.session.flush()
        return ReaderPayment(payment=payment, reader=row)
    except StripeGatewayError as error:
        message = error.user_message
        close_attempt(organization, gateway, account.account_id, payment, message)
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="terminal_reader.refused",
            target=row,
            after={"payment_id": payment.id, "order_id": order.id, "reason": error.message},
        )
        return ReaderPayment(payment=payment, reader=row, refused=message)
    apply_reader(row, fresh)
    row.payment_id = payment.id
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="terminal_reader.payment_sent",
        target=row,
        after={
            "payment_id": payment.id,
            "order_id": order.id,
            "order_number": order.number,
            "amount": amount,
        },
    )
    return ReaderPayment(payment=payment, reader=row)


def poll_payment(
    *, organization: Organization, gateway: StripeGateway, payment: Payment, after: float
) -> None:
    """The polling fallback: a payment still processing and no news from Stripe for ``after``
    seconds — ask Stripe directly (safe: Stripe is the truth, states only move forward)."""
    if payment.state is not MoneyState.PROCESSING or payment.method is not Method.TERMINAL:
        return
    row = reader_taking(payment)
    if row is not None:
        checked = float((row.action or {}).get("checked_at") or 0)
        if time.time() - checked >= after:
            refresh_reader(organization=organization, gateway=gateway, reader=row)
        return
    # The reader is free but the intent was not final yet (a card still processing).
    account_id = payment.details.get("account")
    if account_id and payment.provider_reference:
        stripe_payments.sync_intent(
            organization=organization,
            gateway=gateway,
            account_id=account_id,
            intent_id=payment.provider_reference,
        )


def cancel_reader_payment(
    *, organization: Organization, actor: Actor, gateway: StripeGateway, payment: Payment
) -> Payment:
    """Stop a payment on a reader: the reader's action and the intent are cancelled.

    When the card went through just before, the payment is received instead (Stripe decides).
    """
    ensure(actor.role, Permission.SELL)
    if payment.method is not Method.TERMINAL:
        raise NotFoundError(_("Payment not found."))
    if payment.state is not MoneyState.PROCESSING:
        return payment
    account = stripe_payments.connected_account(organization)
    account_id = payment.details.get("account") or (account.account_id if account else "")
    if not account_id:
        raise ConflictError(_("Stripe is not connected."))
    row = reader_taking(payment)
    if row is not None:
        row = lock_reader(row)
        try:
            gateway.cancel_reader_action(account_id, row.reader_id)
        except StripeUnavailableError as error:
            raise refusal(error) from error
        except StripeGatewayError:
            pass  # no action in progress any more (it ended meanwhile), or the reader is gone
    try:
        intent = gateway.cancel_payment_intent(
            account_id,
            payment.provider_reference,
            cancellation_reason="requested_by_customer",
            idempotency_key=f"payment-{payment.id}-cancel",
        )
    except StripeUnavailableError as error:
        raise refusal(error) from error
    except InvalidRequestError:
        intent = gateway.retrieve_payment_intent(account_id, payment.provider_reference)
    if intent.status == "canceled":
        payment.failure_message = _("Cancelled by %(name)s.", name=actor.label)[:2000]
        db.session.flush()
    stripe_payments.sync_payment(organization=organization, payment=payment, intent=intent)
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="terminal_reader.payment_cancelled",
        target=payment,
        after={"order_id": payment.order_id, "intent_status": intent.status},
    )
    if row is not None:
        refresh_reader(organization=organization, gateway=gateway, reader=row)
    return payment


def simulate_card(
    *, organization: Organization, gateway: StripeGateway, payment: Payment, card: str
) -> None:
    """Simulated payments only: play the customer's card on the reader taking ``payment``."""
    if not gateway.simulated:
        raise NotFoundError(_("Test cards exist only with simulated payments."))
    if card not in SIMULATED_CARDS:
        message = _("Choose one of the test cards.")
        raise ValidationError(message, fields={"card": [message]})
    row = reader_taking(payment)
    account_id = payment.details.get("account")
    if row is None or not account_id or payment.state is not MoneyState.PROCESSING:
        raise ConflictError(_("No reader is waiting for a card for this payment."))
    method_type, number = SIMULATED_CARDS[card]
    try:
        gateway.simulate_present_payment_method(
            account_id, row.reader_id, type=method_type, card_number=number
        )
    except StripeGatewayError as error:
        raise refusal(error) from error


# --------------------------------------------------------------------------- live state


@dataclass(frozen=True)
class Progress:
    """Where a reader payment stands, for people: waiting, processing, approved, declined,
    cancelled or review."""

    state: str
    message: str
    final: bool


def _final_progress(payment: Payment) -> Progress | None:
    if payment.review_reason:
        message = _(
            "Stripe's figures differ from the order's: the payment is held until someone checks it."
        )
        return Progress("review", message, True)
    if payment.state is MoneyState.SUCCEEDED:
        return Progress("approved", _("Approved: the payment is received."), True)
    if payment.state is MoneyState.FAILED:
        reason = payment.failure_message or _("The card was declined.")
        return Progress("declined", _("Declined: %(reason)s", reason=reason), True)
    if payment.state is MoneyState.CANCELLED:
        message = payment.failure_message or _("The payment was cancelled.")
        return Progress("cancelled", message, True)
    return None


def progress(payment: Payment) -> Progress:
    final = _final_progress(payment)
    if final is not None:
        return final
    row = reader_taking(payment)
    if row is None or not is_busy(row):
        return Progress("processing", _("Processing the payment…"), False)
    if (row.action or {}).get("intent_status") in ("processing", "requires_capture"):
        return Progress("processing", _("Processing the card…"), False)
    message = _(
        "Waiting for the card on “%(label)s”: the customer taps, inserts or swipes it.",
        label=payment.details.get("reader_label") or row.label,
    )
    return Progress("waiting", message, False)


def latest_payment(order: Order) -> Payment | None:
    """The order's most recent reader payment."""
    return db.session.execute(
        sa.select(Payment)
        .where(Payment.order_id == order.id, Payment.method == Method.TERMINAL)
        .order_by(Payment.id.desc())
        .limit(1)
    ).scalar_one_or_none()


# --------------------------------------------------------------------------- events


@handles(
    "terminal.reader.action_succeeded",
    "terminal.reader.action_failed",
    "terminal.reader.action_updated",
)
def on_reader_action(organization: Organization, event: Event, gateway: StripeGateway) -> None:
    """A reader's action moved: re-read the reader and its payment from Stripe."""
    if not event.object_id or not event.account:
        return
    query = reader_query(event.object_id)
    row = db.session.execute(query).scalar_one_or_none() if query is not None else None
    if row is not None:
        refresh_reader(organization=organization, gateway=gateway, reader=row)
    snapshot = Reader.from_stripe(event.data_object, event.account)
    action = snapshot.action
    if action is None or action.type != "process_payment_intent" or not action.payment_intent:
        return
    # The action's own payment, even when the reader moved on or was removed meanwhile.
    payment = stripe_payments.payment_for_intent(action.payment_intent)
    if payment is not None and payment.state is MoneyState.PROCESSING:
        stripe_payments.sync_intent(
            organization=organization,
            gateway=gateway,
            account_id=event.account,
            intent_id=action.payment_intent,
        )


# --------------------------------------------------------------------------- checkout


def next_action(order: Order, started: ReaderPayment) -> dict[str, Any]:
    """What the page (or API client) does after handing a payment to a reader."""
    answer: dict[str, Any] = {
        "type": "terminal_reader",
        "payment_id": started.payment.id,
        "reader_id": started.reader.id,
        "reader_label": started.reader.label,
        "state": "refused" if started.refused else "waiting",
        "message": started.refused,
    }
    if has_request_context():
        answer["url"] = url_for("billing_terminal.reader_page", order_id=order.id)
        answer["status_url"] = url_for("billing_terminal.reader_status", order_id=order.id)
    return answer


def at_checkout(order: Order, actor: Actor, request: CheckoutPayment) -> CheckoutOutcome:
    """Step 3 with "Card or Interac debit on a reader": the order's total goes to the reader."""
    reader = chosen_reader(request.reader_id)
    if order.total == 0:
        return CheckoutOutcome()
    organization = db.session.get(Organization, order.organization_id)
    assert organization is not None
    started = start_reader_payment(
        organization=organization,
        actor=actor,
        gateway=current_gateway(),
        order=order,
        reader=reader,
        amount=order.total,
    )
    return CheckoutOutcome(payment=started.payment, next_action=next_action(order, started))


def at_payment(
    order: Order, actor: Actor, amount: int | None, request: CheckoutPayment
) -> CheckoutOutcome:
    """Staff take (part of) an existing order's balance on a reader."""
    reader = chosen_reader(request.reader_id)
    organization = db.session.get(Organization, order.organization_id)
    assert organization is not None
    started = start_reader_payment(
        organization=organization,
        actor=actor,
        gateway=current_gateway(),
        order=order,
        reader=reader,
        amount=amount,
    )
    return CheckoutOutcome(payment=started.payment, next_action=next_action(order, started))
