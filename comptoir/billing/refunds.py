"""Refunds and cancellations: money back as refund rows, a credit note each time, stock back.

Each call locks the order row, checks against the figures derived from the money rows, then
writes the refund (if money goes back), the credit note (always: what was taken off the invoice)
and moves the order by :data:`comptoir.billing.orders.TRANSITIONS`. Units that come back are
announced with :mod:`comptoir.billing.signals`; the storefront restocks them in the same
transaction. One credit note means one e-mail (its job queues it once).

Taxes credited follow the invoice: a line's taxes in proportion to the units returned (the last
units take what is left, so the credit notes of a line add up to its taxes exactly); an amount
in proportion to the order's taxes. A cancellation credits whatever is left, tax by tax.

A refund through a payment provider (a card refunded through Stripe) is only a request when it
is recorded: its row is ``pending`` and the provider moves it with :func:`advance_refund`. Its
credit note, the order's move and the restocking wait for the provider to say the money went
back; they are kept on the refund meanwhile (``details["credit"]``). A refund that fails leaves
the invoice, the order and the stock as they were, so staff can simply refund again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from comptoir.billing import invoices, payment_methods
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
from comptoir.billing.orders import (
    ACTIVE_REFUND_STATES,
    ALREADY_DONE,
    TRANSITIONS,
    figures,
    lock_order,
    refunded_quantities,
    state_label,
    transition,
)
from comptoir.billing.payments import money_amount
from comptoir.billing.signals import ReturnedUnits, order_cancelled, order_refunded
from comptoir.platform import audit, outbox
from comptoir.platform.audit import Actor
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import ConflictError, ValidationError
from comptoir.tenants.models import Organization
from comptoir.tenants.permissions import Permission, ensure

MAX_REASON = 2000
MAX_REFERENCE = 200
# Refund rows move forward only: state -> states it may go to. A provider may report a refund it
# called succeeded as failed later (the bank sent the money back): that is news, not a step back.
REFUND_TRANSITIONS: dict[MoneyState, frozenset[MoneyState]] = {
    MoneyState.PENDING: frozenset(
        {MoneyState.PROCESSING, MoneyState.SUCCEEDED, MoneyState.FAILED, MoneyState.CANCELLED}
    ),
    MoneyState.PROCESSING: frozenset(
        {MoneyState.SUCCEEDED, MoneyState.FAILED, MoneyState.CANCELLED}
    ),
    MoneyState.SUCCEEDED: frozenset({MoneyState.FAILED}),
    MoneyState.FAILED: frozenset(),
    MoneyState.CANCELLED: frozenset(),
}
IN_PROGRESS = (MoneyState.PENDING, MoneyState.PROCESSING)


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(message, fields={field: [message]})


def _reason(value: Any) -> str:
    reason = str(value or "").strip()
    if not reason:
        raise _invalid("reason", _("Give a reason."))
    if len(reason) > MAX_REASON:
        raise _invalid("reason", _("Use at most %(count)d characters.", count=MAX_REASON))
    return reason


def _share(amount: int, part: int, whole: int) -> int:
    """``amount * part / whole`` rounded half up, in integers."""
    if whole == 0:
        return 0
    return int((Decimal(amount) * part / whole).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --------------------------------------------------------------------------- what was credited


def _credited_taxes_by_line(order: Order) -> dict[int, dict[str, int]]:
    """Taxes already credited on each line (refunds in progress and credit notes without one)."""
    credited: dict[int, dict[str, int]] = {}
    entries: list[dict[str, Any]] = []
    for lines in db.session.execute(
        sa.select(Refund.lines).where(
            Refund.order_id == order.id, Refund.state.in_(ACTIVE_REFUND_STATES)
        )
    ).scalars():
        entries.extend(lines or [])
    for lines in db.session.execute(
        sa.select(CreditNote.lines).where(
            CreditNote.order_id == order.id, CreditNote.refund_id.is_(None)
        )
    ).scalars():
        entries.extend(lines or [])
    for entry in entries:
        if "line_id" not in entry:
            continue
        per_code = credited.setdefault(int(entry["line_id"]), {})
        for tax in entry.get("taxes", []):
            per_code[tax["code"]] = per_code.get(tax["code"], 0) + int(tax["amount"])
    return credited


def _credited_totals(order: Order) -> tuple[int, dict[str, int]]:
    """Subtotal and taxes (per code) taken off the invoice by credit notes so far."""
    subtotal = 0
    taxes: dict[str, int] = {}
    for note in db.session.execute(
        sa.select(CreditNote).where(CreditNote.order_id == order.id)
    ).scalars():
        subtotal += note.subtotal
        for tax in note.taxes:
            taxes[tax["code"]] = taxes.get(tax["code"], 0) + int(tax["amount"])
    return subtotal, taxes


def _tax_entries(order: Order, amounts: dict[str, int]) -> list[dict[str, Any]]:
    """Per-code amounts in the order's tax order, with the names and numbers of its invoice."""
    entries = []
    for tax in order.taxes:
        amount = amounts.get(tax["code"], 0)
        if amount:
            entries.append({**tax, "amount": amount})
    return entries


