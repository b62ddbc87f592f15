"""Staff pages of Stripe Terminal: the readers panel of the shop settings ("Stripe reader" tab)
and an order's reader page, where a payment on a reader is followed live, cancelled, tried again
on another reader, or — with simulated payments — played with test cards.

Under ``/o/<org_slug>/admin``. The readers panel is drawn inside the shop settings' layout by
``storefront_admin.shop_settings``, which hands the tab to :func:`readers_tab`; owners and
admins manage readers (``manage_shops``), every seller takes payments on them (``sell``).

The reader page polls ``…/reader/status``: while a payment is on a reader and no event came for
a few seconds, that answer asks Stripe itself (the fallback for late or lost webhooks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.routing import BuildError

from comptoir.billing import stripe_payments, stripe_terminal, stripe_terminal_payments
from comptoir.billing.models import MoneyState, Order, OrderState, Payment
from comptoir.billing.money import format_money
from comptoir.billing.orders import figures, state_label
from comptoir.billing.stripe_gateway import (
    GatewayConfigurationError,
    StripeGatewayError,
    current_gateway,
)
from comptoir.billing.stripe_models import TerminalReader
from comptoir.platform.db import db
from comptoir.platform.errors import DomainError, NotFoundError
from comptoir.platform.i18n import select_locale
from comptoir.tenants import navigation
from comptoir.tenants.context import current_actor, current_role, install_organization_url_handling
from comptoir.tenants.guards import staff_required
from comptoir.tenants.permissions import Permission, role_can

blueprint = Blueprint("billing_terminal", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)

sell_required = staff_required(Permission.SELL)
# Ask Stripe from the status answer when no event came for this long (seconds).
POLL_AFTER_SETTING = "TERMINAL_POLL_AFTER_SECONDS"
DEFAULT_POLL_AFTER = 3.0
POLL_INTERVAL_MS = 1500
SESSION_KEY = "terminal_reader"
MAX_NEXT = 2000


# --------------------------------------------------------------------------- shared helpers


def _remembered_reader_id() -> int | None:
    organization = g.get("organization")
    if organization is None:
        return None
    value = session.get(f"{SESSION_KEY}:{organization.id}")
    return value if isinstance(value, int) else None


def remember_reader(reader: TerminalReader) -> None:
    """The reader a cashier used last is offered first next time (in this browser)."""
    session[f"{SESSION_KEY}:{reader.organization_id}"] = reader.id


def after_checkout(next_action: dict[str, Any] | None, back: str) -> str | None:
    """Where step 3 goes when the order's total was sent to a reader: the reader page, which
    comes ``back`` (the order's confirmation) once the payment is over. None otherwise."""
    if not next_action or next_action.get("type") != "terminal_reader":
        return None
    organization = g.get("organization")
    reader_id = next_action.get("reader_id")
    if organization is not None and isinstance(reader_id, int):
        session[f"{SESSION_KEY}:{organization.id}"] = reader_id
    url = next_action.get("url")
    if not url:
        return None
    return f"{url}?{urlencode({'next': back})}"


def simulated() -> bool:
    """Whether payments are simulated (pages say so, and offer the test cards)."""
    try:
        return bool(current_gateway().simulated)
    except GatewayConfigurationError:
        return False


def stripe_page_url() -> str | None:
    """The admin's Stripe page, for roles that may connect Stripe (once the page exists)."""
    endpoint = navigation.find_item("stripe").endpoint
    if not endpoint or not role_can(current_role(), Permission.MANAGE_STRIPE):
        return None
    try:
        return url_for(endpoint)
    except BuildError:
        return None


@dataclass
class ReaderChoice:
    """What a staff page needs to offer a payment on a reader."""

    ready: bool
    readers: list[TerminalReader] = field(default_factory=list)
    chosen_id: int | None = None
    simulated: bool = False

    def label(self, reader: TerminalReader) -> str:
        return _(
            "%(label)s (%(status)s)",
            label=reader.label,
            status=stripe_terminal.status_label(reader.status),
        )


@blueprint.app_template_global("terminal_choice")
def terminal_choice() -> ReaderChoice:
    """For step 3 and an order's page: the readers, the one used last, whether Stripe is ready."""
    organization = g.get("organization")
    if organization is None:
        return ReaderChoice(ready=False)
    account = stripe_payments.connected_account(organization)
    readers = stripe_terminal.list_readers()
    remembered = _remembered_reader_id()
    ids = [reader.id for reader in readers]
    return ReaderChoice(
        ready=account is not None and account.charges_enabled,
        readers=readers,
        chosen_id=remembered if remembered in ids else (ids[0] if ids else None),
        simulated=simulated(),
    )


def safe_next(value: str | None) -> str:
    """A path in this site to go back to, or "" (never another site)."""
    target = (value or "").strip()
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return ""
    return target[:MAX_NEXT]


# --------------------------------------------------------------------------- the readers tab


def _tab_context(**extra: Any) -> dict[str, Any]:
    organization = g.organization
    account = stripe_payments.connected_account(organization)
    remove_id = request.args.get("remove", "")
    to_remove = None
    if remove_id.isdigit():
        try:
            to_remove = stripe_terminal.get_reader(remove_id)
        except NotFoundError:
            to_remove = None
    return {
        "readers": stripe_terminal.list_readers(),
        "connected": account is not None,
        "ready": account is not None and account.charges_enabled,
        "stripe_url": stripe_page_url(),
        "simulated": simulated(),
        "device_name": stripe_terminal.device_name,
        "status_label": stripe_terminal.status_label,
        "is_busy": stripe_terminal.is_busy,
        "to_remove": to_remove,
        "errors": {},
        "message": "",
        "note": "",
        "values": {},
        "action": "",
        "target": "",
        **extra,
    }


def readers_tab(*, render: Callable[[dict[str, Any], int], Any], here: str) -> Any:
    """The shop settings' "Stripe reader" tab, GET and POST.

    ``render(context, status)`` draws the panel inside the caller's layout; ``here`` is the tab's
    own URL, where a successful change returns.
    """
    if request.method == "POST":
        return _change_readers(render, here)
    note = ""
    account = stripe_payments.connected_account(g.organization)
    if account is not None:
        try:
            stripe_terminal.sync_statuses(organization=g.organization, gateway=current_gateway())
            db.session.commit()
        except StripeGatewayError:
            db.session.rollback()
            note = _("Stripe could not be reached: the statuses shown may be out of date.")
    return render(_tab_context(note=note), 200)


def _change_readers(render: Callable[[dict[str, Any], int], Any], here: str) -> Any:
    action = request.form.get("action", "")
    organization = g.organization
    actor = current_actor()
    gateway = current_gateway()
    reader_id = request.form.get("reader_id", "")
    try:
        if action == "register":
            reader = stripe_terminal.register_reader(
                organization=organization,
                actor=actor,
                gateway=gateway,
                registration_code=request.form.get("registration_code", ""),
                label=request.form.get("label", ""),
            )
            done = _("The reader “%(label)s” is registered.", label=reader.label)
        elif action == "rename":
            reader = stripe_terminal.rename_reader(
                organization=organization,
                actor=actor,
                gateway=gateway,
                reader=stripe_terminal.get_reader(reader_id),
                label=request.form.get("label", ""),
            )
            done = _("The reader is renamed “%(label)s”.", label=reader.label)
        elif action == "remove":
            reader = stripe_terminal.get_reader(reader_id)
            label = reader.label
            stripe_terminal.remove_reader(
                organization=organization, actor=actor, gateway=gateway, reader=reader
            )
            done = _("The reader “%(label)s” is removed.", label=label)
        else:
            abort(400)
    except NotFoundError:
        db.session.rollback()
        abort(404)
    except DomainError as error:
        db.session.rollback()
        errors = dict(error.fields)
        if action == "rename" and "label" in errors:
            errors = {f"label-{reader_id}": errors.pop("label"), **errors}
        context = _tab_context(
            errors=errors,
            message=error.message,
            values=request.form,
            action=action,
            target=reader_id,
        )
        return render(context, error.status)
    db.session.commit()
    flash(done, "success")
    return redirect(here, code=303)


# --------------------------------------------------------------------------- an order's reader page


def _order_or_404(order_id: int) -> Order:
    order = db.session.get(Order, order_id)
    if order is None:
        abort(404)
    return order


def _poll_after() -> float:
    return float(current_app.config.get(POLL_AFTER_SETTING, DEFAULT_POLL_AFTER))


def _poll(payment: Payment | None) -> bool:
    """The polling fallback; False when Stripe could not be asked (the state may be stale)."""
    if payment is None or payment.state is not MoneyState.PROCESSING:
        return True
    try:
        stripe_terminal_payments.poll_payment(
            organization=g.organization,
            gateway=current_gateway(),
            payment=payment,
            after=_poll_after(),
        )
    except StripeGatewayError:
        db.session.rollback()
        return False
    db.session.commit()
    return True


def _money(amount: int, currency: str) -> str:
    return format_money(amount, currency, select_locale())


def _reader_page(
    order: Order,
    *,
    status: int = 200,
    errors: dict[str, list[str]] | None = None,
    message: str = "",
) -> Any:
    payment = stripe_terminal_payments.latest_payment(order)
    current = figures(order)
    progress = stripe_terminal_payments.progress(payment) if payment is not None else None
    choice = terminal_choice()
    if payment is not None and request.method == "GET":
        chosen = stripe_terminal.reader_taking(payment)
        if chosen is not None:
            remember_reader(chosen)
    next_url = safe_next(request.values.get("next"))
    return (
        render_template(
            "billing/terminal/reader.html",
            order=order,
            payment=payment,
            progress=progress,
            current=current,
            choice=choice,
            can_start=order.state is OrderState.AWAITING_PAYMENT
            and current.balance - current.pending_payments > 0,
            next_url=next_url,
            done_url=next_url or url_for("billing_admin.order", order_id=order.id),
            money=lambda amount: _money(amount, order.currency),
            state_label=state_label,
            errors=errors or {},
            message=message,
            poll_interval=POLL_INTERVAL_MS,
        ),
        status,
    )


def _back(order: Order) -> Any:
    next_url = safe_next(request.form.get("next"))
    arguments: dict[str, Any] = {"order_id": order.id}
    if next_url:
        arguments["next"] = next_url
    return redirect(url_for(".reader_page", **arguments), code=303)


@blueprint.get("/orders/<int:order_id>/reader")
@sell_required
def reader_page(order_id: int) -> Any:
    order = _order_or_404(order_id)
    _poll(stripe_terminal_payments.latest_payment(order))
    return _reader_page(_order_or_404(order_id))


@blueprint.post("/orders/<int:order_id>/reader")
@sell_required
def start_payment(order_id: int) -> Any:
    """Take what is left to pay of the order on the chosen reader."""
    order = _order_or_404(order_id)
    try:
        reader = stripe_terminal.chosen_reader(request.form.get("reader_id"))
        started = stripe_terminal_payments.start_reader_payment(
            organization=g.organization,
            actor=current_actor(),
            gateway=current_gateway(),
            order=order,
            reader=reader,
        )
    except DomainError as error:
        db.session.rollback()
        return _reader_page(
            _order_or_404(order_id),
            status=error.status,
            errors=error.fields,
            message=error.message,
        )
    remember_reader(started.reader)
    db.session.commit()
    if started.refused:
        flash(started.refused, "error")
    return _back(order)


@blueprint.get("/orders/<int:order_id>/reader/status")
@sell_required
def reader_status(order_id: int) -> Any:
    """Where the order's reader payment stands (the page polls this; it may ask Stripe)."""
    order = _order_or_404(order_id)
    payment = stripe_terminal_payments.latest_payment(order)
    fresh = _poll(payment)
    order = _order_or_404(order_id)
    payment = stripe_terminal_payments.latest_payment(order)
    current = figures(order)
    answer: dict[str, Any] = {
        "order_state": order.state.value,
        "order_state_label": state_label(order.state),
        "balance": current.balance,
        "balance_label": _money(current.balance, order.currency),
        "stale": not fresh,
    }
    if payment is None:
        answer.update(state="none", message="", final=True, payment_id=None, payment_state=None)
    else:
        progress = stripe_terminal_payments.progress(payment)
        answer.update(
            state=progress.state,
            message=progress.message,
            final=progress.final,
            payment_id=payment.id,
            payment_state=payment.state.value,
        )
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response


def _processing_payment(order: Order) -> Payment:
    payment = stripe_terminal_payments.latest_payment(order)
    if payment is None:
        abort(404)
    return payment


@blueprint.post("/orders/<int:order_id>/reader/cancel")
@sell_required
def cancel_payment(order_id: int) -> Any:
    order = _order_or_404(order_id)
    payment = _processing_payment(order)
    try:
        stripe_terminal_payments.cancel_reader_payment(
            organization=g.organization,
            actor=current_actor(),
            gateway=current_gateway(),
            payment=payment,
        )
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return _back(order)
    db.session.commit()
    if payment.state is MoneyState.SUCCEEDED:
        flash(_("The card went through before the cancel: the payment is received."), "error")
    else:
        flash(_("The payment on the reader is cancelled."), "success")
    return _back(order)


@blueprint.post("/orders/<int:order_id>/reader/simulate")
@sell_required
def simulate(order_id: int) -> Any:
    """Simulated payments only: the test buttons play a customer's card on the reader."""
    order = _order_or_404(order_id)
    payment = _processing_payment(order)
    try:
        stripe_terminal_payments.simulate_card(
            organization=g.organization,
            gateway=current_gateway(),
            payment=payment,
            card=request.form.get("card", ""),
        )
    except NotFoundError:
        abort(404)
    except DomainError as error:
        flash(error.message, "error")
    return _back(order)


__all__ = [
    "after_checkout",
    "blueprint",
    "readers_tab",
    "remember_reader",
    "safe_next",
    "terminal_choice",
]
