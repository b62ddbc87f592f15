"""Admin pages of orders: the list (filters, search, CSV export) and an order's page with its
payments, refunds, credit notes and audit trail, and the staff actions on it.

Under ``/o/<org_slug>/admin``: ``staff_required`` answers 404 to anyone who is not staff here;
orders are looked up inside the organization's scope, so another organization's id is 404.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from comptoir.billing import communications, invoices, payment_methods, payments, refunds
from comptoir.billing import orders as order_services
from comptoir.billing.documents import method_label
from comptoir.billing.forms import (
    CancelForm,
    PaymentForm,
    RefundForm,
    SendInvoiceForm,
    apply_error,
    day_start,
)
from comptoir.billing.models import (
    CreditNote,
    Invoice,
    Method,
    MoneyState,
    Order,
    OrderState,
    Payment,
    Refund,
)
from comptoir.billing.money import format_money
from comptoir.billing.orders import figures, refunded_quantities, state_label
from comptoir.billing.payment_methods import Audience
from comptoir.billing.presenters import describe_answers
from comptoir.billing.views import stripe_refunds as stripe_refund_views
from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import DomainError
from comptoir.platform.i18n import select_locale
from comptoir.tenants.context import current_actor, current_role, install_organization_url_handling
from comptoir.tenants.guards import staff_required
from comptoir.tenants.navigation import set_endpoint
from comptoir.tenants.permissions import Permission, role_can

blueprint = Blueprint("billing_admin", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)
set_endpoint("orders", "billing_admin.orders")

PER_PAGE = 50
EXPORT_LIMIT = 50_000
sell_required = staff_required(Permission.SELL)


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) < 12 else None


def _order_or_404(order_id: int) -> Order:
    order = db.session.get(Order, order_id)
    if order is None:
        abort(404)
    return order


def _money(amount: int | None, currency: str | None = None) -> str:
    organization = g.organization
    return format_money(amount, currency or organization.currency, select_locale())


# --------------------------------------------------------------------------- the list


def _filters() -> dict[str, Any]:
    """The list's filters from the query string, unknown values ignored."""
    from datetime import date

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(request.args.get(name, ""))
        except ValueError:
            return None

    state = request.args.get("state", "")
    method = request.args.get("method", "")
    counter = request.args.get("counter_sale", "")
    return {
        "state": state if state in {s.value for s in OrderState} else "",
        "method": method if method in {m.value for m in Method} else "",
        "q": request.args.get("q", "").strip()[:200],
        "date_from": day("date_from"),
        "date_to": day("date_to"),
        "pending": request.args.get("pending") == "1",
        "counter_sale": counter if counter in {"1", "0"} else "",
    }


def _query(filters: dict[str, Any]) -> sa.Select[Any]:
    timezone = g.organization.timezone
    date_to = day_start(filters["date_to"], timezone)
    return order_services.orders_query(
        state=filters["state"] or None,
        method=filters["method"] or None,
        q=filters["q"] or None,
        date_from=day_start(filters["date_from"], timezone),
        date_to=date_to + timedelta(days=1) if date_to is not None else None,
        pending=filters["pending"],
        counter_sale={"1": True, "0": False}.get(filters["counter_sale"]),
    )


