"""Invoices and credit notes: numbering, PDFs kept in the file storage, download links.

An order's invoice is issued in the transaction that places the order, and its number is taken
there (:mod:`.numbering`): a checkout that fails leaves no number used. Credit notes are issued
by cancellations and refunds, in their own sequence, in those transactions.

PDFs are built by jobs after the commit (``billing.invoice_pdf``, ``billing.credit_note_issued``)
and kept; an invoice's PDF is built again after a payment or a refund changes what it says
(``pdf_revision``). Customers download through links signed with the application's secret
(:func:`download_signature`): unguessable, nothing stored, valid as long as the secret is.
"""

from __future__ import annotations

import hashlib
import hmac
from base64 import urlsafe_b64encode
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from comptoir.billing import documents, numbering
from comptoir.billing.models import CreditNote, Invoice, Order
from comptoir.platform import outbox
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import NotFoundError
from comptoir.platform.files import file_storage
from comptoir.platform.security import constant_time_equals
from comptoir.tenants.models import Organization

INVOICE_PDF_JOB = "billing.invoice_pdf"
CREDIT_NOTE_JOB = "billing.credit_note_issued"
PDF_CONTENT_TYPE = "application/pdf"


# --------------------------------------------------------------------------- issuing


def issue_invoice(*, order: Order) -> Invoice:
    """The order's invoice, numbered now (in the order's transaction)."""
    invoice = Invoice(
        organization_id=order.organization_id,
        order_id=order.id,
        number=numbering.take_number(organization_id=order.organization_id, name=numbering.INVOICE),
        issued_at=utcnow(),
        locale=order.locale,
        pdf_revision=1,
        pdf_built_revision=0,
    )
    db.session.add(invoice)
    db.session.flush()
    return invoice


def invoice_of(order: Order) -> Invoice:
    invoice = db.session.execute(
        sa.select(Invoice).where(Invoice.order_id == order.id)
    ).scalar_one_or_none()
    if invoice is None:
        raise NotFoundError(_("This order has no invoice."))
    return invoice


def refresh_invoice(*, order: Order) -> None:
    """What the invoice says changed (paid, balance): build its PDF again after the commit."""
    invoice = db.session.execute(
        sa.select(Invoice).where(Invoice.order_id == order.id).with_for_update()
    ).scalar_one_or_none()
    if invoice is None:
        return
    invoice.pdf_revision += 1
    db.session.flush()
    outbox.enqueue(INVOICE_PDF_JOB, invoice_id=invoice.id)


def issue_credit_note(
    *,
    order: Order,
    kind: str,
    reason: str,
    lines: list[dict[str, Any]],
    subtotal: int,
    taxes: list[dict[str, Any]],
    refund_id: int | None = None,
) -> CreditNote:
    """A credit note on the order's invoice, numbered now; its PDF and e-mail follow by job."""
    invoice = invoice_of(order)
    tax_total = sum(int(tax["amount"]) for tax in taxes)
    note = CreditNote(
        organization_id=order.organization_id,
        order_id=order.id,
        invoice_id=invoice.id,
        refund_id=refund_id,
        number=numbering.take_number(
            organization_id=order.organization_id, name=numbering.CREDIT_NOTE
        ),
        issued_at=utcnow(),
        kind=kind,
        reason=reason,
        locale=order.locale,
        lines=lines,
        subtotal=subtotal,
        taxes=taxes,
        tax_total=tax_total,
        total=subtotal + tax_total,
    )
    db.session.add(note)
    db.session.flush()
    outbox.enqueue(CREDIT_NOTE_JOB, credit_note_id=note.id)
    refresh_invoice(order=order)
    return note


# --------------------------------------------------------------------------- PDFs


def _organization(organization_id: int) -> Organization:
    organization = db.session.get(Organization, organization_id)
    if organization is None:  # pragma: no cover - tenant rows always have their organization
        message = f"organization {organization_id} not found"
        raise LookupError(message)
    return organization