@dataclass
class _Credit:
    lines: list[dict[str, Any]]
    subtotal: int
    taxes: dict[str, int]
    returned: list[ReturnedUnits]

    @property
    def total(self) -> int:
        return self.subtotal + sum(self.taxes.values())


def _credit_line(
    line: OrderLine, quantity: int, remaining: int, already: dict[str, int]
) -> dict[str, Any]:
    taxes = []
    for tax in line.taxes:
        code, line_amount = tax["code"], int(tax["amount"])
        if quantity == remaining:
            amount = line_amount - already.get(code, 0)  # the last units take what is left
        else:
            amount = _share(line_amount, quantity, line.quantity)
        taxes.append({"code": code, "amount": amount})
    subtotal = line.unit_price * quantity
    return {
        "line_id": line.id,
        "name": line.name,
        "quantity": quantity,
        "unit_price": line.unit_price,
        "subtotal": subtotal,
        "taxes": taxes,
        "total": subtotal + sum(tax["amount"] for tax in taxes),
    }


def _credit_for_lines(order: Order, items: Sequence[dict[str, Any]]) -> _Credit:
    by_id = {line.id: line for line in order.lines}
    refunded = refunded_quantities(order)
    credited = _credited_taxes_by_line(order)
    seen: set[int] = set()
    lines: list[dict[str, Any]] = []
    returned: list[ReturnedUnits] = []
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(items):
        line_id, quantity = item.get("line_id"), item.get("quantity")
        field = f"line_ids.{index}"
        line = by_id.get(line_id) if isinstance(line_id, int) else None
        if line is None:
            errors[field] = [_("This line is not on the order.")]
            continue
        if line.id in seen:
            errors[field] = [_("This line is given twice.")]
            continue
        seen.add(line.id)
        remaining = line.quantity - refunded.get(line.id, 0)
        if quantity is None:
            quantity = remaining
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            errors[field] = [_("Enter a quantity of at least 1.")]
            continue
        if quantity > remaining:
            errors[field] = [
                _("Only %(count)d unit(s) of this line can still be refunded.", count=remaining)
            ]
            continue
        lines.append(_credit_line(line, quantity, remaining, credited.get(line.id, {})))
        returned.append(ReturnedUnits(line.article_id, line.variant_id, quantity))
    if errors:
        raise ValidationError(_("Some lines cannot be refunded."), fields=errors)
    if not lines:
        raise _invalid("line_ids", _("Choose the lines to refund."))
    taxes: dict[str, int] = {}
    for entry in lines:
        for tax in entry["taxes"]:
            taxes[tax["code"]] = taxes.get(tax["code"], 0) + tax["amount"]
    return _Credit(
        lines=lines,
        subtotal=sum(entry["subtotal"] for entry in lines),
        taxes=taxes,
        returned=returned,
    )


