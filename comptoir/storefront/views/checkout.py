"""Checkout pages: 2. Your information, 3. Payment, 4. Confirmation.

A customer reaches their cart through the shop's cart cookie; staff of the organization (who may
sell) reach any cart of it and get the orange extras: the Customer switch (off: a counter sale),
another checkout form, a customer picked from the database (the form prefilled and editable),
methods customers don't have (cash with change due, pay later, other), and at step 4 e-mailing
the invoice and taking further payments (split tender).

Step 3 carries a one-time nonce: the same page submitted twice (a double click) claims the same
idempotency key and the second submit answers the first one's order.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from comptoir.billing import communications, idempotency, payments
from comptoir.billing import orders as order_services
from comptoir.billing.documents import method_label
from comptoir.billing.etransfer import order_instructions
from comptoir.billing.forms import parse_amount
from comptoir.billing.invoices import download_signature, invoice_of
from comptoir.billing.models import Method, MoneyState, Order, OrderState, Payment
from comptoir.billing.money import amount_input
from comptoir.billing.payment_methods import Audience
from comptoir.billing.presenters import describe_answers
from comptoir.billing.views import terminal as terminal_views
from comptoir.platform.db import db
from comptoir.platform.errors import DomainError, NotFoundError, ValidationError
from comptoir.platform.i18n import select_locale
from comptoir.storefront import carts
from comptoir.storefront import checkout as checkout_services
from comptoir.storefront.cart_models import Cart, CartStatus
from comptoir.storefront.checkout_forms import OWNER_KEYS, Selection, list_forms, localized
from comptoir.storefront.views.cart import cookie_name
from comptoir.storefront.visibility import ShopView, view_shop
from comptoir.tenants import services as tenant_services
from comptoir.tenants.context import current_actor, current_role, install_organization_url_handling
from comptoir.tenants.models import Customer
from comptoir.tenants.permissions import Permission, role_can

blueprint = Blueprint("storefront_checkout", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)

CUSTOMER_RESULTS = 10


# --------------------------------------------------------------------------- reaching the cart


def _view(shop_slug: str) -> ShopView:
    view = view_shop(shop_slug)
    if view is None:
        abort(404)
    return view


def _is_seller(view: ShopView) -> bool:
    return view.is_staff and carts.can_manage_carts(current_role())


def _cart(view: ShopView, cart_id: int) -> Cart:
    try:
        cart = carts.reachable_cart(
            cart_id,
            token=request.cookies.get(cookie_name(view.shop.id)),
            is_staff=_is_seller(view),
        )
    except NotFoundError:
        abort(404)
    if cart.shop_id != view.shop.id:
        abort(404)
    return cart


def _locked(view: ShopView) -> Any:
    if view.unlocked:
        return None
    return redirect(
        url_for("storefront_shop.unlock_form", shop_slug=view.shop.slug, next=request.path)
    )


def _closed(view: ShopView, cart: Cart) -> Any:
    """The page for a cart that cannot be checked out any more, else None."""
    if cart.status is CartStatus.CHECKED_OUT:
        return (
            render_template(
                "storefront/checkout/closed.html",
                view=view,
                shop=view.shop,
                cart=cart,
                reason="checked_out",
            ),
            409,
        )
    return None


def _common(view: ShopView, cart: Cart) -> dict[str, Any]:
    locale = select_locale()
    carts.remember_locale(cart, locale)
    summary = carts.summarize(cart, locale=locale)
    return {
        "view": view,
        "shop": view.shop,
        "cart": cart,
        "summary": summary,
        "staff": _is_seller(view),
        "expired": carts.is_expired(cart),
        "can": {
            "manage_shops": role_can(current_role(), Permission.MANAGE_SHOPS),
            "manage_catalog": role_can(current_role(), Permission.MANAGE_CATALOG),
        },
    }


# --------------------------------------------------------------------------- step 2


def answers_from_form(
    fields: list[dict[str, Any]], form: MultiDict[str, str], *, capture: bool
) -> dict[str, Any]:
    """The answers a page posted, shaped as the API takes them (checked by the service)."""
    answers: dict[str, Any] = {}
    if not capture:
        return answers
    for key in OWNER_KEYS:
        answers[key] = form.get(f"answers-{key}", "")
    for definition in fields:
        key, kind = definition["key"], definition["type"]
        name = f"answers-{key}"
        if kind == "heading":
            continue
        if kind == "checkbox":
            answers[key] = form.get(name) == "1"
        elif kind == "multiple_choice":
            answers[key] = form.getlist(name)
        elif kind == "consent":
            accepted = form.get(f"{name}-accepted") == "1"
            signature = form.get(f"{name}-signature") or None
            typed = (form.get(f"{name}-typed") or "").strip() or None
            if accepted or signature or typed:
                answers[key] = {
                    "accepted": accepted,
                    "signature_png": signature,
                    "typed_name": typed,
                }
        else:
            answers[key] = form.get(name, "")
    return answers


def _prefill(customer: Customer | None) -> dict[str, Any]:
    if customer is None:
        return {}
    return {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "email": customer.email,
        "phone": customer.phone,
    }


def _int_arg(name: str) -> int | None:
    value = request.values.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _information_page(
    view: ShopView,
    cart: Cart,
    *,
    selection: Selection,
    values: dict[str, Any],
    counter_sale: bool,
    customer: Customer | None,
    errors: dict[str, list[str]] | None = None,
    message: str = "",
    status: int = 200,
) -> Any:
    staff = _is_seller(view)
    q = request.args.get("q", "").strip()[:100] if staff else ""
    found: list[Customer] = []
    if staff and q:
        found = list(
            db.session.execute(
                tenant_services.search_customers_query(q).limit(CUSTOMER_RESULTS)
            ).scalars()
        )
    return (
        render_template(
            "storefront/checkout/information.html",
            **_common(view, cart),
            selection=selection,
            fields=selection.fields,
            values=values,
            errors=errors or {},
            message=message,
            counter_sale=counter_sale,
            customer=customer,
            forms=list_forms() if staff else [],
            q=q,
            found=found,
            localized=localized,
            locale=select_locale(),
        ),
        status,
    )


def _staff_choices(
    view: ShopView, draft: checkout_services.CheckoutDraft | None
) -> tuple[bool, int | None, int | None]:
    """Counter sale, chosen form, picked customer: from the query (a switch), else the draft."""
    if not _is_seller(view):
        return False, None, None
    counter = request.args.get("counter")
    counter_sale = counter == "1" if counter in ("0", "1") else bool(draft and draft.counter_sale)
    form_id = (
        _int_arg("form") if "form" in request.args else (draft.chosen_form_id if draft else None)
    )
    if request.args.get("form") == "":
        form_id = None
    customer_id = (
        _int_arg("customer")
        if "customer" in request.args
        else (draft.customer_id if draft else None)
    )
    return counter_sale, form_id, customer_id


@blueprint.route("/<shop_slug>/carts/<int:cart_id>/checkout/information", methods=["GET", "POST"])
def information(shop_slug: str, cart_id: int) -> Any:
    view = _view(shop_slug)
    locked = _locked(view)
    if locked is not None:
        return locked
    cart = _cart(view, cart_id)
    closed = _closed(view, cart)
    if closed is not None:
        return closed
    draft = checkout_services.draft_of(cart)
    staff = _is_seller(view)
    if request.method == "POST":
        counter_sale = staff and request.form.get("customer_switch") != "on"
        chosen_form = _int_arg("checkout_form_id") if staff else None
        customer_id = _int_arg("customer_id") if staff and not counter_sale else None
    else:
        counter_sale, chosen_form, customer_id = _staff_choices(view, draft)
    try:
        selection = checkout_services.form_for(cart, view.shop, chosen_id=chosen_form)
    except NotFoundError:
        abort(404)
    customer = None
    if customer_id is not None:
        customer = db.session.get(Customer, customer_id)
        if customer is None:
            abort(404)
    if request.method == "GET":
        values: dict[str, Any] = dict(draft.answers) if draft is not None else {}
        if "customer" in request.args and customer is not None:
            values.update(_prefill(customer))
        if not carts.load_lines(cart):
            return redirect(url_for("storefront_cart.cart", shop_slug=view.shop.slug))
        db.session.commit()
        return _information_page(
            view,
            cart,
            selection=selection,
            values=values,
            counter_sale=counter_sale,
            customer=customer,
        )
    answers = answers_from_form(selection.fields, request.form, capture=not counter_sale)
    try:
        checkout_services.save_information(
            organization=g.organization,
            actor=current_actor(),
            cart=cart,
            shop=view.shop,
            is_staff=staff,
            answers=answers,
            counter_sale=counter_sale,
            customer_id=customer_id,
            chosen_form_id=chosen_form,
            ip=request.remote_addr or "",
        )
    except DomainError as error:
        db.session.rollback()
        cart = _cart(view, cart_id)
        return _information_page(
            view,
            cart,
            selection=checkout_services.form_for(cart, view.shop, chosen_id=chosen_form),
            values=answers,
            counter_sale=counter_sale,
            customer=customer,
            errors=error.fields,
            message=error.message,
            status=error.status,
        )
    db.session.commit()
    return redirect(url_for(".payment", shop_slug=view.shop.slug, cart_id=cart.id))


# --------------------------------------------------------------------------- step 3


def _payment_page(
    view: ShopView,
    cart: Cart,
    draft: checkout_services.CheckoutDraft,
    *,
    errors: dict[str, list[str]] | None = None,
    message: str = "",
    chosen: str = "",
    status: int = 200,
) -> Any:
    staff = _is_seller(view)
    methods = checkout_services.methods_for(view.shop, is_staff=staff)
    return (
        render_template(
            "storefront/checkout/payment.html",
            **_common(view, cart),
            draft=draft,
            methods=methods,
            chosen=chosen or (methods[0].name if methods else ""),
            errors=errors or {},
            message=message,
            form=request.form if request.method == "POST" else {},
            status_code=status,
        ),
        status,
    )


def _order_url(view: ShopView, token: str) -> str:
    return url_for(".confirmation", shop_slug=view.shop.slug, token=token)


@blueprint.route("/<shop_slug>/carts/<int:cart_id>/checkout/payment", methods=["GET", "POST"])
def payment(shop_slug: str, cart_id: int) -> Any:
    view = _view(shop_slug)
    locked = _locked(view)
    if locked is not None:
        return locked
    cart = _cart(view, cart_id)
    nonce = request.form.get("nonce", "") if request.method == "POST" else ""
    if nonce:
        # A second submit of the same page: answer the first one's order, whatever happened since.
        replay = _replayed_order(view, cart, nonce)
        if replay is not None:
            return replay
    closed = _closed(view, cart)
    if closed is not None:
        return closed
    draft = checkout_services.draft_of(cart)
    if draft is None or draft.completed_at is None:
        return redirect(url_for(".information", shop_slug=view.shop.slug, cart_id=cart.id))
    if request.method == "GET":
        db.session.commit()
        return _payment_page(view, cart, draft)
    return _place(view, cart, draft, nonce)


def _place(view: ShopView, cart: Cart, draft: checkout_services.CheckoutDraft, nonce: str) -> Any:
    """Step 3 confirmed: place the order once per page nonce, then go to step 4."""
    method = request.form.get("payment_method", "")
    cash_tendered: Any = None
    if method == Method.CASH.value:
        try:
            cash_tendered = parse_amount(request.form.get("cash_tendered"))
        except ValueError as problem:
            errors = {"cash_tendered": [str(problem)]}
            return _payment_page(view, cart, draft, errors=errors, chosen=method, status=422)
    if not nonce or nonce != draft.nonce:
        message = _("This page is out of date; check your choices and confirm again.")
        return _payment_page(view, cart, draft, message=message, chosen=method, status=409)
    cart_id = cart.id
    try:
        claimed = idempotency.claim(
            organization_id=g.organization.id,
            key=_nonce_key(cart, nonce),
            request_fingerprint=idempotency.fingerprint("POST", request.path, {"nonce": nonce}),
        )
        if isinstance(claimed, idempotency.Replay):
            db.session.rollback()
            return redirect(_order_url(view, claimed.body["token"]), code=303)
        placed = checkout_services.checkout_from_draft(
            organization=g.organization,
            actor=current_actor(),
            cart=cart,
            shop=view.shop,
            is_staff=_is_seller(view),
            payment_method=method,
            cash_tendered=cash_tendered,
            reference=request.form.get("reference", "").strip()[:200],
            reader_id=request.form.get("reader_id") if method == Method.TERMINAL.value else None,
            ip=request.remote_addr or "",
        )
        idempotency.remember(
            claimed, status=303, body={"order_id": placed.order.id, "token": placed.token}
        )
    except DomainError as error:
        db.session.rollback()
        cart = _cart(view, cart_id)
        fresh = checkout_services.draft_of(cart)
        if fresh is None:
            return redirect(url_for(".information", shop_slug=view.shop.slug, cart_id=cart.id))
        return _payment_page(
            view,
            cart,
            fresh,
            errors=error.fields,
            message=error.message,
            chosen=method,
            status=error.status,
        )
    change = placed.payment.change_due if placed.payment is not None else 0
    db.session.commit()
    if change:
        flash(_("Change due: %(change)s", change=_money(change)), "success")
    destination = _order_url(view, placed.token)
    if placed.next_action is not None and placed.next_action.get("type") == "stripe_payment":
        # Paid on the card page; the order's own page leads there again if the browser returns.
        destination = url_for("storefront_card.pay", shop_slug=view.shop.slug, token=placed.token)
    # Taken on a reader: its page follows the payment, then comes back here.
    destination = terminal_views.after_checkout(placed.next_action, destination) or destination
    return redirect(destination, code=303)


def _nonce_key(cart: Cart, nonce: str) -> str:
    return f"checkout-page:{cart.id}:{nonce[:100]}"


def _replayed_order(view: ShopView, cart: Cart, nonce: str) -> Any:
    from comptoir.billing.models import IdempotencyKey

    row = db.session.execute(
        sa.select(IdempotencyKey).where(IdempotencyKey.key == _nonce_key(cart, nonce))
    ).scalar_one_or_none()
    if row is None or not row.response_body:
        return None
    return redirect(_order_url(view, row.response_body["token"]), code=303)


def _money(amount: int) -> str:
    from comptoir.billing.money import format_money

    return format_money(amount, g.organization.currency, select_locale())


# --------------------------------------------------------------------------- step 4


def _order_by_token(view: ShopView, token: str) -> Order:
    order = order_services.find_order_by_token(token)
    if order is None or order.shop_id != view.shop.id:
        abort(404)
    return order


def _confirmation_page(
    view: ShopView, order: Order, token: str, *, status: int = 200, **extra: Any
) -> Any:
    locale = select_locale()
    current = order_services.figures(order)
    instructions = None
    if order.checkout_method is Method.ETRANSFER:
        instructions = order_instructions(
            order, organization_name=g.organization.name, locale=locale, balance=current.balance
        )
    invoice = invoice_of(order)
    paid_rows = db.session.execute(
        sa.select(Payment).where(Payment.order_id == order.id).order_by(Payment.id)
    ).scalars()
    staff = _is_seller(view)
    return (
        render_template(
            "storefront/checkout/confirmation.html",
            view=view,
            shop=view.shop,
            order=order,
            token=token,
            current=current,
            instructions=instructions,
            invoice=invoice,
            invoice_link=url_for(
                "billing_shop.invoice_pdf",
                invoice_id=invoice.id,
                signature=download_signature("invoice", g.organization.id, invoice.id),
            ),
            payments=[p for p in paid_rows if p.state is MoneyState.SUCCEEDED],
            answers=describe_answers(order.form_snapshot.get("fields", []), order.answers, locale),
            staff=staff,
            can_pay=staff and order.state is OrderState.AWAITING_PAYMENT and current.balance > 0,
            staff_methods=[
                m for m in checkout_services.methods_for(view.shop, is_staff=True) if m.recordable
            ]
            if staff
            else [],
            amount_input=amount_input,
            method_label=method_label,
            can={
                "manage_shops": role_can(current_role(), Permission.MANAGE_SHOPS),
                "manage_catalog": role_can(current_role(), Permission.MANAGE_CATALOG),
            },
            email_value=extra.pop("email_value", order.customer_email),
            errors=extra.pop("errors", {}),
            message=extra.pop("message", ""),
            **extra,
        ),
        status,
    )


@blueprint.get("/<shop_slug>/orders/<token>")
def confirmation(shop_slug: str, token: str) -> Any:
    view = _view(shop_slug)
    order = _order_by_token(view, token)
    return _confirmation_page(view, order, token)


@blueprint.post("/<shop_slug>/orders/<token>/send-invoice")
def send_invoice(shop_slug: str, token: str) -> Any:
    view = _view(shop_slug)
    if not _is_seller(view):
        abort(404)
    order = _order_by_token(view, token)
    email = request.form.get("email", "")
    try:
        address = communications.request_invoice_mail(
            organization=g.organization,
            actor=current_actor(),
            order=order,
            to=email,
            locale=request.form.get("locale") or None,
        )
    except ValidationError as error:
        db.session.rollback()
        return _confirmation_page(
            view,
            _order_by_token(view, token),
            token,
            status=422,
            errors=error.fields,
            email_value=email,
        )
    db.session.commit()
    flash(_("The invoice is being sent to %(email)s.", email=address), "success")
    return redirect(_order_url(view, token), code=303)


@blueprint.post("/<shop_slug>/orders/<token>/payments")
def take_payment(shop_slug: str, token: str) -> Any:
    view = _view(shop_slug)
    if not _is_seller(view):
        abort(404)
    order = _order_by_token(view, token)
    method = request.form.get("method", "")
    errors: dict[str, list[str]] = {}
    amount = tendered = None
    try:
        amount = parse_amount(request.form.get("amount"))
    except ValueError as problem:
        errors["amount"] = [str(problem)]
    if method == Method.CASH.value:
        try:
            tendered = parse_amount(request.form.get("cash_tendered"))
        except ValueError as problem:
            errors["cash_tendered"] = [str(problem)]
    if not errors:
        try:
            payment_row = payments.record_payment(
                organization=g.organization,
                actor=current_actor(),
                order=order,
                method=method,
                amount=amount,
                reference=request.form.get("reference", ""),
                cash_tendered=tendered,
            )
        except DomainError as error:
            db.session.rollback()
            errors = error.fields or {"method": [error.message]}
        else:
            change = payment_row.change_due
            db.session.commit()
            if change:
                flash(
                    _("Payment recorded. Change due: %(change)s.", change=_money(change)), "success"
                )
            else:
                flash(_("Payment recorded."), "success")
            return redirect(_order_url(view, token), code=303)
    return _confirmation_page(
        view, _order_by_token(view, token), token, status=422, errors=errors, chosen_method=method
    )


@blueprint.after_request
def _private(response: Response) -> Response:
    # Answers, signatures and order links are personal: no shared or back-button cache keeps them.
    response.headers["Cache-Control"] = "private, no-store"
    return response


__all__ = ["Audience", "blueprint"]