@blueprint.get("/orders/")
@sell_required
def orders() -> Any:
    filters = _filters()
    query = _query(filters)
    total = db.session.execute(
        sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    pages = max(math.ceil(total / PER_PAGE), 1)
    page = min(max(_int_arg("page") or 1, 1), pages)
    rows = list(db.session.execute(query.limit(PER_PAGE).offset((page - 1) * PER_PAGE)).scalars())
    figures_by_id = order_services.figures_of(rows)
    export_args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template(
        "billing/admin/orders.html",
        orders=rows,
        figures=figures_by_id,
        filters=filters,
        total=total,
        page=page,
        pages=pages,
        export_args=export_args,
        states=[(s.value, state_label(s)) for s in OrderState],
        methods=[(m.name, m.label) for m in payment_methods.registered()],
        money=_money,
        state_label=state_label,
        method_label=method_label,
    )


@blueprint.get("/orders/export.csv")
@sell_required
def orders_export() -> Any:
    filters = _filters()
    rows = list(db.session.execute(_query(filters).limit(EXPORT_LIMIT)).scalars())
    all_figures = order_services.figures_of(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "number",
            "created_at",
            "state",
            "method",
            "counter_sale",
            "first_name",
            "last_name",
            "email",
            "subtotal",
            "taxes",
            "total",
            "paid",
            "refunded",
            "balance",
            "currency",
        ]
    )
    for order in rows:
        current = all_figures[order.id]
        writer.writerow(
            [
                order.code,
                order.created_at.isoformat(),
                order.state.value,
                order.checkout_method.value,
                "yes" if order.counter_sale else "no",
                _csv_safe(order.customer_first_name),
                _csv_safe(order.customer_last_name),
                _csv_safe(order.customer_email),
                f"{order.subtotal / 100:.2f}",
                f"{order.tax_total / 100:.2f}",
                f"{order.total / 100:.2f}",
                f"{current.paid / 100:.2f}",
                f"{current.refunded / 100:.2f}",
                f"{current.balance / 100:.2f}",
                order.currency,
            ]
        )
    response = Response(buffer.getvalue(), mimetype="text/csv")
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    response.headers["Content-Disposition"] = f'attachment; filename="orders-{stamp}.csv"'
    return response


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ is a formula in spreadsheets: neutralise it.
    return f"'{value}" if value[:1] in {"=", "+", "-", "@"} else value


# --------------------------------------------------------------------------- one order


def _methods() -> list[tuple[str, str]]:
    """Methods staff record by hand (payments received, money given back)."""
    return [
        (method.name, str(method.label))
        for method in payment_methods.registered()
        if method.allows(Audience.STAFF) and method.recordable
    ]


def _refund_methods(order: Order) -> list[tuple[str, str]]:
    """Methods money goes back by: those staff record by hand, and those of a provider (a card
    refunded through Stripe) the order was paid by."""
    paid_by = set(
        db.session.execute(
            sa.select(Payment.method).where(
                Payment.order_id == order.id, Payment.state == MoneyState.SUCCEEDED
            )
        ).scalars()
    )
    return [
        (method.name, str(method.label))
        for method in payment_methods.registered()
        if method.allows(Audience.STAFF)
        and (method.recordable or (method.at_refund is not None and Method(method.name) in paid_by))
    ]


def _audit_entries(order: Order) -> list[AuditLog]:
    payment_ids = [
        str(i)
        for i in db.session.execute(
            sa.select(Payment.id).where(Payment.order_id == order.id)
        ).scalars()
    ]
    refund_ids = [
        str(i)
        for i in db.session.execute(
            sa.select(Refund.id).where(Refund.order_id == order.id)
        ).scalars()
    ]
    return list(
        db.session.execute(
            sa.select(AuditLog)
            .where(
                sa.or_(
                    sa.and_(AuditLog.target_type == "order", AuditLog.target_id == str(order.id)),
                    sa.and_(AuditLog.target_type == "payment", AuditLog.target_id.in_(payment_ids)),
                    sa.and_(AuditLog.target_type == "refund", AuditLog.target_id.in_(refund_ids)),
                )
            )
            .order_by(AuditLog.id)
        ).scalars()
    )


