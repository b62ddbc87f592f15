"""Orders: placing one, its state machine, and the figures derived from its money rows.

States move forward only, through the named functions of this package (``pay`` here, refunds
and cancellations in :mod:`.refunds`), each of which locks the order row, follows
:data:`TRANSITIONS` and is idempotent: asking for the state an order is already in changes
nothing.

Figures are never stored: ``paid`` is the sum of succeeded payments, ``refunded`` of succeeded
refunds, ``credited`` of credit notes; what the customer owes is ``total - credited`` and the
balance is that minus the net paid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from comptoir.billing import numbering, payment_methods
from comptoir.billing.models import (
    CreditNote,
    Method,
    MoneyState,
    Order,
    OrderLine,
    OrderState,
    Payment,
    Refund,
)
from comptoir.billing.payment_methods import Audience, CheckoutOutcome, CheckoutPayment
from comptoir.billing.taxes import AppliedRate, TaxableLine, compute_taxes, rates_by_category
from comptoir.platform import audit, outbox
from comptoir.platform.audit import Actor
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import ConflictError, NotFoundError, ValidationError
from comptoir.platform.security import new_token, token_hash
from comptoir.tenants.models import Customer, Organization

ORDER_PLACED_JOB = "billing.order_placed"
MAX_LINES = 200
MAX_AMOUNT = 10_000_000_000  # a hundred million dollars: past this, a typing mistake

# event -> {from state: to state}. Nothing else moves an order.
TRANSITIONS: dict[str, dict[OrderState, OrderState]] = {
    "pay": {OrderState.AWAITING_PAYMENT: OrderState.PAID},
    "refund_partially": {
        OrderState.PAID: OrderState.PARTIALLY_REFUNDED,
        OrderState.PARTIALLY_REFUNDED: OrderState.PARTIALLY_REFUNDED,
    },
    "refund_fully": {
        OrderState.PAID: OrderState.REFUNDED,
        OrderState.PARTIALLY_REFUNDED: OrderState.REFUNDED,
    },
    "cancel": {
        OrderState.AWAITING_PAYMENT: OrderState.CANCELLED,
        OrderState.PAID: OrderState.CANCELLED,
        OrderState.PARTIALLY_REFUNDED: OrderState.CANCELLED,
    },
}
# Where each event leaves an order: asking for it again there is a no-op, not an error.
ALREADY_DONE: dict[str, frozenset[OrderState]] = {
    "pay": frozenset({OrderState.PAID}),
    "refund_partially": frozenset(),
    "refund_fully": frozenset({OrderState.REFUNDED}),
    "cancel": frozenset({OrderState.CANCELLED}),
}
ACTIVE_REFUND_STATES = (MoneyState.PENDING, MoneyState.PROCESSING, MoneyState.SUCCEEDED)


# --------------------------------------------------------------------------- reading


def get_order(order_id: int) -> Order:
    """An order of the organization in scope (404 for any other)."""
    order = db.session.execute(
        sa.select(Order).where(Order.id == order_id).options(selectinload(Order.lines))
    ).scalar_one_or_none()
    if order is None:
        raise NotFoundError(_("Order not found."))
    return order


def find_order_by_token(token: str | None) -> Order | None:
    """The order a customer's token opens, in the organization in scope."""
    if not token or len(token) > 200:
        return None
    return db.session.execute(
        sa.select(Order).where(Order.token_hash == token_hash(token))
    ).scalar_one_or_none()


