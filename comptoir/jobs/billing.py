"""Billing jobs and sweeps: invoice PDFs, the shop's e-mails, unpaid e-Transfer orders, and the
reconciliation with Stripe.

Billing services enqueue these by name through the outbox; they run here, above every layer, so
they may read the shop an order was placed in (its e-mail templates and e-Transfer settings)
from the storefront and hand plain settings to billing.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask_babel import force_locale
from flask_babel import gettext as _

from comptoir.billing import communications, idempotency, invoices, refunds, stripe_reconcile
from comptoir.billing.communications import CommunicationSettings
from comptoir.billing.models import CreditNote, Method, Order, OrderState, Refund
from comptoir.jobs.schedules import schedule
from comptoir.jobs.tenant import tenant_job
from comptoir.platform.db import db, utcnow
from comptoir.platform.outbox import Queue
from comptoir.platform.tenancy import unscoped
from comptoir.storefront.models import Shop

SWEEP_BATCH = 200
# Orders whose reminder or cancellation time came while the scheduler was down still get it.
OVERDUE_GRACE = timedelta(days=30)


def _shop_settings(order: Order) -> tuple[CommunicationSettings, str]:
    """The e-mail settings and the name of the shop the order was placed in."""
    shop = db.session.get(Shop, order.shop_id) if order.shop_id is not None else None
    if shop is None:
        return CommunicationSettings.from_dict({}), ""
    return CommunicationSettings.from_dict(shop.communication), shop.localized("name", order.locale)


@tenant_job("billing.order_placed")
def order_placed(*, organization_id: int, order_id: int) -> None:
    order = db.session.get(Order, order_id)
    if order is None:
        return
    settings, shop_name = _shop_settings(order)
    communications.queue_order_messages(order, settings=settings, shop_name=shop_name)


@tenant_job(invoices.INVOICE_PDF_JOB, queue=Queue.LOW)
def invoice_pdf(*, organization_id: int, invoice_id: int) -> None:
    invoices.build_invoice_pdf(invoice_id)


@tenant_job(invoices.CREDIT_NOTE_JOB)
def credit_note_issued(*, organization_id: int, credit_note_id: int) -> None:
    note = db.session.get(CreditNote, credit_note_id)
    if note is None:
        return
    refund = db.session.get(Refund, note.refund_id) if note.refund_id is not None else None
    if refund is not None and not refunds.refund_settled(refund):
        return  # the money is still on its way back: queued again once it has arrived (or not)
    order = db.session.get(Order, note.order_id)
    assert order is not None
    settings, shop_name = _shop_settings(order)
    communications.queue_credit_note_notice(note, settings=settings, shop_name=shop_name)


@tenant_job(communications.SEND_INVOICE_JOB)
def send_invoice(*, organization_id: int, order_id: int, to: str, locale: str) -> None:
    order = db.session.get(Order, order_id)
    if order is None:
        return
    communications.queue_invoice(order, to=to, locale=locale)


@tenant_job("billing.etransfer_remind")
def etransfer_remind(*, organization_id: int, order_id: int) -> None:
    order = db.session.execute(
        sa.select(Order).where(Order.id == order_id).with_for_update()
    ).scalar_one_or_none()
    if order is None or order.state is not OrderState.AWAITING_PAYMENT:
        return
    _settings, shop_name = _shop_settings(order)
    communications.queue_etransfer_reminder(order, shop_name=shop_name)


@tenant_job("billing.etransfer_cancel")
def etransfer_cancel(*, organization_id: int, order_id: int) -> None:
    order = db.session.get(Order, order_id)
    if order is None:
        return
    with force_locale(order.locale):
        reason = _("The Interac e-Transfer was not received in time.")
    refunds.auto_cancel_unpaid(order_id=order_id, reason=reason)


@schedule("billing.unpaid_etransfer", every=300)
def unpaid_etransfer_sweep() -> str:
    """Remind, then cancel, e-Transfer orders still unpaid past their shop's delays."""
    now = utcnow()
    with unscoped():
        base = sa.select(Order.organization_id, Order.id).where(
            Order.state == OrderState.AWAITING_PAYMENT,
            Order.checkout_method == Method.ETRANSFER,
        )
        to_cancel = db.session.execute(
            base.where(Order.expires_at <= now, Order.expires_at > now - OVERDUE_GRACE)
            .order_by(Order.id)
            .limit(SWEEP_BATCH)
        ).all()
        to_remind = db.session.execute(
            base.where(
                Order.remind_at <= now,
                Order.reminded_at.is_(None),
                sa.or_(Order.expires_at.is_(None), Order.expires_at > now),
            )
            .order_by(Order.id)
            .limit(SWEEP_BATCH)
        ).all()
    db.session.rollback()
    for organization_id, order_id in to_remind:
        etransfer_remind(organization_id=organization_id, order_id=order_id)
    for organization_id, order_id in to_cancel:
        etransfer_cancel(organization_id=organization_id, order_id=order_id)
    return f"{len(to_remind)} reminder(s), {len(to_cancel)} cancellation(s)"


@schedule("billing.stripe_reconcile", every=stripe_reconcile.INTERVAL_SECONDS, queue=Queue.LOW)
def stripe_reconcile_sweep() -> str:
    """Catch up with Stripe: undelivered events, payments and refunds stuck in progress."""
    return str(stripe_reconcile.reconcile())


@schedule("billing.idempotency_purge", every=3600)
def purge_idempotency_keys() -> str:
    with unscoped():
        deleted = idempotency.purge_old()
    return f"{deleted} idempotency key(s) deleted"


__all__ = [
    "credit_note_issued",
    "etransfer_cancel",
    "etransfer_remind",
    "invoice_pdf",
    "order_placed",
    "purge_idempotency_keys",
    "send_invoice",
    "stripe_reconcile_sweep",
    "unpaid_etransfer_sweep",
]