def _credit_for_amount(order: Order, amount: int) -> _Credit:
    taxes = {
        tax["code"]: _share(amount, int(tax["amount"]), order.total)
        for tax in order.taxes
        if int(tax["amount"])
    }
    subtotal = amount - sum(taxes.values())
    return _Credit(
        lines=[
            {
                "name": _("Refund"),
                "quantity": 1,
                "unit_price": subtotal,
                "subtotal": subtotal,
                "taxes": [{"code": code, "amount": value} for code, value in taxes.items()],
                "total": amount,
            }
        ],
        subtotal=subtotal,
        taxes=taxes,
        returned=[],
    )


def _credit_for_rest(order: Order) -> _Credit:
    """Everything not credited yet: the remaining units, and exactly the remaining taxes."""
    refunded = refunded_quantities(order)
    credited = _credited_taxes_by_line(order)
    lines: list[dict[str, Any]] = []
    returned: list[ReturnedUnits] = []
    for line in order.lines:
        remaining = line.quantity - refunded.get(line.id, 0)
        if remaining > 0:
            lines.append(_credit_line(line, remaining, remaining, credited.get(line.id, {})))
            returned.append(ReturnedUnits(line.article_id, line.variant_id, remaining))
    credited_subtotal, credited_taxes = _credited_totals(order)
    subtotal = order.subtotal - credited_subtotal
    taxes = {
        tax["code"]: int(tax["amount"]) - credited_taxes.get(tax["code"], 0) for tax in order.taxes
    }
    listed = sum(entry["subtotal"] for entry in lines)
    if listed != subtotal:
        # Amounts refunded without lines were credited already: say so, so the lines add up.
        lines.append(
            {
                "name": _("Less amounts already credited"),
                "quantity": 1,
                "unit_price": subtotal - listed,
                "subtotal": subtotal - listed,
                "taxes": [],
                "total": subtotal - listed,
            }
        )
    return _Credit(lines=lines, subtotal=subtotal, taxes=taxes, returned=returned)


# --------------------------------------------------------------------------- money back


def _refund_method(
    order: Order, method: str | None
) -> tuple[payment_methods.PaymentMethod, Payment | None]:
    """The method money goes back by: the one asked for, else the last payment's."""
    payments = list(
        db.session.execute(
            sa.select(Payment)
            .where(Payment.order_id == order.id, Payment.state == MoneyState.SUCCEEDED)
            .order_by(Payment.id)
        ).scalars()
    )
    if method is None:
        if not payments:
            raise _invalid("method", _("Choose how the money goes back."))
        method = payments[-1].method.value
    registered = payment_methods.get(method)
    if registered is None or not (registered.recordable or registered.at_refund):
        raise _invalid("method", _("Money cannot be given back by this method."))
    paid_with = next((p for p in reversed(payments) if p.method.value == method), None)
    if registered.at_refund is not None and paid_with is None:
        raise _invalid("method", _("Nothing was paid by this method."))
    return registered, paid_with


def _new_refund(
    order: Order,
    actor: Actor,
    *,
    amount: int,
    method: str | None,
    reference: Any,
    reason: str,
    lines: list[dict[str, Any]],
) -> Refund:
    registered, paid_with = _refund_method(order, method)
    reference_text = str(reference or "").strip()
    if registered.refund_reference_required and not reference_text:
        raise _invalid("reference", _("Enter the reference of the money sent back."))
    if len(reference_text) > MAX_REFERENCE:
        raise _invalid("reference", _("Use at most %(count)d characters.", count=MAX_REFERENCE))
    provider = registered.at_refund
    refund = Refund(
        organization_id=order.organization_id,
        order_id=order.id,
        payment_id=paid_with.id if (provider is not None and paid_with is not None) else None,
        method=Method(registered.name),
        state=MoneyState.PENDING if provider is not None else MoneyState.SUCCEEDED,
        amount=amount,
        currency=order.currency,
        reason=reason,
        reference=reference_text,
        lines=lines,
        recorded_by_label=actor.label,
        recorded_by_user_id=actor.user_id,
    )
    db.session.add(refund)
    db.session.flush()
    if provider is not None:
        provider(refund, paid_with, actor)
    audit.record(
        organization_id=order.organization_id,
        actor=actor,
        action="refund.recorded",
        target=refund,
        after={
            "order_id": order.id,
            "order_number": order.number,
            "method": refund.method.value,
            "state": refund.state.value,
            "amount": amount,
            "reference": refund.reference,
            "reason": reason,
            "lines": [
                {"line_id": entry.get("line_id"), "quantity": entry["quantity"]} for entry in lines
            ],
        },
    )
    return refund