def lock_order(order_id: int) -> Order:
    """Lock the order row for the rest of the transaction and read it fresh."""
    order = db.session.execute(
        sa.select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if order is None:
        raise NotFoundError(_("Order not found."))
    return order


@dataclass(frozen=True)
class Figures:
    total: int
    credited: int
    paid: int
    refunded: int
    pending_payments: int
    pending_refunds: int

    @property
    def due(self) -> int:
        """What the customer owes once credit notes are taken off."""
        return self.total - self.credited

    @property
    def net_paid(self) -> int:
        return self.paid - self.refunded

    @property
    def balance(self) -> int:
        return self.due - self.net_paid

    @property
    def refundable(self) -> int:
        """Money that may still be given back (refunds in progress count as given)."""
        return self.paid - self.refunded - self.pending_refunds


def figures(order: Order) -> Figures:
    """The order's money figures, read from its rows now (one query per kind)."""
    payments = db.session.execute(
        sa.select(Payment.state, sa.func.coalesce(sa.func.sum(Payment.amount), 0))
        .where(Payment.order_id == order.id)
        .group_by(Payment.state)
    ).all()
    refunds = db.session.execute(
        sa.select(Refund.state, sa.func.coalesce(sa.func.sum(Refund.amount), 0))
        .where(Refund.order_id == order.id)
        .group_by(Refund.state)
    ).all()
    credited = db.session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(CreditNote.total), 0)).where(
            CreditNote.order_id == order.id
        )
    ).scalar_one()
    paid_by = {MoneyState(state): int(amount) for state, amount in payments}
    refunded_by = {MoneyState(state): int(amount) for state, amount in refunds}
    in_progress = (MoneyState.PENDING, MoneyState.PROCESSING)
    return Figures(
        total=order.total,
        credited=int(credited),
        paid=paid_by.get(MoneyState.SUCCEEDED, 0),
        refunded=refunded_by.get(MoneyState.SUCCEEDED, 0),
        pending_payments=sum(paid_by.get(state, 0) for state in in_progress),
        pending_refunds=sum(refunded_by.get(state, 0) for state in in_progress),
    )


def refunded_quantities(order: Order) -> dict[int, int]:
    """Units of each line already given back (refunds in progress included)."""
    quantities: dict[int, int] = {}
    refunds = db.session.execute(
        sa.select(Refund.lines).where(
            Refund.order_id == order.id, Refund.state.in_(ACTIVE_REFUND_STATES)
        )
    ).scalars()
    for lines in refunds:
        for entry in lines or []:
            line_id = int(entry["line_id"])
            quantities[line_id] = quantities.get(line_id, 0) + int(entry["quantity"])
    # A cancellation credits the remaining units without a refund row when nothing was paid.
    notes = db.session.execute(
        sa.select(CreditNote.lines).where(
            CreditNote.order_id == order.id, CreditNote.refund_id.is_(None)
        )
    ).scalars()
    for lines in notes:
        for entry in lines or []:
            line_id = int(entry["line_id"])
            quantities[line_id] = quantities.get(line_id, 0) + int(entry["quantity"])
    return quantities


# --------------------------------------------------------------------------- state machine


def transition(order: Order, event: str) -> bool:
    """Move ``order`` (locked by the caller) by ``event``; False when it is already there."""
    moves = TRANSITIONS[event]
    if order.state in moves:
        new_state = moves[order.state]
        if new_state is order.state:
            return False
        order.state = new_state
        return True
    if order.state in ALREADY_DONE[event]:
        return False  # asked again for where it already is: nothing to do
    raise ConflictError(
        _(
            "This order is %(state)s: it cannot be changed this way.",
            state=state_label(order.state),
        )
    )


def state_label(state: OrderState | str) -> str:
    labels = {
        OrderState.AWAITING_PAYMENT: _("awaiting payment"),
        OrderState.PAID: _("paid"),
        OrderState.PARTIALLY_REFUNDED: _("partially refunded"),
        OrderState.REFUNDED: _("refunded"),
        OrderState.CANCELLED: _("cancelled"),
    }
    return labels[OrderState(state)]


def money_state_label(state: MoneyState | str) -> str:
    labels = {
        MoneyState.PENDING: _("pending"),
        MoneyState.PROCESSING: _("processing"),
        MoneyState.SUCCEEDED: _("received"),
        MoneyState.FAILED: _("failed"),
        MoneyState.CANCELLED: _("cancelled"),
    }
    return labels[MoneyState(state)]


