"""An invoice as a document: what it says, as an HTML page and as a PDF (WeasyPrint).

Billing knows invoices, not carts: callers describe the invoice with plain values
(:class:`InvoiceDocument`); the storefront builds one from a cart for the staff preview. The
layout (``billing/invoice_preview.html``) marks a preview with a visible "PREVIEW" and gives it no
number. Everything is written in the customer's language, whatever the viewer's.

Contents follow what Canadian invoices need: the business name and address, its GST/HST, QST or
PST registration numbers, the date, the customer when known, each line (a staff price change
shows as a discount or surcharge against the catalog price, with its reason), each tax with its
rate, the subtotal and the total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, get_currency_precision
from flask import Blueprint, current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _

from comptoir.billing.taxes import TaxTotal
from comptoir.tenants.models import Organization

# Registered by the app so that ``billing/…`` templates resolve; it has no routes of its own.
templates_blueprint = Blueprint("billing_invoice_preview", __name__, template_folder="templates")

STYLESHEET = Path("billing") / "invoice_preview.css"
PDF_MIMETYPE = "application/pdf"


def format_money(amount: int, currency: str, locale: str) -> str:
    value = Decimal(amount).scaleb(-get_currency_precision(currency))
    return format_currency(value, currency, locale=f"{locale}_CA")


def format_rate(rate: Decimal, locale: str) -> str:
    """``9.975`` → ``9,975 %`` (fr) or ``9.975%`` (en)."""
    number = format_decimal(rate.normalize(), format="#,##0.###", locale=f"{locale}_CA")
    return f"{number}\u00a0%" if locale == "fr" else f"{number}%"


@dataclass(frozen=True)
class InvoiceParty:
    name: str
    lines: list[str] = field(default_factory=list)
    email: str = ""
    phone: str = ""


@dataclass(frozen=True)
class Registration:
    label: str
    number: str


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    quantity: int
    unit_price: int  # what is charged per unit, before tax
    original_unit_price: int  # the catalog price; differs when staff changed the price
    adjustment_reason: str = ""

    @property
    def total(self) -> int:
        return self.unit_price * self.quantity

    @property
    def original_total(self) -> int:
        return self.original_unit_price * self.quantity

    @property
    def adjustment(self) -> int:
        """Below zero: a discount; above: a surcharge."""
        return self.total - self.original_total


@dataclass(frozen=True)
class InvoicePayment:
    """A payment (positive) or a refund (negative) listed under an invoice's totals."""

    label: str
    amount: int
    on: date | None = None
    reference: str = ""


@dataclass(frozen=True)
class InvoiceDocument:
    seller: InvoiceParty
    registrations: list[Registration]
    customer: InvoiceParty | None
    issued_on: date
    lines: list[InvoiceLine]
    subtotal: int
    taxes: list[TaxTotal]
    total: int
    currency: str
    locale: str
    preview: bool = True
    number: str | None = None
    reference: str = ""
    # Real documents (comptoir.billing.documents): an invoice with what was paid and what is
    # left, or a credit note pointing at the invoice it credits.
    kind: str = "invoice"  # "invoice" or "credit_note"
    refers_to: str = ""
    reason: str = ""
    credited: int = 0
    paid: int | None = None
    balance: int | None = None
    payments: list[InvoicePayment] = field(default_factory=list)

    def money(self, amount: int) -> str:
        return format_money(amount, self.currency, self.locale)

    def rate(self, rate: Decimal) -> str:
        return format_rate(rate, self.locale)

    @property
    def issued_on_text(self) -> str:
        return format_date(self.issued_on, format="long", locale=f"{self.locale}_CA")

    def date_text(self, day: date | None) -> str:
        return format_date(day, format="long", locale=f"{self.locale}_CA") if day else ""


def seller_of(organization: Organization) -> InvoiceParty:
    city_line = " ".join(
        part
        for part in (organization.city, organization.province, organization.postal_code)
        if part
    )
    lines = [
        line for line in (organization.address_line1, organization.address_line2, city_line) if line
    ]
    return InvoiceParty(
        name=organization.name, lines=lines, email=organization.email, phone=organization.phone
    )


def registrations_of(organization: Organization, taxes: list[TaxTotal]) -> list[Registration]:
    """The organization's registration numbers, and those the charged taxes carry."""
    found: list[Registration] = []
    seen: set[str] = set()
    for label, number in (
        (_("GST/HST registration number"), organization.gst_hst_number),
        (_("QST registration number"), organization.qst_number),
        (_("PST registration number"), organization.pst_number),
    ):
        if number and number not in seen:
            found.append(Registration(label=label, number=number))
            seen.add(number)
    for tax in taxes:
        if tax.registration_number and tax.registration_number not in seen:
            label = _("%(tax)s registration number", tax=tax.name)
            found.append(Registration(label=label, number=tax.registration_number))
            seen.add(tax.registration_number)
    return found


def render_invoice_html(document: InvoiceDocument, *, for_pdf: bool = False) -> str:
    """The whole invoice as a standalone HTML document, in the document's language."""
    with force_locale(document.locale):
        return render_template("billing/invoice_preview.html", invoice=document, for_pdf=for_pdf)


def render_invoice_fragment(document: InvoiceDocument) -> str:
    """The invoice's body, to place inside a page of the application."""
    with force_locale(document.locale):
        return render_template("billing/_invoice_preview.html", invoice=document)


def _stylesheet_path() -> Path:
    return Path(current_app.static_folder or "") / STYLESHEET


def _refuse_fetch(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    # The document is self-contained: nothing is fetched from the network or the disk.
    message = f"invoice documents load no external resource ({url[:60]})"
    raise ValueError(message)


def render_invoice_pdf(document: InvoiceDocument) -> bytes:
    from weasyprint import CSS, HTML

    html = render_invoice_html(document, for_pdf=True)
    stylesheet = CSS(string=_stylesheet_path().read_text(encoding="utf-8"))
    pdf: bytes = HTML(string=html, url_fetcher=_refuse_fetch).write_pdf(stylesheets=[stylesheet])
    return pdf
