"""Staff pages of refunds through Stripe: what follows a card refund, and the page where an
Interac debit is refunded with the customer's card on a reader.

Under ``/o/<org_slug>/admin``, for staff who may refund. The reader page polls
``…/reader/status`` (the same script as the reader payment page); that answer asks Stripe about
the reader, the fallback when its events are late.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from comptoir.billing import stripe_refunds, stripe_terminal
from comptoir.billing.models import MoneyState, Order, Refund
from comptoir.billing.money import format_money
from comptoir.billing.orders import state_label
from comptoir.billing.stripe_gateway import StripeGatewayError, current_gateway
from comptoir.billing.stripe_models import TerminalReader
from comptoir.billing.stripe_payments import STRIPE_METHODS
from comptoir.billing.views.terminal import POLL_INTERVAL_MS, simulated, terminal_choice
from comptoir.platform.db import db
from comptoir.platform.errors import DomainError
from comptoir.platform.i18n import select_locale
from comptoir.tenants.context import current_actor, install_organization_url_handling
from comptoir.tenants.guards import staff_required
from comptoir.tenants.permissions import Permission

blueprint = Blueprint("billing_stripe_refunds", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)

refund_required = staff_required(Permission.REFUND)
# Test cards the simulated reader plays for a refund: an Interac card, and one it declines.
SIMULATED_CARDS = {"interac": None, "declined": "4000000000000002"}


# --------------------------------------------------------------------------- after the form


def refund_in_progress(order: Order) -> Refund | None:
    """The order's refund through Stripe still under way, if any (after a cancellation)."""
    return db.session.execute(
        sa.select(Refund)
        .where(
            Refund.order_id == order.id,
            Refund.method.in_(STRIPE_METHODS),
            Refund.state.in_((MoneyState.PENDING, MoneyState.PROCESSING)),
        )
        .order_by(Refund.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def after_refund(order: Order, refund: Refund, *, cancelled: bool = False) -> Any:
    """Where the order page goes once a refund through Stripe is asked for, and what it says."""
    if stripe_refunds.waits_for_card(refund):
        flash(
            _(
                "This payment was an Interac debit on a reader: it is refunded with the card "
                "present. Choose a reader and ask the customer to present their card."
            ),
            "success",
        )
        return redirect(reader_url(refund), code=303)
    if cancelled:
        flash(
            _(
                "The order is cancelled. The refund is sent to Stripe: the customer is e-mailed "
                "once Stripe confirms it."
            ),
            "success",
        )
    else:
        flash(
            _(
                "The refund is sent to Stripe. Its credit note is issued and the customer "
                "e-mailed once Stripe confirms it."
            ),
            "success",
        )
    return redirect(url_for("billing_admin.order", order_id=order.id), code=303)


def reader_url(refund: Refund) -> str:
    return url_for(
        "billing_stripe_refunds.reader_page", order_id=refund.order_id, refund_id=refund.id
    )


@blueprint.app_template_global("refund_reader_url")
def refund_reader_url(refund: Refund) -> str | None:
    """For an order's page: the reader page of a refund that waits for the customer's card."""
    if not stripe_refunds.waits_for_card(refund):
        return None
    return reader_url(refund)


# --------------------------------------------------------------------------- the reader page


def _refund_or_404(order_id: int, refund_id: int) -> tuple[Order, Refund]:
    order = db.session.get(Order, order_id)
    refund = db.session.get(Refund, refund_id)
    if (
        order is None
        or refund is None
        or refund.order_id != order.id
        or not refund.details.get("needs_card_present")
    ):
        abort(404)
    return order, refund


def _messages(refund: Refund, progress: stripe_refunds.ReaderRefundProgress) -> str:
    reader_id = str(refund.details.get("reader_id") or "")
    label = ""
    if reader_id:
        label = (
            db.session.execute(
                sa.select(TerminalReader.label).where(TerminalReader.reader_id == reader_id)
            ).scalar_one_or_none()
            or ""
        )
    if progress.status == "waiting" and refund.state is MoneyState.PROCESSING:
        return _("The card was read: Stripe is completing the refund.")
    texts = {
        "choose_reader": _(
            "Choose a reader, then ask the customer to present the card they paid with."
        ),
        "waiting": _("Waiting for the customer's card on “%(label)s”…", label=label),
        "declined": _(
            "The card was declined on the reader (%(reason)s). Try again.", reason=progress.message
        ),
        "succeeded": _("Refunded: the money is back on the customer's card."),
        "failed": _("Stripe could not give the money back."),
        "cancelled": _("This refund was abandoned: nothing was given back."),
    }
    return texts[progress.status]


# The reader page script's words: "approved" shows the way back, "declined" the reader choice.
_SCRIPT_STATES = {
    "waiting": "waiting",
    "succeeded": "approved",
    "declined": "declined",
    "choose_reader": "declined",
    "failed": "failed",
    "cancelled": "failed",
}


def _progress(refund: Refund) -> tuple[stripe_refunds.ReaderRefundProgress, bool]:
    """Where the refund stands, asking the reader when one has it; False when Stripe could not
    be asked (what is shown may be stale)."""
    try:
        progress = stripe_refunds.reader_refund_progress(
            organization=g.organization, gateway=current_gateway(), refund=refund
        )
    except StripeGatewayError:
        db.session.rollback()
        return stripe_refunds.refund_progress(refund), False
    db.session.commit()
    return progress, True


def _page(
    order: Order,
    refund: Refund,
    *,
    status: int = 200,
    errors: dict[str, list[str]] | None = None,
    message: str = "",
) -> Any:
    progress, fresh = _progress(refund)
    return (
        render_template(
            "billing/refunds/reader.html",
            order=order,
            refund=refund,
            progress=progress,
            progress_message=_messages(refund, progress),
            script_state=_SCRIPT_STATES[progress.status],
            final=progress.status != "waiting",
            stale=not fresh,
            choice=terminal_choice(),
            money=lambda amount: format_money(amount, order.currency, select_locale()),
            state_label=state_label,
            errors=errors or {},
            message=message,
            poll_interval=POLL_INTERVAL_MS,
        ),
        status,
    )


@blueprint.get("/orders/<int:order_id>/refunds/<int:refund_id>/reader")
@refund_required
def reader_page(order_id: int, refund_id: int) -> Any:
    order, refund = _refund_or_404(order_id, refund_id)
    return _page(order, refund)


@blueprint.post("/orders/<int:order_id>/refunds/<int:refund_id>/reader")
@refund_required
def start(order_id: int, refund_id: int) -> Any:
    """Send the refund to the chosen reader."""
    order, refund = _refund_or_404(order_id, refund_id)
    try:
        stripe_refunds.start_reader_refund(
            organization=g.organization,
            actor=current_actor(),
            refund=refund,
            reader_id=request.form.get("reader_id"),
            gateway=current_gateway(),
        )
    except DomainError as error:
        db.session.rollback()
        order, refund = _refund_or_404(order_id, refund_id)
        return _page(order, refund, status=error.status, errors=error.fields, message=error.message)
    db.session.commit()
    return redirect(reader_url(refund), code=303)


@blueprint.get("/orders/<int:order_id>/refunds/<int:refund_id>/reader/status")
@refund_required
def status(order_id: int, refund_id: int) -> Any:
    """Where the refund stands (the page polls this; it may ask Stripe about the reader)."""
    order, refund = _refund_or_404(order_id, refund_id)
    progress, fresh = _progress(refund)
    order, refund = _refund_or_404(order_id, refund_id)
    response = jsonify(
        state=_SCRIPT_STATES[progress.status],
        refund_state=refund.state.value,
        message=_messages(refund, progress),
        final=progress.status != "waiting",
        order_state=order.state.value,
        order_state_label=state_label(order.state),
        stale=not fresh,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _act_on_reader_refund(
    action: Callable[..., None], refund: Refund, *, done: str, then: str
) -> Any:
    """Run ``action`` on the refund: on success commit, say ``done`` and go to ``then``; a
    refusal (ours or Stripe's) is said on the reader's page."""
    try:
        action(
            organization=g.organization,
            actor=current_actor(),
            refund=refund,
            gateway=current_gateway(),
        )
    except (DomainError, StripeGatewayError) as error:
        db.session.rollback()
        flash(getattr(error, "user_message", None) or str(error), "error")
        return redirect(reader_url(refund), code=303)
    db.session.commit()
    flash(done, "success")
    return redirect(then, code=303)


@blueprint.post("/orders/<int:order_id>/refunds/<int:refund_id>/reader/cancel")
@refund_required
def cancel(order_id: int, refund_id: int) -> Any:
    """Stop waiting for the card on the reader (the refund may be tried again)."""
    _order, refund = _refund_or_404(order_id, refund_id)
    return _act_on_reader_refund(
        stripe_refunds.cancel_reader_refund,
        refund,
        done=_("The reader stopped waiting for the card."),
        then=reader_url(refund),
    )


@blueprint.post("/orders/<int:order_id>/refunds/<int:refund_id>/reader/abandon")
@refund_required
def abandon(order_id: int, refund_id: int) -> Any:
    """Give up on the refund: nothing goes back, and the amount may be refunded otherwise."""
    order, refund = _refund_or_404(order_id, refund_id)
    return _act_on_reader_refund(
        stripe_refunds.abandon_refund,
        refund,
        done=_("The refund is abandoned: nothing was given back."),
        then=url_for("billing_admin.order", order_id=order.id),
    )


@blueprint.post("/orders/<int:order_id>/refunds/<int:refund_id>/reader/simulate")
@refund_required
def simulate(order_id: int, refund_id: int) -> Any:
    """Simulated payments only: play the customer's Interac card on the reader."""
    _order, refund = _refund_or_404(order_id, refund_id)
    card = request.form.get("card", "")
    reader_id = str(refund.details.get("reader_id") or "")
    if not simulated() or card not in SIMULATED_CARDS:
        abort(404)
    if not reader_id or not stripe_refunds.waits_for_card(refund):
        flash(_("No reader is waiting for a card for this refund."), "error")
        return redirect(reader_url(refund), code=303)
    try:
        current_gateway().simulate_present_payment_method(
            str(refund.details["account"]),
            reader_id,
            type="interac_present",
            card_number=SIMULATED_CARDS[card],
        )
    except StripeGatewayError as error:
        flash(stripe_terminal.refusal(error).message, "error")
    return redirect(reader_url(refund), code=303)


__all__ = ["after_refund", "blueprint", "refund_in_progress", "refund_reader_url"]
