"""Real invoices and credit notes, laid out exactly like the cart's invoice preview.

:mod:`comptoir.billing.invoice_preview` owns the layout (``billing/invoice_preview.html``) and
its :class:`InvoiceDocument`; this module fills one from an order and its invoice (with what was
paid and the balance) or from a credit note (with the invoice it credits and the reason), always
in the language the order was placed in unless another is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from flask_babel import force_locale

from comptoir.billing.invoice_preview import (
    InvoiceDocument,
    InvoiceLine,
    InvoiceParty,
    InvoicePayment,
    registrations_of,
    render_invoice_html,
    render_invoice_pdf,
    seller_of,
)
from comptoir.billing.models import CreditNote, Invoice, Method, MoneyState, Order, Payment, Refund
from comptoir.billing.taxes import TaxTotal
from comptoir.platform.db import db
from comptoir.tenants.models import Organization

__all__ = [
    "credit_note_document",
    "invoice_document",
    "method_label",
    "render_invoice_html",
    "render_invoice_pdf",
]


def _local_day(moment: datetime | None, timezone: str) -> date | None:
    if moment is None:
        return None
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("America/Toronto")
    return moment.astimezone(zone).date()


def tax_totals(snapshot: Sequence[dict[str, Any]], locale: str) -> list[TaxTotal]:
    """A tax snapshot (order, credit note) as the layout's tax totals, named in ``locale``."""
    return [
        TaxTotal(
            code=tax["code"],
            name=tax.get(f"name_{locale}") or tax.get("name") or tax["code"],
            rate=Decimal(str(tax.get("rate", "0"))),
            registration_number=tax.get("registration_number", ""),
            amount=int(tax["amount"]),
        )
        for tax in snapshot
    ]


def _customer(order: Order) -> InvoiceParty | None:
    if order.counter_sale or not (order.customer_email or order.customer_name):
        return None
    return InvoiceParty(
        name=order.customer_name, email=order.customer_email, phone=order.customer_phone
    )


def method_label(method: Method | str, locale: str | None = None) -> str:
    from comptoir.billing import payment_methods

    name = Method(method).value
    registered = payment_methods.get(name)
    if registered is None:
        return name
    if locale is None:
        return str(registered.label)
    with force_locale(locale):
        return str(registered.label)


def _money_rows(order: Order, locale: str, timezone: str) -> list[InvoicePayment]:
    """Payments received (positive) and refunds (negative), in the order they happened."""
    payments = db.session.execute(
        sa.select(Payment)
        .where(Payment.order_id == order.id, Payment.state == MoneyState.SUCCEEDED)
        .order_by(Payment.id)
    ).scalars()
    refunds = db.session.execute(
        sa.select(Refund)
        .where(Refund.order_id == order.id, Refund.state == MoneyState.SUCCEEDED)
        .order_by(Refund.id)
    ).scalars()
    rows: list[tuple[datetime, InvoicePayment]] = [
        (
            payment.received_at or payment.created_at,
            InvoicePayment(
                label=method_label(payment.method, locale),
                amount=payment.amount,
                on=_local_day(payment.received_at or payment.created_at, timezone),
                reference=payment.reference,
            ),
        )
        for payment in payments
    ]
    rows.extend(
        (
            refund.created_at,
            InvoicePayment(
                label=method_label(refund.method, locale),
                amount=-refund.amount,
                on=_local_day(refund.created_at, timezone),
                reference=refund.reference,
            ),
        )
        for refund in refunds
    )
    rows.sort(key=lambda row: row[0])
    return [row for _moment, row in rows]


def invoice_document(
    order: Order, invoice: Invoice, organization: Organization, *, locale: str | None = None
) -> InvoiceDocument:
    from comptoir.billing.orders import figures

    locale = locale or invoice.locale
    current = figures(order)
    taxes = tax_totals(order.taxes, locale)
    with force_locale(locale):
        registrations = registrations_of(organization, taxes)
    issued_on = _local_day(invoice.issued_at, organization.timezone)
    assert issued_on is not None
    return InvoiceDocument(
        seller=seller_of(organization),
        registrations=registrations,
        customer=_customer(order),
        issued_on=issued_on,
        lines=[
            InvoiceLine(
                description=line.name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                original_unit_price=line.original_unit_price,
                adjustment_reason=line.override_reason,
            )
            for line in order.lines
        ],
        subtotal=order.subtotal,
        taxes=taxes,
        total=order.total,
        currency=order.currency,
        locale=locale,
        preview=False,
        number=invoice.code,
        reference=order.code,
        kind="invoice",
        credited=current.credited,
        paid=current.net_paid,
        balance=current.balance,
        payments=_money_rows(order, locale, organization.timezone),
    )


def credit_note_document(
    note: CreditNote, order: Order, invoice: Invoice, organization: Organization
) -> InvoiceDocument:
    locale = note.locale
    taxes = tax_totals(note.taxes, locale)
    with force_locale(locale):
        registrations = registrations_of(organization, taxes)
    issued_on = _local_day(note.issued_at, organization.timezone)
    assert issued_on is not None
    return InvoiceDocument(
        seller=seller_of(organization),
        registrations=registrations,
        customer=_customer(order),
        issued_on=issued_on,
        lines=[
            InvoiceLine(
                description=entry["name"],
                quantity=int(entry["quantity"]),
                unit_price=int(entry["unit_price"]),
                original_unit_price=int(entry["unit_price"]),
            )
            for entry in note.lines
        ],
        subtotal=note.subtotal,
        taxes=taxes,
        total=note.total,
        currency=order.currency,
        locale=locale,
        preview=False,
        number=note.code,
        reference=order.code,
        kind="credit_note",
        refers_to=invoice.code,
        reason=note.reason,
    )
