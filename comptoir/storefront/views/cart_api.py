"""The cart API under ``/api/v1/o/{org}``: create and read carts, change lines, staff powers.

Customers reach a cart with its token in ``X-Cart-Token`` (and, in a password shop, the access
token from ``/unlock`` in ``X-Shop-Access``). Staff of the organization (an API key, or the admin
session with its CSRF header) reach any cart of it without the token. A cart that does not exist,
or that the caller may not reach, is ``404``; an expired one ``410 cart_expired``.
"""

from __future__ import annotations

from typing import Any

from flask import g, make_response, request
from flask_babel import gettext as _
from sqlalchemy.orm import joinedload

from comptoir.billing.invoice_preview import PDF_MIMETYPE, render_invoice_html, render_invoice_pdf
from comptoir.platform.db import db
from comptoir.platform.errors import ForbiddenError, NotFoundError, json_error
from comptoir.platform.i18n import select_locale
from comptoir.storefront import carts
from comptoir.storefront.cart_invoice import invoice_preview_for
from comptoir.storefront.cart_models import Cart, CartLine, CartStatus
from comptoir.storefront.cart_schemas import (
    CartLineCreateSchema,
    CartLineSchema,
    CartLineUpdateSchema,
    CartSchema,
    CartUpdateSchema,
    CreatedCartSchema,
)
from comptoir.storefront.models import Article
from comptoir.storefront.visibility import ShopView, view_shop, visible_articles_query
from comptoir.tenants.api_support import (
    current_organization,
    organization_api_blueprint,
    public_endpoint,
    require_permission,
)
from comptoir.tenants.context import current_actor, current_role
from comptoir.tenants.permissions import Permission

CART_TOKEN_HEADER = "X-Cart-Token"  # noqa: S105 - a header name, not a secret

blueprint = organization_api_blueprint(
    "carts",
    __name__,
    "Carts and their lines. A cart holds its units until `expires_at` (the shop's minutes from "
    "creation; renewable when fewer than 5 minutes remain). Customers send the cart's token in "
    "`X-Cart-Token`; staff of the organization reach any of its carts. Prices come from the "
    "catalog: only staff may change a line's `unit_price` (owners and admins; attendants when "
    "the organization allows it), and only staff may move `expires_at`.",
)

_CART_TOKEN_DOC = {
    "in": "header",
    "name": CART_TOKEN_HEADER,
    "required": False,
    "schema": {"type": "string"},
    "description": "The cart's token (from its creation). Staff of the organization omit it.",
}
_SHOP_ACCESS_DOC = {
    "in": "header",
    "name": "X-Shop-Access",
    "required": False,
    "schema": {"type": "string"},
    "description": "In a password shop: the access token from `POST /shops/{shop}/unlock`.",
}
_EXPIRED_DOC = "`cart_expired`: the cart expired and its items were released."


# --------------------------------------------------------------------------- helpers


def _is_staff() -> bool:
    return carts.can_manage_carts(current_role())


def _shop_view(slug: str) -> ShopView:
    """The shop as the caller may use it: 404 when hidden, ``shop_locked`` when not unlocked."""
    view = view_shop(slug)
    if view is None:
        raise NotFoundError(_("This shop does not exist."))
    if not view.unlocked:
        raise carts.ShopLockedError(_("This shop is protected by a password: unlock it first."))
    return view


def _cart(cart_id: int, *, lock: bool = False) -> tuple[Cart, ShopView]:
    """The cart the caller reaches (locked at once for a change), and its shop as they see it."""
    cart, shop_slug = carts.reach_cart(
        cart_id, token=request.headers.get(CART_TOKEN_HEADER), is_staff=_is_staff(), lock=lock
    )
    return cart, _shop_view(shop_slug)


def _article_for_cart(view: ShopView, article_id: int) -> Article:
    """The article with its variants, when the caller may see it in this shop (one statement)."""
    article = (
        db.session.execute(
            visible_articles_query(view)
            .where(Article.id == article_id)
            .options(joinedload(Article.variants))
        )
        .unique()
        .scalars()
        .first()
    )
    if article is None:
        raise NotFoundError(_("This article does not exist."))
    return article


def _open(cart: Cart) -> None:
    carts.ensure_open(cart)


def _line_dict(line: carts.SummaryLine | CartLine, name: str | None = None) -> dict[str, Any]:
    raw = line.line if isinstance(line, carts.SummaryLine) else line
    return {
        "id": raw.id,
        "article_id": raw.article_id,
        "variant_id": raw.variant_id,
        "name": line.name if isinstance(line, carts.SummaryLine) else (name or ""),
        "quantity": raw.quantity,
        "unit_price": raw.unit_price,
        "original_unit_price": raw.original_unit_price,
        "price_override_reason": raw.price_override_reason,
        "total": raw.total,
    }