def figures_of(orders: Sequence[Order]) -> dict[int, Figures]:
    """:func:`figures` of several orders in three grouped queries (lists of orders)."""
    ids = [order.id for order in orders]
    if not ids:
        return {}
    paid: dict[int, dict[MoneyState, int]] = {}
    for order_id, state, amount in db.session.execute(
        sa.select(Payment.order_id, Payment.state, sa.func.sum(Payment.amount))
        .where(Payment.order_id.in_(ids))
        .group_by(Payment.order_id, Payment.state)
    ):
        paid.setdefault(order_id, {})[MoneyState(state)] = int(amount)
    refunded: dict[int, dict[MoneyState, int]] = {}
    for order_id, state, amount in db.session.execute(
        sa.select(Refund.order_id, Refund.state, sa.func.sum(Refund.amount))
        .where(Refund.order_id.in_(ids))
        .group_by(Refund.order_id, Refund.state)
    ):
        refunded.setdefault(order_id, {})[MoneyState(state)] = int(amount)
    credited = dict(
        db.session.execute(
            sa.select(CreditNote.order_id, sa.func.sum(CreditNote.total))
            .where(CreditNote.order_id.in_(ids))
            .group_by(CreditNote.order_id)
        ).all()
    )
    in_progress = (MoneyState.PENDING, MoneyState.PROCESSING)
    result = {}
    for order in orders:
        by_payment = paid.get(order.id, {})
        by_refund = refunded.get(order.id, {})
        result[order.id] = Figures(
            total=order.total,
            credited=int(credited.get(order.id, 0)),
            paid=by_payment.get(MoneyState.SUCCEEDED, 0),
            refunded=by_refund.get(MoneyState.SUCCEEDED, 0),
            pending_payments=sum(by_payment.get(state, 0) for state in in_progress),
            pending_refunds=sum(by_refund.get(state, 0) for state in in_progress),
        )
    return result


def settle(order: Order, *, actor: Actor) -> bool:
    """Mark ``order`` (locked) paid when nothing is owed any more; True when it moved."""
    if order.state is not OrderState.AWAITING_PAYMENT:
        return False
    if figures(order).balance > 0:
        return False
    before = {"state": order.state.value}
    transition(order, "pay")
    order.paid_at = utcnow()
    db.session.flush()
    audit.record(
        organization_id=order.organization_id,
        actor=actor,
        action="order.paid",
        target=order,
        before=before,
        after={"state": order.state.value},
    )
    return True


# --------------------------------------------------------------------------- placing


@dataclass(frozen=True)
class LineInput:
    """One line as the storefront sends it: plain values, prices from the server's catalog."""

    name: str
    quantity: int
    unit_price: int
    tax_category: str
    original_unit_price: int | None = None
    override_reason: str = ""
    sku: str = ""
    article_id: int | None = None
    variant_id: int | None = None


@dataclass(frozen=True)
class OwnerInput:
    """The account owner (the fixed block of every checkout form)."""

    first_name: str
    last_name: str
    email: str
    phone: str = ""


@dataclass(frozen=True)
class FormRecord:
    """The checkout form as answered, kept on the order."""

    form_id: int | None
    version: int | None
    name: str
    fields: list[dict[str, Any]]
    answers: dict[str, Any]
    consents: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class NewOrder:
    lines: Sequence[LineInput]
    locale: str
    method: str
    audience: Audience
    # Methods the shop offers to customers (the storefront's Payment tab).
    offered_methods: Sequence[str] = ()
    payment: CheckoutPayment = field(default_factory=CheckoutPayment)
    customer: Customer | None = None
    owner: OwnerInput | None = None
    counter_sale: bool = False
    form: FormRecord | None = None
    shop_id: int | None = None
    # Shown to the customer with the order, e.g. {"etransfer": {...the shop's settings...}}.
    payment_details: dict[str, Any] = field(default_factory=dict)
    remind_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass
class PlacedOrder:
    order: Order
    # Shown once: the customer's key to the order (X-Order-Token, the confirmation link).
    token: str
    payment: Payment | None = None
    next_action: dict[str, Any] | None = None


def check_method(
    name: str, audience: Audience, offered: Sequence[str]
) -> payment_methods.PaymentMethod:
    """The method ``audience`` asked for, or a clear refusal."""
    method = payment_methods.get(name)
    allowed = {m.name for m in payment_methods.available(audience, offered)}
    if method is None or name not in allowed:
        if method is not None and audience is Audience.CUSTOMER and method.allows(Audience.STAFF):
            message = _("This payment method is not offered here.")
        else:
            message = _("Choose one of the payment methods offered.")
        raise ValidationError(message, fields={"payment_method": [message]})
    return method


