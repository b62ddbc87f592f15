"""The cart pages: step 1 of the checkout, with the staff powers in orange.

A customer's cart is the one named by this shop's cart cookie (it carries the cart's token); staff
of the organization may open any cart of it at ``/carts/<id>``. Every action is a plain form that
works without JavaScript; ``cart.js`` only adds the live countdown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_time
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from werkzeug.routing import BuildError

from comptoir.billing.invoice_preview import (
    PDF_MIMETYPE,
    render_invoice_fragment,
    render_invoice_pdf,
)
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import DomainError, ForbiddenError, NotFoundError
from comptoir.platform.i18n import select_locale
from comptoir.platform.settings import current_settings
from comptoir.storefront import carts
from comptoir.storefront.cart_forms import (
    AddToCartForm,
    ExpiryForm,
    LinePriceForm,
    LineQuantityForm,
)
from comptoir.storefront.cart_invoice import invoice_preview_for
from comptoir.storefront.cart_models import Cart, CartStatus
from comptoir.storefront.formatting import price_input
from comptoir.storefront.inventory import Availability
from comptoir.storefront.models import Article, ArticleVariant
from comptoir.storefront.visibility import (
    ShopView,
    view_shop,
    visible_article,
    visible_articles_query,
)
from comptoir.tenants.context import current_actor, current_role, install_organization_url_handling
from comptoir.tenants.permissions import Permission, role_can

blueprint = Blueprint("storefront_cart", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)

COOKIE_PREFIX = "comptoir_cart_"
COOKIE_MAX_AGE = 7 * 24 * 3600
# Step 2 of the checkout; the button links to it once that page exists.
CHECKOUT_ENDPOINT = "storefront_checkout.information"


def cookie_name(shop_id: int) -> str:
    return f"{COOKIE_PREFIX}{shop_id}"


# --------------------------------------------------------------------------- helpers


def _shop_view(shop_slug: str) -> ShopView:
    view = view_shop(shop_slug)
    if view is None:
        abort(404)
    return view


def _locked_redirect(view: ShopView) -> Any:
    """The unlock page for a password shop this visitor has not opened yet, else None."""
    if view.unlocked:
        return None
    return redirect(
        url_for("storefront_shop.unlock_form", shop_slug=view.shop.slug, next=request.path)
    )


def _is_cart_staff(view: ShopView) -> bool:
    return view.is_staff and carts.can_manage_carts(current_role())


def _cookie_token(view: ShopView) -> str | None:
    return request.cookies.get(cookie_name(view.shop.id))


def _cookie_cart(view: ShopView) -> Cart | None:
    return carts.cart_by_token(_cookie_token(view), shop=view.shop)


def _reach(view: ShopView, cart_id: int) -> Cart:
    cart = carts.reachable_cart(cart_id, token=_cookie_token(view), is_staff=_is_cart_staff(view))
    if cart.shop_id != view.shop.id:
        raise NotFoundError(_("This cart does not exist."))
    return cart


def _is_own(view: ShopView, cart: Cart) -> bool:
    return carts.token_matches(cart, _cookie_token(view))


def _cart_url(view: ShopView, cart: Cart | None) -> str:
    if cart is not None and not _is_own(view, cart):
        return url_for(".staff_cart", shop_slug=view.shop.slug, cart_id=cart.id)
    return url_for(".cart", shop_slug=view.shop.slug)


def _set_cookie(response: Response, view: ShopView, token: str) -> None:
    response.set_cookie(
        cookie_name(view.shop.id),
        token,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=current_settings().is_production,
    )


def _zone() -> ZoneInfo:
    try:
        return ZoneInfo(g.organization.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("America/Toronto")


def _checkout_url(view: ShopView, cart: Cart) -> str | None:
    if CHECKOUT_ENDPOINT not in current_app.view_functions:
        return None
    try:
        return url_for(CHECKOUT_ENDPOINT, shop_slug=view.shop.slug, cart_id=cart.id)
    except BuildError:
        return None


def _staff_permissions() -> dict[str, bool]:
    role = current_role()
    return {
        "manage_shops": role_can(role, Permission.MANAGE_SHOPS),
        "manage_catalog": role_can(role, Permission.MANAGE_CATALOG),
    }


def _field_errors(form: FlaskForm, error: DomainError, default_field: str) -> None:
    """Put a service's refusal on the form's fields (the first field when it names none)."""
    placed = False
    for name, messages in error.fields.items():
        field = form._fields.get(name.rsplit(".", 1)[-1])
        if field is not None:
            field.errors = [*field.errors, *messages]
            placed = True
    if not placed:
        field = form._fields[default_field]
        field.errors = [*field.errors, error.message]


# --------------------------------------------------------------------------- the page


def _add_again(view: ShopView, summary: carts.CartSummary) -> dict[int, int]:
    """For an expired cart: line id → how many units can be added again (lines still on sale)."""
    article_ids = {line.line.article_id for line in summary.lines}
    if not article_ids:
        return {}
    visible = list(
        db.session.execute(
            visible_articles_query(view).where(Article.id.in_(article_ids)).order_by(None)
        )
        .scalars()
        .unique()
    )
    availability = Availability.of(visible)
    by_id = {article.id: article for article in visible}
    offer: dict[int, int] = {}
    for line in summary.lines:
        article = by_id.get(line.line.article_id)
        if article is None:
            continue
        variant = next((v for v in article.variants if v.id == line.line.variant_id), None)
        if line.line.variant_id is not None and variant is None:
            continue
        remaining = availability.variant(variant) if variant else availability.article(article)
        if remaining is None:
            offer[line.id] = line.quantity
        elif remaining > 0:
            offer[line.id] = min(line.quantity, remaining)
    return offer


def _render(
    view: ShopView,
    cart: Cart | None,
    *,
    status: int = 200,
    quantity_forms: dict[int, FlaskForm] | None = None,
    price_forms: dict[int, FlaskForm] | None = None,
    expiry_form: ExpiryForm | None = None,
) -> Any:
    locale = select_locale()
    now = utcnow()
    organization = g.organization
    role = current_role()
    staff = _is_cart_staff(view)
    summary = carts.summarize(cart, locale=locale) if cart is not None else None
    if cart is None or summary is None:
        state = "empty"
    elif cart.status is CartStatus.CHECKED_OUT:
        state = "checked_out"
    elif carts.is_expired(cart, now):
        state = "expired"
    elif not summary.lines:
        state = "empty"
    else:
        state = "active"
    zone = _zone()
    context: dict[str, Any] = {
        "view": view,
        "shop": view.shop,
        "cart": cart,
        "summary": summary,
        "state": state,
        "staff": staff,
        "own_cart": cart is not None and _is_own(view, cart),
        "can": _staff_permissions() if view.is_staff else {},
        "can_override": staff and carts.can_override_prices(role, organization),
        "quantity_forms": quantity_forms or {},
        "price_forms": price_forms or {},
        "add_again": {},
        "price_input": price_input,
    }
    if cart is not None and summary is not None:
        local_expiry = cart.expires_at.astimezone(zone)
        if expiry_form is None:
            expiry_form = ExpiryForm(formdata=None, expires_at=local_expiry.replace(tzinfo=None))
        context.update(
            expires_at_iso=cart.expires_at.isoformat(),
            now_iso=now.isoformat(),
            expires_at_text=format_time(local_expiry, format="short", locale=f"{locale}_CA"),
            seconds_left=carts.seconds_left(cart, now),
            minutes_left=(carts.seconds_left(cart, now) + 59) // 60,
            renewals_left=carts.renewals_left(cart, view.shop),
            can_renew=carts.can_renew(cart, view.shop, now),
            renew_window=int(carts.RENEWAL_WINDOW.total_seconds()),
            expiry_form=expiry_form,
            checkout_url=_checkout_url(view, cart) if state == "active" else None,
            timezone_name=zone.key,
        )
        if state == "expired":
            context["add_again"] = _add_again(view, summary)
    return render_template("storefront/cart.html", **context), status


@blueprint.get("/<shop_slug>/cart")
def cart(shop_slug: str) -> Any:
    view = _shop_view(shop_slug)
    locked = _locked_redirect(view)
    if locked is not None:
        return locked
    return _render(view, _cookie_cart(view))


@blueprint.get("/<shop_slug>/carts/<int:cart_id>")
def staff_cart(shop_slug: str, cart_id: int) -> Any:
    view = _shop_view(shop_slug)
    locked = _locked_redirect(view)
    if locked is not None:
        return locked
    return _render(view, _reach(view, cart_id))


# --------------------------------------------------------------------------- adding


def _article_page(view: ShopView, article: Article, form: AddToCartForm, status: int) -> Any:
    return (
        render_template(
            "storefront/article.html",
            view=view,
            shop=view.shop,
            article=article,
            availability=Availability.of([article]),
            can=_staff_permissions() if view.is_staff else {},
            cart_form=form,
        ),
        status,
    )


def _visible_or_404(view: ShopView, article_id: Any) -> Article:
    if not isinstance(article_id, int) or not 1 <= article_id < 2**63:
        abort(404)
    article = visible_article(view, article_id)
    if article is None:
        abort(404)
    return article


@blueprint.post("/<shop_slug>/cart/add")
def add(shop_slug: str) -> Any:
    view = _shop_view(shop_slug)
    if not view.unlocked:
        abort(404)
    form = AddToCartForm()
    article = _visible_or_404(view, form.article_id.data)
    if not form.validate_on_submit():
        return _article_page(view, article, form, 422)
    variant: ArticleVariant | None = None
    if form.variant_id.data is not None:
        variant = next((v for v in article.variants if v.id == form.variant_id.data), None)
        if variant is None:
            form.variant_id.errors = [_("Choose one of the options.")]
            return _article_page(view, article, form, 422)
    organization = g.organization
    actor = current_actor()
    existing = _cookie_cart(view)
    new_token: str | None = None
    try:
        if (
            existing is None
            or existing.status is not CartStatus.ACTIVE
            or carts.is_expired(existing)
        ):
            cart, new_token = carts.create_cart(
                organization=organization, actor=actor, shop=view.shop, locale=select_locale()
            )
        else:
            cart = existing
        if not view.is_staff:
            carts.remember_locale(cart, select_locale())
        carts.add_line(
            organization=organization,
            actor=actor,
            cart=cart,
            article=article,
            variant=variant,
            quantity=form.quantity.data,
        )
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        _field_errors(form, error, "quantity")
        return _article_page(view, _visible_or_404(view, form.article_id.data), form, error.status)
    flash(_("Added to your cart."), "success")
    response = make_response(redirect(url_for(".cart", shop_slug=view.shop.slug)))
    if new_token is not None:
        _set_cookie(response, view, new_token)
    return response


# --------------------------------------------------------------------------- changing lines


def _open_cart(shop_slug: str, cart_id: int) -> tuple[ShopView, Cart]:
    view = _shop_view(shop_slug)
    if not view.unlocked:
        abort(404)
    return view, _reach(view, cart_id)


def _refused(view: ShopView, cart: Cart, error: DomainError, **forms: Any) -> Any:
    db.session.rollback()
    if isinstance(error, carts.CartExpiredError | NotFoundError):
        flash(error.message, "error")
        return redirect(_cart_url(view, cart))
    return _render(view, db.session.get(Cart, cart.id), status=error.status, **forms)


@blueprint.post("/<shop_slug>/carts/<int:cart_id>/lines/<int:line_id>")
def change_quantity(shop_slug: str, cart_id: int, line_id: int) -> Any:
    view, cart = _open_cart(shop_slug, cart_id)
    form = LineQuantityForm(prefix=f"line-{line_id}")
    if not form.validate_on_submit():
        return _render(view, cart, status=422, quantity_forms={line_id: form})
    try:
        carts.change_quantity(
            organization=g.organization,
            actor=current_actor(),
            cart=cart,
            line_id=line_id,
            quantity=form.quantity.data,
        )
        if not view.is_staff:
            carts.remember_locale(cart, select_locale())
        db.session.commit()
    except DomainError as error:
        _field_errors(form, error, "quantity")
        return _refused(view, cart, error, quantity_forms={line_id: form})
    flash(_("Quantity updated."), "success")
    return redirect(_cart_url(view, cart))


@blueprint.post("/<shop_slug>/carts/<int:cart_id>/lines/<int:line_id>/remove")
def remove_line(shop_slug: str, cart_id: int, line_id: int) -> Any:
    view, cart = _open_cart(shop_slug, cart_id)
    try:
        carts.remove_line(
            organization=g.organization, actor=current_actor(), cart=cart, line_id=line_id
        )
        db.session.commit()
    except DomainError as error:
        return _refused(view, cart, error)
    flash(_("Removed from your cart."), "success")
    return redirect(_cart_url(view, cart))


@blueprint.post("/<shop_slug>/carts/<int:cart_id>/renew")
def renew(shop_slug: str, cart_id: int) -> Any:
    view, cart = _open_cart(shop_slug, cart_id)
    try:
        carts.renew(organization=g.organization, actor=current_actor(), cart=cart, shop=view.shop)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(_cart_url(view, cart))
    flash(_("Your cart is renewed: your items are held longer."), "success")
    return redirect(_cart_url(view, cart))


# --------------------------------------------------------------------------- staff powers


def _staff_cart(shop_slug: str, cart_id: int) -> tuple[ShopView, Cart]:
    view, cart = _open_cart(shop_slug, cart_id)
    if not _is_cart_staff(view):
        # The customer reaches their own cart, but these powers are not theirs.
        raise ForbiddenError(_("Only staff of this organization may do this."))
    return view, cart


@blueprint.post("/<shop_slug>/carts/<int:cart_id>/lines/<int:line_id>/price")
def override_price(shop_slug: str, cart_id: int, line_id: int) -> Any:
    view, cart = _staff_cart(shop_slug, cart_id)
    if not carts.can_override_prices(current_role(), g.organization):
        raise ForbiddenError(_("Your role does not allow changing prices."))
    form = LinePriceForm(prefix=f"price-{line_id}")
    if not form.validate_on_submit():
        return _render(view, cart, status=422, price_forms={line_id: form})
    try:
        carts.override_price(
            organization=g.organization,
            actor=current_actor(),
            cart=cart,
            line_id=line_id,
            unit_price=form.unit_price.data,
            reason=form.reason.data,
        )
        db.session.commit()
    except DomainError as error:
        _field_errors(form, error, "unit_price")
        return _refused(view, cart, error, price_forms={line_id: form})
    flash(_("Price changed."), "success")
    return redirect(_cart_url(view, cart))


@blueprint.post("/<shop_slug>/carts/<int:cart_id>/expiry")
def change_expiry(shop_slug: str, cart_id: int) -> Any:
    view, cart = _staff_cart(shop_slug, cart_id)
    form = ExpiryForm()
    if not form.validate_on_submit():
        return _render(view, cart, status=422, expiry_form=form)
    local: datetime = form.expires_at.data
    expires_at = local.replace(tzinfo=_zone())
    try:
        carts.set_expiry(
            organization=g.organization, actor=current_actor(), cart=cart, expires_at=expires_at
        )
        db.session.commit()
    except DomainError as error:
        _field_errors(form, error, "expires_at")
        db.session.rollback()
        return _render(view, db.session.get(Cart, cart.id), status=error.status, expiry_form=form)
    flash(_("Expiry changed."), "success")
    return redirect(_cart_url(view, cart))


@blueprint.get("/<shop_slug>/carts/<int:cart_id>/invoice")
def invoice_preview(shop_slug: str, cart_id: int) -> Any:
    view, cart = _staff_cart(shop_slug, cart_id)
    document = invoice_preview_for(organization=g.organization, cart=cart)
    return render_template(
        "storefront/cart_invoice.html",
        view=view,
        shop=view.shop,
        cart=cart,
        can=_staff_permissions(),
        invoice_html=render_invoice_fragment(document),
        back_url=_cart_url(view, cart),
    )


@blueprint.get("/<shop_slug>/carts/<int:cart_id>/invoice.pdf")
def invoice_preview_pdf(shop_slug: str, cart_id: int) -> Any:
    _view, cart = _staff_cart(shop_slug, cart_id)
    document = invoice_preview_for(organization=g.organization, cart=cart)
    response = make_response(render_invoice_pdf(document))
    response.headers["Content-Type"] = PDF_MIMETYPE
    response.headers["Content-Disposition"] = f'inline; filename="cart-{cart.id}-preview.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blueprint.after_request
def _private(response: Response) -> Response:
    # Carts are personal: no shared cache may keep these pages.
    response.headers.setdefault("Cache-Control", "private, no-store")
    return response
