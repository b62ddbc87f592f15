"""Payments: taken at checkout by immediate methods, recorded later by staff, moved by providers.

Every function locks the order row before reading its figures, so two cashiers taking the last
payment of an order at once cannot both be accepted. Amounts come from the server (the balance)
or are checked against it; the client never decides what is owed or what change is due.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _

from comptoir.billing import invoices, payment_methods
from comptoir.billing.models import Method, MoneyState, Order, OrderState, Payment
from comptoir.billing.orders import figures, lock_order, settle, state_label
from comptoir.billing.payment_methods import Audience, CheckoutOutcome, CheckoutPayment
from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import ConflictError, ValidationError
from comptoir.tenants.models import Organization
from comptoir.tenants.permissions import Permission, ensure

MAX_REFERENCE = 200
MAX_CASH = 100_000_000  # a million dollars in one hand is a typing mistake
# Money rows move forward only: state -> states it may go to.
PAYMENT_TRANSITIONS: dict[MoneyState, frozenset[MoneyState]] = {
    MoneyState.PENDING: frozenset(
        {MoneyState.PROCESSING, MoneyState.SUCCEEDED, MoneyState.FAILED, MoneyState.CANCELLED}
    ),
    MoneyState.PROCESSING: frozenset(
        {MoneyState.SUCCEEDED, MoneyState.FAILED, MoneyState.CANCELLED}
    ),
    MoneyState.SUCCEEDED: frozenset(),
    MoneyState.FAILED: frozenset(),
    MoneyState.CANCELLED: frozenset(),
}
PAYMENT_FIELDS = ("method", "state", "amount", "reference", "cash_tendered", "change_due")


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(message, fields={field: [message]})


def money_amount(value: Any, field: str, *, allow_zero: bool = False) -> int:
    """An amount in minor units sent by a person: a whole, positive number of cents."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(field, _("Enter the amount as a whole number of cents."))
    if value < 0:
        raise _invalid(field, _("An amount cannot be negative."))
    if value == 0 and not allow_zero:
        raise _invalid(field, _("Enter an amount greater than zero."))
    if value > MAX_CASH:
        raise _invalid(field, _("This amount is too large."))
    return value


def _reference(value: Any, *, required: bool) -> str:
    reference = str(value or "").strip()
    if required and not reference:
        raise _invalid("reference", _("Enter a reference (cheque number, transfer reference)."))
    if len(reference) > MAX_REFERENCE:
        raise _invalid("reference", _("Use at most %(count)d characters.", count=MAX_REFERENCE))
    return reference


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


def _new_payment(
    order: Order,
    actor: Actor,
    *,
    method: str,
    amount: int,
    reference: str = "",
    cash_tendered: int | None = None,
    received_at: datetime | None = None,
    state: MoneyState = MoneyState.SUCCEEDED,
) -> Payment:
    payment = Payment(
        organization_id=order.organization_id,
        order_id=order.id,
        method=Method(method),
        state=state,
        amount=amount,
        currency=order.currency,
        reference=reference,
        cash_tendered=cash_tendered,
        change_due=(cash_tendered - amount) if cash_tendered is not None else 0,
        received_at=(received_at or utcnow()) if state is MoneyState.SUCCEEDED else None,
        recorded_by_label=actor.label,
        recorded_by_user_id=actor.user_id,
    )
    db.session.add(payment)
    db.session.flush()
    audit.record(
        organization_id=order.organization_id,
        actor=actor,
        action="payment.recorded",
        target=payment,
        after={
            "order_id": order.id,
            "order_number": order.number,
            **audit.snapshot(payment, PAYMENT_FIELDS),
            "received_at": payment.received_at,
        },
    )
    invoices.refresh_invoice(order=order)
    return payment


# --------------------------------------------------------------------------- at checkout


def cash_at_checkout(order: Order, actor: Actor, request: CheckoutPayment) -> CheckoutOutcome:
    """Cash at the counter: what was handed over, the part applied, the change given back.

    Less than the total is a partial payment (the rest by another method: split tender).
    """
    if request.cash_tendered is None:
        raise _invalid("cash_tendered", _("Enter the cash received."))
    tendered = money_amount(request.cash_tendered, "cash_tendered", allow_zero=True)
    if order.total == 0:
        return CheckoutOutcome()
    if tendered == 0:
        raise _invalid("cash_tendered", _("Enter the cash received."))
    amount = min(tendered, order.total)
    payment = _new_payment(order, actor, method="cash", amount=amount, cash_tendered=tendered)
    return CheckoutOutcome(payment=payment)