def cart_dict(cart: Cart, view: ShopView) -> dict[str, Any]:
    summary = carts.summarize(cart, locale=select_locale())
    status = cart.status.value
    if cart.status is CartStatus.ACTIVE and carts.is_expired(cart):
        status = CartStatus.EXPIRED.value
    return {
        "id": cart.id,
        "shop": view.shop.slug,
        "status": status,
        "expires_at": cart.expires_at,
        "renewals_left": carts.renewals_left(cart, view.shop),
        "can_renew": carts.can_renew(cart, view.shop),
        "lines": [_line_dict(line) for line in summary.lines],
        "subtotal": summary.subtotal,
        "taxes": [
            {"code": tax.code, "name": tax.name, "rate": str(tax.rate), "amount": tax.amount}
            for tax in summary.taxes
        ],
        "total": summary.total,
        "currency": cart.currency,
    }


def _summary_line(cart: Cart, line_id: int) -> dict[str, Any]:
    summary = carts.summarize(cart, locale=select_locale())
    for line in summary.lines:
        if line.id == line_id:
            return _line_dict(line)
    raise NotFoundError(_("This line is not in the cart."))


# --------------------------------------------------------------------------- carts


@blueprint.route("/shops/<shop>/carts", methods=["POST"])
@public_endpoint
@blueprint.doc(parameters=[_SHOP_ACCESS_DOC])
@blueprint.response(201, CreatedCartSchema)
@blueprint.alt_response(403, description="`shop_locked`: unlock the password shop first.")
def create_cart(shop: str) -> dict[str, Any]:
    """Open a cart

    The cart is empty and expires after the shop's cart minutes; keep its `token` to reach it.
    """
    view = _shop_view(shop)
    cart, token = carts.create_cart(
        organization=current_organization(),
        actor=current_actor(),
        shop=view.shop,
        locale=select_locale(),
    )
    db.session.commit()
    return {**cart_dict(cart, view), "token": token}


@blueprint.route("/carts/<id:cart_id>", methods=["GET"])
@public_endpoint
@blueprint.doc(parameters=[_CART_TOKEN_DOC, _SHOP_ACCESS_DOC])
@blueprint.response(200, CartSchema)
@blueprint.alt_response(410, description=_EXPIRED_DOC)
def get_cart(cart_id: int) -> dict[str, Any]:
    """Get a cart

    Lines, subtotal, each tax by name (in the caller's language) and the total. An expired cart
    answers `410 cart_expired` to customers; staff still read it.
    """
    cart, view = _cart(cart_id)
    if not _is_staff():
        _open(cart)
    return cart_dict(cart, view)


@blueprint.route("/carts/<id:cart_id>", methods=["PATCH"])
@public_endpoint
@blueprint.doc(parameters=[_CART_TOKEN_DOC])
@blueprint.arguments(CartUpdateSchema)
@blueprint.response(200, CartSchema)
@blueprint.alt_response(409, description="`out_of_stock`: a line no longer fits the new expiry.")
def update_cart(changes: dict[str, Any], cart_id: int) -> dict[str, Any]:
    """Change a cart's expiry (staff)

    Staff may set any time within a year: later holds every line again until then (an expired
    cart included, when its stock is still there), earlier ends the cart now. Audited.
    """
    cart, view = _cart(cart_id, lock=True)
    if not _is_staff():
        message = _("Only staff of this organization may change the expiry.")
        raise ForbiddenError(message, fields={"expires_at": [message]})
    carts.set_expiry(
        organization=current_organization(),
        actor=current_actor(),
        cart=cart,
        expires_at=changes["expires_at"],
    )
    db.session.commit()
    return cart_dict(cart, view)


@blueprint.route("/carts/<id:cart_id>/renew", methods=["POST"])
@public_endpoint
@blueprint.doc(parameters=[_CART_TOKEN_DOC])
@blueprint.response(200, CartSchema)
@blueprint.alt_response(409, description="`conflict`: not yet renewable, or no renewal left.")
@blueprint.alt_response(410, description=_EXPIRED_DOC)
def renew_cart(cart_id: int) -> dict[str, Any]:
    """Renew a cart

    When fewer than 5 minutes remain, gives the cart the shop's cart minutes again, as many
    times as the shop allows (`renewals_left`).
    """
    cart, view = _cart(cart_id, lock=True)
    carts.renew(
        organization=current_organization(), actor=current_actor(), cart=cart, shop=view.shop
    )
    db.session.commit()
    return cart_dict(cart, view)


# --------------------------------------------------------------------------- lines