def _forms(order: Order) -> dict[str, Any]:
    payment_form = PaymentForm(prefix="pay", formdata=None)
    payment_form.method.choices = _methods()
    if order.checkout_method.value in dict(payment_form.method.choices):
        payment_form.method.data = order.checkout_method.value
    refund_form = RefundForm(prefix="refund", formdata=None)
    refund_form.method.choices = _refund_methods(order)
    last = db.session.execute(
        sa.select(Payment.method)
        .where(Payment.order_id == order.id, Payment.state == MoneyState.SUCCEEDED)
        .order_by(Payment.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if last is not None:
        refund_form.method.data = last.value
    cancel_form = CancelForm(prefix="cancel", formdata=None)
    cancel_form.method.choices = refund_form.method.choices
    cancel_form.method.data = refund_form.method.data
    invoice_form = SendInvoiceForm(
        prefix="invoice",
        formdata=None,
        data={"email": order.customer_email, "locale": order.locale},
    )
    return {
        "payment_form": payment_form,
        "refund_form": refund_form,
        "cancel_form": cancel_form,
        "invoice_form": invoice_form,
    }


def _order_page(order: Order, status: int = 200, **forms: Any) -> Any:
    order = _order_or_404(order.id)
    locale = select_locale()
    role = current_role()
    context = {**_forms(order), **forms}
    invoice = db.session.execute(
        sa.select(Invoice).where(Invoice.order_id == order.id)
    ).scalar_one_or_none()
    return (
        render_template(
            "billing/admin/order.html",
            order=order,
            current=figures(order),
            refunded=refunded_quantities(order),
            payments=list(
                db.session.execute(
                    sa.select(Payment).where(Payment.order_id == order.id).order_by(Payment.id)
                ).scalars()
            ),
            refunds=list(
                db.session.execute(
                    sa.select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)
                ).scalars()
            ),
            invoice=invoice,
            credit_notes=list(
                db.session.execute(
                    sa.select(CreditNote)
                    .where(CreditNote.order_id == order.id)
                    .order_by(CreditNote.id)
                ).scalars()
            ),
            answers=describe_answers(order.form_snapshot.get("fields", []), order.answers, locale),
            audit_entries=_audit_entries(order),
            can={
                "pay": role_can(role, Permission.SELL)
                and order.state is OrderState.AWAITING_PAYMENT,
                "refund": role_can(role, Permission.REFUND)
                and order.state in (OrderState.PAID, OrderState.PARTIALLY_REFUNDED),
                "cancel": role_can(role, Permission.MANAGE_ORDERS)
                and order.state is not OrderState.CANCELLED
                and order.state is not OrderState.REFUNDED,
            },
            money=lambda amount: _money(amount, order.currency),
            state_label=state_label,
            money_state_label=order_services.money_state_label,
            method_label=method_label,
            **context,
        ),
        status,
    )


@blueprint.get("/orders/<int:order_id>")
@sell_required
def order(order_id: int) -> Any:
    return _order_page(_order_or_404(order_id))


def _back(order: Order) -> Any:
    return redirect(url_for("billing_admin.order", order_id=order.id))


@blueprint.post("/orders/<int:order_id>/payments")
@sell_required
def order_payment(order_id: int) -> Any:
    order = _order_or_404(order_id)
    form = PaymentForm(prefix="pay")
    form.method.choices = _methods()
    if not form.validate():
        return _order_page(order, 422, payment_form=form)
    received_at = day_start(form.received_on.data, g.organization.timezone)
    if received_at is not None and form.received_on.data == utcnow().date():
        received_at = None  # today: the time of recording
    try:
        payment = payments.record_payment(
            organization=g.organization,
            actor=current_actor(),
            order=order,
            method=form.method.data or "",
            amount=form.amount.data,
            reference=form.reference.data or "",
            cash_tendered=form.cash_tendered.data if form.method.data == "cash" else None,
            received_at=received_at,
        )
    except DomainError as error:
        db.session.rollback()
        apply_error(form, error, aliases={"received_at": "received_on"})
        return _order_page(order, 422, payment_form=form)
    change = payment.change_due
    db.session.commit()
    if change:
        flash(_("Payment recorded. Change due: %(change)s.", change=_money(change)), "success")
    else:
        flash(_("Payment recorded."), "success")
    return _back(order)


@blueprint.post("/orders/<int:order_id>/refunds")
@staff_required(Permission.REFUND)
def order_refund(order_id: int) -> Any:
    order = _order_or_404(order_id)
    form = RefundForm(prefix="refund")
    form.method.choices = _refund_methods(order)
    if not form.validate():
        return _order_page(order, 422, refund_form=form)
    lines = None
    amount = None
    if form.kind.data == "lines":
        lines = []
        for line in order.lines:
            raw = request.form.get(f"line-{line.id}", "").strip()
            if raw:
                if not raw.isdigit():
                    form.kind.errors = [_("Enter whole quantities.")]
                    return _order_page(order, 422, refund_form=form)
                if int(raw) > 0:
                    lines.append({"line_id": line.id, "quantity": int(raw)})
        if not lines:
            form.kind.errors = [_("Enter the quantity to refund on at least one line.")]
            return _order_page(order, 422, refund_form=form)
    else:
        amount = form.amount.data
        if amount is None:
            form.amount.errors = [_("Enter the amount to refund.")]
            return _order_page(order, 422, refund_form=form)
    try:
        refund = refunds.refund_order(
            organization=g.organization,
            actor=current_actor(),
            order=order,
            reason=form.reason.data,
            amount=amount,
            lines=lines,
            method=form.method.data,
            reference=form.reference.data or "",
            restock=bool(form.restock.data),
        )
    except DomainError as error:
        db.session.rollback()
        apply_error(form, error, aliases={"line_ids": "kind"})
        return _order_page(order, 422, refund_form=form)
    db.session.commit()
    return _refunded(order, refund)


def _refunded(order: Order, refund: Refund) -> Any:
    if refund.state is not MoneyState.SUCCEEDED:
        # Through a provider: asked for, not done yet (or waiting for a card on a reader).
        return stripe_refund_views.after_refund(order, refund)
    flash(_("The refund is recorded and its credit note issued."), "success")
    return _back(order)


@blueprint.post("/orders/<int:order_id>/cancel")
@staff_required(Permission.MANAGE_ORDERS)
def order_cancel(order_id: int) -> Any:
    order = _order_or_404(order_id)
    form = CancelForm(prefix="cancel")
    form.method.choices = _refund_methods(order)
    if not form.validate():
        return _order_page(order, 422, cancel_form=form)
    try:
        refunds.cancel_order(
            organization=g.organization,
            actor=current_actor(),
            order=order,
            reason=form.reason.data,
            method=form.method.data,
            reference=form.reference.data or "",
        )
    except DomainError as error:
        db.session.rollback()
        apply_error(form, error)
        return _order_page(order, 422, cancel_form=form)
    db.session.commit()
    waiting = stripe_refund_views.refund_in_progress(order)
    if waiting is not None:
        return stripe_refund_views.after_refund(order, waiting, cancelled=True)
    flash(_("The order is cancelled."), "success")
    return _back(order)


@blueprint.post("/orders/<int:order_id>/send-invoice")
@sell_required
def order_send_invoice(order_id: int) -> Any:
    order = _order_or_404(order_id)
    form = SendInvoiceForm(prefix="invoice")
    if not form.validate():
        return _order_page(order, 422, invoice_form=form)
    try:
        address = communications.request_invoice_mail(
            organization=g.organization,
            actor=current_actor(),
            order=order,
            to=form.email.data,
            locale=form.locale.data,
        )
    except DomainError as error:
        db.session.rollback()
        apply_error(form, error)
        return _order_page(order, 422, invoice_form=form)
    db.session.commit()
    flash(_("The invoice is being sent to %(email)s.", email=address), "success")
    return redirect(request.form.get("next") or url_for("billing_admin.order", order_id=order.id))


# --------------------------------------------------------------------------- documents


def pdf_response(data: bytes, filename: str, *, inline: bool = True) -> Response:
    response = Response(data, mimetype=invoices.PDF_CONTENT_TYPE)
    disposition = "inline" if inline else "attachment"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blueprint.get("/orders/<int:order_id>/invoice.pdf")
@sell_required
def order_invoice_pdf(order_id: int) -> Any:
    order = _order_or_404(order_id)
    invoice = invoices.invoice_of(order)
    return pdf_response(invoices.invoice_pdf_bytes(invoice), invoices.pdf_filename(invoice))


@blueprint.get("/orders/<int:order_id>/credit-notes/<int:note_id>.pdf")
@sell_required
def order_credit_note_pdf(order_id: int, note_id: int) -> Any:
    order = _order_or_404(order_id)
    note = db.session.get(CreditNote, note_id)
    if note is None or note.order_id != order.id:
        abort(404)
    return pdf_response(invoices.credit_note_pdf_bytes(note), invoices.pdf_filename(note))
