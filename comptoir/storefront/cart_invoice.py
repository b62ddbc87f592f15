"""The invoice a cart would get: a preview for staff, in the customer's language."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import force_locale
from flask_babel import gettext as _

from comptoir.billing.invoice_preview import (
    InvoiceDocument,
    InvoiceLine,
    InvoiceParty,
    registrations_of,
    seller_of,
)
from comptoir.platform.db import db, utcnow
from comptoir.storefront.cart_models import Cart
from comptoir.storefront.carts import CartSummary, summarize
from comptoir.tenants.models import Customer, Organization


def local_today(organization: Organization) -> date:
    try:
        zone = ZoneInfo(organization.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("America/Toronto")
    return utcnow().astimezone(zone).date()


def customer_party(customer: Customer | None) -> InvoiceParty | None:
    if customer is None:
        return None
    return InvoiceParty(name=customer.full_name, email=customer.email, phone=customer.phone)


def invoice_preview_for(
    *, organization: Organization, cart: Cart, summary: CartSummary | None = None
) -> InvoiceDocument:
    """The invoice of ``cart`` as it stands, marked as a preview, in the cart's language."""
    locale = cart.locale
    customer = db.session.get(Customer, cart.customer_id) if cart.customer_id else None
    with force_locale(locale):
        if summary is None or summary.locale != locale:
            summary = summarize(cart, locale=locale)
        registrations = registrations_of(organization, summary.taxes)
        reference = _("Cart %(id)s", id=cart.id)
    return InvoiceDocument(
        seller=seller_of(organization),
        registrations=registrations,
        customer=customer_party(customer),
        issued_on=local_today(organization),
        lines=[
            InvoiceLine(
                description=line.name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                original_unit_price=line.original_unit_price,
                adjustment_reason=line.line.price_override_reason or "",
            )
            for line in summary.lines
        ],
        subtotal=summary.subtotal,
        taxes=summary.taxes,
        total=summary.total,
        currency=summary.currency,
        locale=locale,
        preview=True,
        reference=reference,
    )