@blueprint.route("/carts/<id:cart_id>/lines", methods=["POST"])
@public_endpoint
@blueprint.doc(parameters=[_CART_TOKEN_DOC, _SHOP_ACCESS_DOC])
@blueprint.arguments(CartLineCreateSchema)
@blueprint.response(201, CartLineSchema)
@blueprint.alt_response(409, description="`out_of_stock`: fewer units are left.")
@blueprint.alt_response(410, description=_EXPIRED_DOC)
def add_line(values: dict[str, Any], cart_id: int) -> dict[str, Any]:
    """Add an article to a cart

    Holds the units until the cart expires. Adding an article or variant already in the cart
    raises that line's quantity. The price is the catalog's. An article the caller cannot see in
    this shop is `404`; above the per-order maximum `422`; above what is left `409 out_of_stock`.
    """
    cart, view = _cart(cart_id, lock=True)
    _open(cart)
    article = _article_for_cart(view, values["article_id"])
    variant = None
    if values.get("variant_id") is not None:
        variant = next((v for v in article.variants if v.id == values["variant_id"]), None)
        if variant is None:
            message = _("This option does not exist.")
            raise NotFoundError(message, fields={"variant_id": [message]})
    if not _is_staff():
        carts.remember_locale(cart, select_locale())
    name = carts.line_name(article, variant, select_locale())
    line = carts.add_line(
        organization=current_organization(),
        actor=current_actor(),
        cart=cart,
        article=article,
        variant=variant,
        quantity=values["quantity"],
    )
    # The article's row stays locked until the commit: answer from what is in hand, no read.
    answer = _line_dict(line, name)
    db.session.commit()
    return answer


@blueprint.route("/carts/<id:cart_id>/lines/<id:line_id>", methods=["PATCH"])
@public_endpoint
@blueprint.doc(parameters=[_CART_TOKEN_DOC])
@blueprint.arguments(CartLineUpdateSchema)
@blueprint.response(200, CartLineSchema)
@blueprint.alt_response(409, description="`out_of_stock`: fewer units are left.")
@blueprint.alt_response(410, description=_EXPIRED_DOC)
def update_line(changes: dict[str, Any], cart_id: int, line_id: int) -> dict[str, Any]:
    """Change a line

    Anyone reaching the cart may change `quantity` (raising it holds the difference). Staff may
    change `unit_price`, with a `reason`: the original price stays on the line and the change is
    audited. Anyone else sending `unit_price` or `reason` gets `403 forbidden` and nothing changes.
    """
    cart, _view = _cart(cart_id, lock=True)
    organization = current_organization()
    actor = current_actor()
    pricing = "unit_price" in changes or "reason" in changes
    if pricing and not carts.can_override_prices(current_role(), organization):
        message = _("Only staff allowed to change prices may send a price.")
        raise ForbiddenError(message, fields={"unit_price": [message]})
    if "quantity" in changes:
        carts.change_quantity(
            organization=organization,
            actor=actor,
            cart=cart,
            line_id=line_id,
            quantity=changes["quantity"],
        )
    if pricing:
        carts.override_price(
            organization=organization,
            actor=actor,
            cart=cart,
            line_id=line_id,
            unit_price=changes.get("unit_price"),
            reason=changes.get("reason"),
        )
    db.session.commit()
    return _summary_line(cart, line_id)


@blueprint.route("/carts/<id:cart_id>/lines/<id:line_id>", methods=["DELETE"])
@public_endpoint
@blueprint.doc(parameters=[_CART_TOKEN_DOC])
@blueprint.response(204)
@blueprint.alt_response(410, description=_EXPIRED_DOC)
def delete_line(cart_id: int, line_id: int) -> None:
    """Remove a line

    Its units are released at once.
    """
    cart, _view = _cart(cart_id, lock=True)
    carts.remove_line(
        organization=current_organization(), actor=current_actor(), cart=cart, line_id=line_id
    )
    db.session.commit()


# --------------------------------------------------------------------------- invoice preview


@blueprint.route("/carts/<id:cart_id>/invoice-preview", methods=["GET"])
@require_permission(Permission.SELL)
@blueprint.alt_response(
    200,
    content_type=PDF_MIMETYPE,
    schema={"type": "string", "format": "binary"},
    success=True,
    description="The invoice this cart would get, marked PREVIEW (`Accept: application/pdf`).",
)
@blueprint.alt_response(
    200,
    content_type="text/html",
    schema={"type": "string"},
    success=True,
    description="The same as an HTML document (`Accept: text/html`).",
)
@blueprint.alt_response(406, description="Accept neither `application/pdf` nor `text/html`.")
def invoice_preview(cart_id: int) -> Any:
    """Preview a cart's invoice (staff)

    Exactly what the invoice will say (organization, address, tax registration numbers, the
    customer when known, lines with any staff price change as a discount or surcharge, each tax,
    the total), in the customer's language, marked PREVIEW.
    """
    cart, _view = _cart(cart_id)
    accept = request.accept_mimetypes
    chosen = accept.best_match([PDF_MIMETYPE, "text/html"]) if accept else PDF_MIMETYPE
    if chosen is None:
        return json_error(
            406,
            "not_acceptable",
            _("Ask for application/pdf or text/html."),
        )
    document = invoice_preview_for(organization=g.organization, cart=cart)
    if chosen == PDF_MIMETYPE:
        response = make_response(render_invoice_pdf(document))
        response.headers["Content-Disposition"] = f'inline; filename="cart-{cart.id}-preview.pdf"'
    else:
        response = make_response(render_invoice_html(document))
    response.headers["Content-Type"] = (
        PDF_MIMETYPE if chosen == PDF_MIMETYPE else "text/html; charset=utf-8"
    )
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Vary"] = "Accept"
    return response
