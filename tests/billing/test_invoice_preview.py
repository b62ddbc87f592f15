"""The invoice preview document: its contents in the customer's language, as HTML and as PDF."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from flask import Flask

from comptoir.billing.invoice_preview import (
    InvoiceDocument,
    InvoiceLine,
    InvoiceParty,
    registrations_of,
    render_invoice_fragment,
    render_invoice_html,
    render_invoice_pdf,
    seller_of,
)
from comptoir.billing.taxes import TaxTotal
from comptoir.tenants.models import Organization

TAXES = [
    TaxTotal(code="GST", name="GST", rate=Decimal("5.000"), registration_number="", amount=250),
    TaxTotal(
        code="QST",
        name="QST",
        rate=Decimal("9.975"),
        registration_number="1234567890 TQ0001",
        amount=499,
    ),
]


def organization() -> Organization:
    return Organization(
        slug="club",
        name="Club de natation Les Dauphins",
        address_line1="123 rue Principale",
        city="Montréal",
        province="QC",
        postal_code="H2X 1Y4",
        email="info@dauphins.example",
        gst_hst_number="123456789 RT0001",
        qst_number="1234567890 TQ0001",
        pst_number="",
        currency="CAD",
    )


def document(locale: str, customer: InvoiceParty | None = None) -> InvoiceDocument:
    org = organization()
    lines = [
        InvoiceLine(
            description="Swim cap",
            quantity=2,
            unit_price=1000,
            original_unit_price=1500,
            adjustment_reason="Team discount",
        ),
        InvoiceLine(
            description="Goggles",
            quantity=1,
            unit_price=3000,
            original_unit_price=2500,
            adjustment_reason="Engraving",
        ),
    ]
    subtotal = sum(line.total for line in lines)
    return InvoiceDocument(
        seller=seller_of(org),
        registrations=registrations_of(org, TAXES),
        customer=customer,
        issued_on=date(2026, 11, 26),
        lines=lines,
        subtotal=subtotal,
        taxes=TAXES,
        total=subtotal + sum(tax.amount for tax in TAXES),
        currency="CAD",
        locale=locale,
        reference="Cart 7",
    )


@pytest.fixture
def request_context(app: Flask):  # type: ignore[no-untyped-def]
    with app.test_request_context("/"):
        yield


@pytest.mark.usefixtures("request_context")
def test_the_html_says_everything_an_invoice_needs_marked_preview() -> None:
    html = render_invoice_html(
        document("en", InvoiceParty(name="Ada Lovelace", email="ada@example.org"))
    )
    assert '<html lang="en">' in html
    assert "PREVIEW" in html
    assert "Club de natation Les Dauphins" in html
    assert "123 rue Principale" in html
    assert "Montréal QC H2X 1Y4" in html
    assert "123456789 RT0001" in html
    assert "1234567890 TQ0001" in html
    assert "Ada Lovelace" in html
    assert "ada@example.org" in html
    # The catalog price, then the staff change as a discount or a surcharge with its reason.
    assert "$15.00" in html
    assert "Discount" in html
    assert "Team discount" in html
    assert "-$10.00" in html
    assert "Surcharge" in html
    assert "Engraving" in html
    assert "$5.00" in html
    assert "GST (5%)" in html
    assert "QST (9.975%)" in html
    assert "$50.00" in html  # subtotal: 2 x 10.00 + 30.00
    assert "$57.49" in html  # total: 50.00 + 2.50 + 4.99
    assert "November 26, 2026" in html
    assert "billing/invoice_preview.css" in html


@pytest.mark.usefixtures("request_context")
def test_the_invoice_is_written_in_the_customers_language() -> None:
    html = render_invoice_html(document("fr"))
    assert '<html lang="fr">' in html
    assert "57,49\u00a0$" in html
    assert "9,975\u00a0%" in html
    assert "26 novembre 2026" in html
    fragment = render_invoice_fragment(document("fr"))
    assert "<html" not in fragment
    assert 'lang="fr"' in fragment


@pytest.mark.usefixtures("request_context")
def test_without_a_customer_the_invoice_says_so() -> None:
    html = render_invoice_html(document("en"))
    assert "Customer not known yet" in html


@pytest.mark.usefixtures("request_context")
def test_the_pdf_is_a_pdf() -> None:
    pdf = render_invoice_pdf(document("fr", InvoiceParty(name="Ada Lovelace")))
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 2000
    assert b"%%EOF" in pdf[-1024:]
