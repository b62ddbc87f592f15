"""What customers open from their e-mails: invoices and credit notes, by unguessable links.

``/o/<org>/documents/invoices/<id>/<signature>.pdf``: the signature is an HMAC of the document
with the application's secret (:func:`comptoir.billing.invoices.download_signature`), so the link
works for whoever holds it and for nobody else; a wrong signature is the same 404 as an unknown
document. The PDF is in the language of the order.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g

from comptoir.billing import invoices
from comptoir.billing.models import CreditNote, Invoice
from comptoir.billing.views.admin import pdf_response
from comptoir.platform.db import db
from comptoir.tenants.context import install_organization_url_handling

blueprint = Blueprint("billing_shop", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)


@blueprint.get("/documents/invoices/<int:invoice_id>/<signature>.pdf")
def invoice_pdf(invoice_id: int, signature: str) -> Any:
    if not invoices.signature_valid("invoice", g.organization.id, invoice_id, signature):
        abort(404)
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        abort(404)
    return pdf_response(invoices.invoice_pdf_bytes(invoice), invoices.pdf_filename(invoice))


@blueprint.get("/documents/credit-notes/<int:note_id>/<signature>.pdf")
def credit_note_pdf(note_id: int, signature: str) -> Any:
    if not invoices.signature_valid("credit_note", g.organization.id, note_id, signature):
        abort(404)
    note = db.session.get(CreditNote, note_id)
    if note is None:
        abort(404)
    return pdf_response(invoices.credit_note_pdf_bytes(note), invoices.pdf_filename(note))