def invoice_pdf_key(invoice: Invoice) -> str:
    return f"org-{invoice.organization_id}/invoices/{invoice.code}.pdf"


def credit_note_pdf_key(note: CreditNote) -> str:
    return f"org-{note.organization_id}/credit-notes/{note.code}.pdf"


def render_invoice_pdf(invoice: Invoice, *, locale: str | None = None) -> bytes:
    order = db.session.get(Order, invoice.order_id)
    assert order is not None
    document = documents.invoice_document(
        order, invoice, _organization(invoice.organization_id), locale=locale
    )
    return documents.render_invoice_pdf(document)


def render_credit_note_pdf(note: CreditNote) -> bytes:
    order = db.session.get(Order, note.order_id)
    invoice = db.session.get(Invoice, note.invoice_id)
    assert order is not None
    assert invoice is not None
    document = documents.credit_note_document(
        note, order, invoice, _organization(note.organization_id)
    )
    return documents.render_invoice_pdf(document)


def build_invoice_pdf(invoice_id: int) -> Invoice | None:
    """Build and keep the invoice's PDF unless the kept one is current (idempotent)."""
    invoice = db.session.execute(
        sa.select(Invoice)
        .where(Invoice.id == invoice_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if invoice is None:
        return None
    storage = file_storage()
    if (
        invoice.pdf_key
        and invoice.pdf_built_revision >= invoice.pdf_revision
        and storage.read(invoice.pdf_key) is not None
    ):
        return invoice
    key = invoice_pdf_key(invoice)
    storage.save(key, render_invoice_pdf(invoice), PDF_CONTENT_TYPE)
    invoice.pdf_key = key
    invoice.pdf_generated_at = utcnow()
    invoice.pdf_built_revision = invoice.pdf_revision
    db.session.flush()
    return invoice


def build_credit_note_pdf(credit_note_id: int) -> CreditNote | None:
    note = db.session.execute(
        sa.select(CreditNote)
        .where(CreditNote.id == credit_note_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if note is None:
        return None
    storage = file_storage()
    if note.pdf_key and storage.read(note.pdf_key) is not None:
        return note
    key = credit_note_pdf_key(note)
    storage.save(key, render_credit_note_pdf(note), PDF_CONTENT_TYPE)
    note.pdf_key = key
    note.pdf_generated_at = utcnow()
    db.session.flush()
    return note


def invoice_pdf_bytes(invoice: Invoice) -> bytes:
    """The kept PDF when current, else one rendered now (not kept: the job keeps it)."""
    if invoice.pdf_key and invoice.pdf_built_revision >= invoice.pdf_revision:
        data = file_storage().read(invoice.pdf_key)
        if data is not None:
            return data
    return render_invoice_pdf(invoice)


def credit_note_pdf_bytes(note: CreditNote) -> bytes:
    if note.pdf_key:
        data = file_storage().read(note.pdf_key)
        if data is not None:
            return data
    return render_credit_note_pdf(note)


def attachment(key: str, filename: str) -> dict[str, str]:
    """A kept file as a mail attachment (``comptoir.platform.mail`` reads it when sending)."""
    path = file_storage().path(key)
    if path is None:
        message = f"no kept file at {key!r}"
        raise LookupError(message)
    return {"filename": filename, "content_type": PDF_CONTENT_TYPE, "path": str(path)}


# --------------------------------------------------------------------------- links


def download_signature(kind: str, organization_id: int, document_id: int) -> str:
    """An unguessable, stable token for a customer's download link of one document."""
    secret = str(current_app.config["SECRET_KEY"]).encode()
    message = f"comptoir.billing.download:{kind}:{organization_id}:{document_id}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return urlsafe_b64encode(digest).decode().rstrip("=")


def signature_valid(kind: str, organization_id: int, document_id: int, presented: str) -> bool:
    if not presented or len(presented) > 100:
        return False
    return constant_time_equals(download_signature(kind, organization_id, document_id), presented)


def pdf_filename(document: Invoice | CreditNote) -> str:
    return f"{document.code}.pdf"