def refund_order(
    *,
    organization: Organization,
    actor: Actor,
    order: Order,
    reason: Any,
    amount: Any = None,
    lines: Sequence[dict[str, Any]] | None = None,
    method: str | None = None,
    reference: Any = "",
    restock: bool = True,
) -> Refund:
    """Give money back for some lines (``[{"line_id", "quantity"?}]``) or for an amount."""
    ensure(actor.role, Permission.REFUND)
    order = lock_order(order.id)
    if order.state not in (OrderState.PAID, OrderState.PARTIALLY_REFUNDED):
        if order.state is OrderState.AWAITING_PAYMENT:
            message = _("This order is not paid: cancel it instead.")
        else:
            message = _(
                "This order is %(state)s: nothing is left to refund.",
                state=state_label(order.state),
            )
        raise ConflictError(message)
    reason_text = _reason(reason)
    if (amount is None) == (not lines):
        raise _invalid("amount", _("Give either an amount or lines to refund, not both."))
    current = figures(order)
    if lines:
        credit = _credit_for_lines(order, lines)
    else:
        credit = _credit_for_amount(order, money_amount(amount, "amount"))
    if credit.total > current.refundable or credit.total > current.due:
        limit = min(current.refundable, current.due)
        raise _invalid(
            "amount" if not lines else "line_ids",
            _(
                "This is more than what can still be refunded (%(limit)s).",
                limit=_format(limit, order),
            ),
        )
    refund = _new_refund(
        order,
        actor,
        amount=credit.total,
        method=method,
        reference=reference,
        reason=reason_text,
        lines=credit.lines if lines else [],
    )
    deferred = {
        "reason": reason_text,
        "lines": credit.lines,
        "subtotal": credit.subtotal,
        "taxes": _tax_entries(order, credit.taxes),
        "returned": [
            [units.article_id, units.variant_id, units.quantity]
            for units in (credit.returned if restock else [])
        ],
    }
    if refund.state is MoneyState.SUCCEEDED:
        _credit_refund(order, refund, actor, deferred)
    else:
        # The provider has not given the money back yet: the credit waits for it.
        refund.details = {**refund.details, "credit": deferred}
        db.session.flush()
    return refund


def _credit_refund(order: Order, refund: Refund, actor: Actor, credit: dict[str, Any]) -> None:
    """The money went back: the credit note, the order's move and the units back to stock."""
    invoices.issue_credit_note(
        order=order,
        kind="refund",
        reason=credit["reason"],
        lines=credit["lines"],
        subtotal=credit["subtotal"],
        taxes=credit["taxes"],
        refund_id=refund.id,
    )
    before = order.state
    fully = figures(order).due == 0
    transition(order, "refund_fully" if fully else "refund_partially")
    returned = [ReturnedUnits(*entry) for entry in credit.get("returned", [])]
    if returned:
        refund.restocked = True
        order_refunded.send(
            order, organization_id=order.organization_id, order=order, returned=returned
        )
    db.session.flush()
    if order.state is not before:
        audit.record(
            organization_id=order.organization_id,
            actor=actor,
            action="order.refunded" if fully else "order.partially_refunded",
            target=order,
            before={"state": before.value},
            after={"state": order.state.value},
        )