def other_at_checkout(order: Order, actor: Actor, request: CheckoutPayment) -> CheckoutOutcome:
    """A cheque or a transfer received now, with its reference."""
    reference = _reference(request.reference, required=True)
    if order.total == 0:
        return CheckoutOutcome()
    payment = _new_payment(order, actor, method="other", amount=order.total, reference=reference)
    return CheckoutOutcome(payment=payment)


# --------------------------------------------------------------------------- staff, later


def record_payment(
    *,
    organization: Organization,
    actor: Actor,
    order: Order,
    method: str,
    amount: Any = None,
    reference: Any = "",
    cash_tendered: Any = None,
    received_at: datetime | None = None,
) -> Payment:
    """Staff take a payment on an order: a later payment, a part of a split tender, or
    "mark received" for an offline or e-Transfer order. ``amount`` None means the balance.
    """
    ensure(actor.role, Permission.SELL)
    registered = payment_methods.get(method)
    if registered is None or not registered.recordable or not registered.allows(Audience.STAFF):
        raise _invalid("method", _("This payment method cannot be recorded here."))
    order = lock_order(order.id)
    _refuse_unpayable(order)
    current = figures(order)
    # A card or reader payment under way may still succeed: counting it keeps the order from
    # being paid twice (cash now, then the card's money when Stripe confirms it).
    payable = current.balance - current.pending_payments
    if payable <= 0 < current.pending_payments:
        raise ConflictError(
            _("A card or reader payment of this order is under way: wait for its result.")
        )
    if amount is None:
        amount = payable
    amount = money_amount(amount, "amount")
    if amount > payable:
        raise _invalid(
            "amount",
            _("This is more than the balance of the order (%(balance)s).", balance=payable),
        )
    tendered = None
    if method == Method.CASH.value:
        tendered = (
            amount
            if cash_tendered is None
            else money_amount(cash_tendered, "cash_tendered", allow_zero=True)
        )
        if tendered < amount:
            raise _invalid("cash_tendered", _("The cash received is less than the amount."))
    elif cash_tendered is not None:
        raise _invalid("cash_tendered", _("Cash received applies to cash payments only."))
    if received_at is not None:
        if received_at.tzinfo is None:
            raise _invalid("received_at", _("Give the date with its time zone."))
        if received_at > utcnow() + timedelta(minutes=5):
            raise _invalid("received_at", _("The date received cannot be in the future."))
    payment = _new_payment(
        order,
        actor,
        method=method,
        amount=amount,
        reference=_reference(reference, required=registered.reference_required),
        cash_tendered=tendered,
        received_at=received_at,
    )
    settle(order, actor=actor)
    return payment


def start_payment(
    *,
    order: Order,
    actor: Actor,
    method: str,
    amount: int,
    provider_reference: str = "",
    details: dict[str, Any] | None = None,
) -> Payment:
    """A payment that completes later (card, reader): a ``processing`` row for the balance part.

    For methods registered by payment providers; the provider moves it with :func:`advance`.
    """
    order = lock_order(order.id)
    _refuse_unpayable(order)
    amount = money_amount(amount, "amount")
    current = figures(order)
    if amount > current.balance - current.pending_payments:
        raise _invalid("amount", _("This is more than the balance of the order."))
    payment = _new_payment(order, actor, method=method, amount=amount, state=MoneyState.PROCESSING)
    payment.provider_reference = provider_reference
    payment.details = details or {}
    db.session.flush()
    return payment


def advance(
    *, payment: Payment, actor: Actor, state: MoneyState, failure_message: str = ""
) -> bool:
    """Move a payment forward (idempotent; a late event never moves it back). True when moved."""
    order = lock_order(payment.order_id)
    db.session.refresh(payment, with_for_update=True)
    if payment.state is state:
        return False
    if state not in PAYMENT_TRANSITIONS[payment.state]:
        return False  # out-of-order news: what we know already is further along
    before = {"state": payment.state.value}
    payment.state = state
    if state is MoneyState.SUCCEEDED:
        payment.received_at = utcnow()
    if failure_message:
        payment.failure_message = failure_message[:2000]
    db.session.flush()
    audit.record(
        organization_id=order.organization_id,
        actor=actor,
        action=f"payment.{state.value}",
        target=payment,
        before=before,
        after={"state": state.value, "order_id": order.id},
    )
    if state is MoneyState.SUCCEEDED:
        settle(order, actor=actor)
        invoices.refresh_invoice(order=order)
    return True