def _check_lines(lines: Sequence[LineInput]) -> None:
    if not lines:
        message = _("The cart is empty.")
        raise ValidationError(message, fields={"lines": [message]})
    if len(lines) > MAX_LINES:
        message = _("Too many lines in one order.")
        raise ValidationError(message, fields={"lines": [message]})
    for line in lines:
        for value in (line.quantity, line.unit_price, line.original_unit_price or 0):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                message = "line amounts and quantities are non-negative integers"
                raise TypeError(message)
        if line.quantity < 1 or line.unit_price > MAX_AMOUNT:
            message = _("A line's quantity or price is not valid.")
            raise ValidationError(message, fields={"lines": [message]})


def _check_customer(new: NewOrder) -> None:
    if new.counter_sale:
        if new.customer is not None:
            message = _("A counter sale has no customer.")
            raise ValidationError(message, fields={"customer_id": [message]})
        if new.audience is not Audience.STAFF:
            message = _("Only staff make counter sales.")
            raise ValidationError(message, fields={"counter_sale": [message]})
        return
    if new.owner is None:
        message = _("Enter the account owner's name and e-mail address.")
        raise ValidationError(message, fields={"email": [message]})


def priced_lines(
    lines: Sequence[LineInput], locale: str
) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]], int, int]:
    """Each line's taxes (per line, rounded half up) and the totals per tax, in both languages."""
    categories = {line.tax_category for line in lines}
    rates: dict[str, Sequence[AppliedRate]] = dict(rates_by_category(categories, locale))
    names = {
        other: {
            rate.code: rate.name
            for rate_list in rates_by_category(categories, other).values()
            for rate in rate_list
        }
        for other in ("fr", "en")
    }
    breakdown = compute_taxes(
        [
            TaxableLine(amount=line.unit_price * line.quantity, category=line.tax_category)
            for line in lines
        ],
        rates,
    )
    line_taxes = [
        [{"code": tax.code, "amount": tax.amount} for tax in taxes] for taxes in breakdown.lines
    ]
    totals = [
        {
            "code": tax.code,
            "name": tax.name,
            "name_fr": names["fr"].get(tax.code, tax.name),
            "name_en": names["en"].get(tax.code, tax.name),
            "rate": str(tax.rate),
            "registration_number": tax.registration_number,
            "amount": tax.amount,
        }
        for tax in breakdown.taxes
    ]
    return line_taxes, totals, breakdown.subtotal, breakdown.tax_total