def advance_refund(
    *, refund: Refund, actor: Actor, state: MoneyState, failure_message: str = ""
) -> bool:
    """Move a provider's refund forward (idempotent; a late event never moves it back).

    True when it moved. Succeeded: the credit kept on the refund is issued, the order moves and
    the units return. A cancellation's credit note was issued with the cancellation; its e-mail
    waits for the refund to be settled, and is queued again here.
    """
    order = lock_order(refund.order_id)
    db.session.refresh(refund, with_for_update=True)
    if refund.state is state or state not in REFUND_TRANSITIONS[refund.state]:
        return False
    before = refund.state
    refund.state = state
    if failure_message:
        refund.details = {**refund.details, "failure_message": failure_message[:2000]}
    db.session.flush()
    audit.record(
        organization_id=order.organization_id,
        actor=actor,
        action=f"refund.{state.value}",
        target=refund,
        before={"state": before.value},
        after={"state": state.value, "order_id": order.id, "amount": refund.amount},
    )
    note = db.session.execute(
        sa.select(CreditNote).where(CreditNote.refund_id == refund.id)
    ).scalar_one_or_none()
    if state is MoneyState.SUCCEEDED and note is None and "credit" in refund.details:
        _credit_refund(order, refund, actor, refund.details["credit"])
        return True
    if note is not None and note.mail_queued_at is None and before in IN_PROGRESS:
        outbox.enqueue(invoices.CREDIT_NOTE_JOB, credit_note_id=note.id)
    invoices.refresh_invoice(order=order)
    return True


def refund_settled(refund: Refund) -> bool:
    """Whether the money of ``refund`` has stopped moving (for the e-mail that announces it)."""
    return refund.state not in IN_PROGRESS


def _format(amount: int, order: Order) -> str:
    from comptoir.billing.money import format_money
    from comptoir.platform.i18n import select_locale

    return format_money(amount, order.currency, select_locale())


# --------------------------------------------------------------------------- cancelling


def cancel_order(
    *,
    organization: Organization,
    actor: Actor,
    order: Order,
    reason: Any,
    method: str | None = None,
    reference: Any = "",
) -> Order:
    """Staff cancel an order: what was paid goes back, the rest is credited, stock returns."""
    ensure(actor.role, Permission.MANAGE_ORDERS)
    return _cancel(
        actor=actor, order=order, reason=_reason(reason), method=method, reference=reference
    )


def _cancel(
    *, actor: Actor, order: Order, reason: str, method: str | None = None, reference: Any = ""
) -> Order:
    order = lock_order(order.id)
    before = order.state
    if order.state in ALREADY_DONE["cancel"]:
        return order  # cancelled already: nothing more goes back, no second e-mail
    if order.state not in TRANSITIONS["cancel"]:
        raise ConflictError(
            _(
                "This order is %(state)s: it cannot be cancelled.",
                state=state_label(order.state),
            )
        )
    current = figures(order)
    if current.pending_payments:
        raise ConflictError(_("A payment of this order is in progress: wait for it to finish."))
    if current.pending_refunds:
        raise ConflictError(_("A refund of this order is in progress: wait for it to finish."))
    credit = _credit_for_rest(order)
    refund = None
    if current.refundable > 0:
        refund = _new_refund(
            order,
            actor,
            amount=current.refundable,
            method=method,
            reference=reference,
            reason=reason,
            lines=credit.lines,
        )
    if credit.total > 0:
        invoices.issue_credit_note(
            order=order,
            kind="cancellation",
            reason=reason,
            lines=credit.lines,
            subtotal=credit.subtotal,
            taxes=_tax_entries(order, credit.taxes),
            refund_id=refund.id if refund is not None else None,
        )
    transition(order, "cancel")
    order.cancelled_at = utcnow()
    order.cancel_reason = reason
    if credit.returned:
        if refund is not None:
            refund.restocked = True
        order_cancelled.send(
            order, organization_id=order.organization_id, order=order, returned=credit.returned
        )
    db.session.flush()
    audit.record(
        organization_id=order.organization_id,
        actor=actor,
        action="order.cancelled",
        target=order,
        before={"state": before.value},
        after={
            "state": order.state.value,
            "reason": reason,
            "refund_id": refund.id if refund is not None else None,
            "refunded": refund.amount if refund is not None else 0,
        },
    )
    return order


def auto_cancel_unpaid(*, order_id: int, reason: str) -> bool:
    """The scheduler cancels an unpaid e-Transfer order past its delay. True when it did.

    An order with money received meanwhile is left to staff: nothing is refunded automatically.
    """
    order = lock_order(order_id)
    if order.state is not OrderState.AWAITING_PAYMENT:
        return False
    current = figures(order)
    if current.paid or current.pending_payments:
        return False
    _cancel(actor=Actor.system("scheduler"), order=order, reason=reason)
    return True
