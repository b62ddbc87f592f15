"""Orders as the API answers them (plain dictionaries dumped by :mod:`comptoir.billing.schemas`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from flask_babel import force_locale
from flask_babel import gettext as _

from comptoir.billing import communications
from comptoir.billing.etransfer import order_instructions
from comptoir.billing.models import CreditNote, Invoice, Method, Order, Payment, Refund
from comptoir.billing.orders import figures, refunded_quantities
from comptoir.platform.db import db
from comptoir.tenants.models import Organization


def _localized(text: Any, locale: str) -> str:
    if not isinstance(text, dict):
        return str(text or "")
    other = "en" if locale == "fr" else "fr"
    return str(text.get(locale) or text.get(other) or "")


def describe_answers(
    fields: Sequence[dict[str, Any]], answers: dict[str, Any], locale: str
) -> list[tuple[str, str]]:
    """``(label, answer as text)`` of an order's form answers, in the form's order.

    The fields are the form version's definitions kept on the order (see
    ``comptoir.storefront.checkout_forms``): labels and options in both languages.
    """
    rows = []
    with force_locale(locale):
        for definition in fields:
            key = definition.get("key")
            if definition.get("type") == "heading" or key not in answers:
                continue
            value = answers[key]
            options = {
                o["value"]: _localized(o.get("label"), locale)
                for o in definition.get("options", [])
            }
            kind = definition.get("type")
            if kind == "checkbox":
                text = _("Yes") if value else _("No")
            elif kind == "multiple_choice":
                text = ", ".join(options.get(v, v) for v in value)
            elif kind == "single_choice":
                text = options.get(value, value)
            elif kind == "consent":
                text = _("Accepted and signed")
            else:
                text = str(value)
            rows.append((_localized(definition.get("label"), locale), text))
    return rows


def payment_dict(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "method": payment.method.value,
        "state": payment.state.value,
        "amount": payment.amount,
        "reference": payment.reference,
        "cash_tendered": payment.cash_tendered,
        "change_due": payment.change_due,
        "received_at": payment.received_at,
        "created_at": payment.created_at,
    }


def refund_dict(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "method": refund.method.value,
        "state": refund.state.value,
        "amount": refund.amount,
        "reason": refund.reason,
        "reference": refund.reference,
        "line_ids": [int(entry["line_id"]) for entry in refund.lines if "line_id" in entry],
        "restocked": refund.restocked,
        "created_at": refund.created_at,
    }


def order_dict(
    order: Order,
    *,
    locale: str,
    token: str | None = None,
    next_action: dict[str, Any] | None = None,
) -> dict[str, Any]:
    organization = db.session.get(Organization, order.organization_id)
    assert organization is not None
    current = figures(order)
    refunded = refunded_quantities(order)
    payments = db.session.execute(
        sa.select(Payment).where(Payment.order_id == order.id).order_by(Payment.id)
    ).scalars()
    refunds = db.session.execute(
        sa.select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)
    ).scalars()
    invoice = db.session.execute(
        sa.select(Invoice).where(Invoice.order_id == order.id)
    ).scalar_one_or_none()
    notes = db.session.execute(
        sa.select(CreditNote).where(CreditNote.order_id == order.id).order_by(CreditNote.id)
    ).scalars()
    instructions = None
    if order.checkout_method is Method.ETRANSFER:
        found = order_instructions(
            order, organization_name=organization.name, locale=locale, balance=current.balance
        )
        if found is not None:
            instructions = asdict(found)
            instructions["pay_by"] = found.pay_by.isoformat() if found.pay_by else None
    answer: dict[str, Any] = {
        "id": order.id,
        "number": order.number,
        "code": order.code,
        "state": order.state.value,
        "currency": order.currency,
        "locale": order.locale,
        "created_at": order.created_at,
        "payment_method": order.checkout_method.value,
        "counter_sale": order.counter_sale,
        "lines": [
            {
                "id": line.id,
                "article_id": line.article_id,
                "variant_id": line.variant_id,
                "name": line.name,
                "sku": line.sku,
                "quantity": line.quantity,
                "refunded_quantity": refunded.get(line.id, 0),
                "unit_price": line.unit_price,
                "original_unit_price": line.original_unit_price,
                "price_override_reason": line.override_reason,
                "tax_category": line.tax_category,
                "taxes": line.taxes,
                "subtotal": line.subtotal,
                "total": line.total,
            }
            for line in order.lines
        ],
        "subtotal": order.subtotal,
        "taxes": [
            {
                "code": tax["code"],
                "name": tax.get(f"name_{locale}") or tax.get("name", tax["code"]),
                "rate": str(tax.get("rate", "0")),
                "registration_number": tax.get("registration_number", ""),
                "amount": tax["amount"],
            }
            for tax in order.taxes
        ],
        "total": order.total,
        "paid": current.paid,
        "refunded": current.refunded,
        "credited": current.credited,
        "balance": current.balance,
        "payments": [payment_dict(payment) for payment in payments],
        "refunds": [refund_dict(refund) for refund in refunds],
        "customer": None
        if order.counter_sale
        else {
            "id": order.customer_id,
            "first_name": order.customer_first_name,
            "last_name": order.customer_last_name,
            "email": order.customer_email,
            "phone": order.customer_phone,
        },
        "form": None
        if not order.form_snapshot and not order.answers
        else {
            "id": order.form_id,
            "version": order.form_version,
            "name": order.form_snapshot.get("name", ""),
            "answers": order.answers,
        },
        "invoice": None
        if invoice is None
        else {
            "number": invoice.code,
            "pdf_url": communications.invoice_url(organization, invoice),
            "issued_at": invoice.issued_at,
            "total": order.total,
        },
        "credit_notes": [
            {
                "number": note.code,
                "pdf_url": communications.credit_note_url(organization, note),
                "issued_at": note.issued_at,
                "total": note.total,
            }
            for note in notes
        ],
        "payment_instructions": instructions,
        "next_action": next_action,
    }
    if token is not None:
        answer["token"] = token
    return answer