def place_order(*, organization: Organization, actor: Actor, new: NewOrder) -> PlacedOrder:
    """Create the order, its invoice and, for immediate methods, its payment; one transaction.

    The caller has already turned the cart's holds into sales under their row locks; numbers
    (order, invoice) are taken here, last, so the sequence rows are held as briefly as possible.
    """
    method = check_method(new.method, new.audience, new.offered_methods)
    _check_lines(new.lines)
    _check_customer(new)
    line_taxes, tax_totals, subtotal, tax_total = priced_lines(new.lines, new.locale)
    token = new_token()
    owner = new.owner
    order = Order(
        organization_id=organization.id,
        number=numbering.take_number(organization_id=organization.id, name=numbering.ORDER),
        token_hash=token_hash(token),
        state=OrderState.AWAITING_PAYMENT,
        currency=organization.currency,
        locale=new.locale if new.locale in ("fr", "en") else organization.default_locale.value,
        shop_id=new.shop_id,
        checkout_method=Method(method.name),
        counter_sale=new.counter_sale,
        customer_id=new.customer.id if new.customer is not None else None,
        customer_first_name=owner.first_name if owner else "",
        customer_last_name=owner.last_name if owner else "",
        customer_email=owner.email if owner else "",
        customer_phone=owner.phone if owner else "",
        form_id=new.form.form_id if new.form else None,
        form_version=new.form.version if new.form else None,
        form_snapshot=(
            {
                "id": new.form.form_id,
                "version": new.form.version,
                "name": new.form.name,
                "fields": new.form.fields,
            }
            if new.form
            else {}
        ),
        answers=dict(new.form.answers) if new.form else {},
        consents=list(new.form.consents) if new.form else [],
        subtotal=subtotal,
        tax_total=tax_total,
        total=subtotal + tax_total,
        taxes=tax_totals,
        payment_details=dict(new.payment_details),
        remind_at=new.remind_at if method.sends_reminders else None,
        expires_at=new.expires_at if method.sends_reminders else None,
        placed_by_label=actor.label,
        placed_by_user_id=actor.user_id,
    )
    for position, (line, taxes) in enumerate(zip(new.lines, line_taxes, strict=True)):
        line_subtotal = line.unit_price * line.quantity
        line_tax = sum(tax["amount"] for tax in taxes)
        order.lines.append(
            OrderLine(
                organization_id=organization.id,
                position=position,
                article_id=line.article_id,
                variant_id=line.variant_id,
                name=line.name[:300],
                sku=line.sku or "",
                unit_price=line.unit_price,
                original_unit_price=(
                    line.unit_price
                    if line.original_unit_price is None
                    else line.original_unit_price
                ),
                override_reason=line.override_reason or "",
                quantity=line.quantity,
                tax_category=line.tax_category,
                taxes=taxes,
                subtotal=line_subtotal,
                tax_total=line_tax,
                total=line_subtotal + line_tax,
            )
        )
    db.session.add(order)
    db.session.flush()

    from comptoir.billing import invoices

    invoices.issue_invoice(order=order)
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="order.placed",
        target=order,
        after={
            "number": order.number,
            "total": order.total,
            "currency": order.currency,
            "method": method.name,
            "counter_sale": order.counter_sale,
            "customer_id": order.customer_id,
            "lines": [
                {
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "original_unit_price": line.original_unit_price,
                }
                for line in order.lines
            ],
        },
    )
    outcome = CheckoutOutcome()
    if method.at_checkout is not None:
        outcome = method.at_checkout(order, actor, new.payment)
    settle(order, actor=actor)
    outbox.enqueue(ORDER_PLACED_JOB, order_id=order.id)
    db.session.flush()
    return PlacedOrder(
        order=order, token=token, payment=outcome.payment, next_action=outcome.next_action
    )


def orders_query(
    *,
    state: str | None = None,
    method: str | None = None,
    q: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    pending: bool = False,
    counter_sale: bool | None = None,
) -> sa.Select[Any]:
    """Orders of the organization in scope, newest first, filtered as the admin list asks."""
    query = sa.select(Order).order_by(Order.created_at.desc(), Order.id.desc())
    if state:
        query = query.where(Order.state == OrderState(state))
    if method:
        paid_with = sa.select(Payment.order_id).where(Payment.method == Method(method))
        query = query.where(
            sa.or_(Order.checkout_method == Method(method), Order.id.in_(paid_with))
        )
    if date_from is not None:
        query = query.where(Order.created_at >= date_from)
    if date_to is not None:
        query = query.where(Order.created_at < date_to)
    if pending:
        in_progress = sa.select(Payment.order_id).where(
            Payment.state.in_((MoneyState.PENDING, MoneyState.PROCESSING))
        )
        query = query.where(
            sa.or_(Order.state == OrderState.AWAITING_PAYMENT, Order.id.in_(in_progress))
        )
    if counter_sale is not None:
        query = query.where(Order.counter_sale.is_(counter_sale))
    for term in (q or "").strip().split()[:5]:
        like = f"%{_escape_like(term.lower())}%"
        conditions: list[Any] = [
            sa.func.lower(Order.customer_first_name).like(like, escape="\\"),
            sa.func.lower(Order.customer_last_name).like(like, escape="\\"),
            sa.func.lower(Order.customer_email).like(like, escape="\\"),
        ]
        digits = term.upper().removeprefix("C-")
        if digits.isdigit() and len(digits) < 15:
            conditions.append(Order.number == int(digits))
        query = query.where(sa.or_(*conditions))
    return query


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
