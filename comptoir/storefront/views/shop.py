"""The organization's microsite: its list of shops, each shop, article pages, images, unlocking.

Staff of the organization see the same pages in admin mode (staff categories under an orange
band) and may switch on Design mode to reorder categories and articles in place.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from comptoir.platform.db import db
from comptoir.platform.errors import DomainError
from comptoir.platform.extensions import limiter
from comptoir.platform.settings import current_settings
from comptoir.storefront import images as image_files
from comptoir.storefront import page_cache
from comptoir.storefront import shops as shop_services
from comptoir.storefront.formatting import format_price
from comptoir.storefront.inventory import Availability
from comptoir.storefront.models import Audience, ShopAccess
from comptoir.storefront.visibility import (
    ShopView,
    first_images,
    microsite_shops,
    paginate,
    remember_unlock,
    view_shop,
    visible_article,
    visible_articles_query,
    visible_image,
    with_card_data,
)
from comptoir.tenants.context import current_actor, current_role, install_organization_url_handling
from comptoir.tenants.permissions import Permission, role_can

blueprint = Blueprint("storefront_shop", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)

PER_PAGE = 24
DESIGN_SESSION_KEY = "design_mode"
IMAGE_MAX_AGE = 300


@blueprint.app_template_filter("format_price")
def _format_price_filter(amount: int | None, currency: str | None = None) -> str:
    organization = g.get("organization")
    return format_price(amount, currency or (organization.currency if organization else "CAD"))


def _shop_or_404(shop_slug: str) -> ShopView:
    view = view_shop(shop_slug)
    if view is None:
        abort(404)
    return view


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) < 12 else None


def _design_mode(view: ShopView) -> bool:
    return view.is_staff and bool(session.get(DESIGN_SESSION_KEY))


def _staff_permissions() -> dict[str, bool]:
    role = current_role()
    return {
        "manage_shops": role_can(role, Permission.MANAGE_SHOPS),
        "manage_catalog": role_can(role, Permission.MANAGE_CATALOG),
    }


# --------------------------------------------------------------------------- microsite


@blueprint.get("/")
def microsite() -> Any:
    audience = Audience.STAFF if current_role() is not None else Audience.CUSTOMER
    return render_template(
        "storefront/microsite.html",
        shops=microsite_shops(audience),
        is_staff=audience is Audience.STAFF,
    )


# --------------------------------------------------------------------------- shop page


@blueprint.record_once
def _install_page_cache(state: Any) -> None:
    # Cached pages are answered in front of the app, before the organization is even looked up.
    page_cache.install(state.app)


@blueprint.get("/<shop_slug>/")
def shop(shop_slug: str) -> Any:
    version = None
    if page_cache.is_candidate(request.environ) and not current_user.is_authenticated:
        # Read before the catalog itself: a change committed meanwhile makes this page stale
        # at once rather than keeping it under the new version.
        version = page_cache.current_version(g.organization.id, g.organization.slug)
    view = _shop_or_404(shop_slug)
    if not view.unlocked:
        return _unlock_page(view, status=401)
    html = _render_shop(view)
    if version is not None and view.shop.access is ShopAccess.PUBLIC and not view.is_staff:
        page_cache.keep_response(request.environ, version)
    return html


def _render_shop(view: ShopView) -> str:
    q = request.args.get("q", "").strip()[:100]
    categories = view.categories
    current = None
    if q:
        query = visible_articles_query(view, q=q)
    else:
        wanted = _int_arg("category")
        current = next((c for c in categories if c.tag.id == wanted), None)
        if current is None and categories:
            current = categories[0]
        query = visible_articles_query(view, tag_id=current.tag.id if current else None)
    page = paginate(with_card_data(query), page=_int_arg("page") or 1, per_page=PER_PAGE)
    return render_template(
        "storefront/shop.html",
        view=view,
        shop=view.shop,
        categories=categories,
        current=current,
        q=q,
        page=page,
        availability=Availability.of(page.items),
        images=first_images(page.items),
        design=_design_mode(view),
        can=_staff_permissions() if view.is_staff else {},
    )


# --------------------------------------------------------------------------- article page


@blueprint.get("/<shop_slug>/articles/<int:article_id>")
def article(shop_slug: str, article_id: int) -> Any:
    view = _shop_or_404(shop_slug)
    if not view.unlocked:
        # Nothing about the article is confirmed; the visitor may unlock the shop and come back.
        return render_template("storefront/locked.html", view=view, shop=view.shop), 404
    found = visible_article(view, article_id)
    if found is None:
        abort(404)
    return render_template(
        "storefront/article.html",
        view=view,
        shop=view.shop,
        article=found,
        availability=Availability.of([found]),
        can=_staff_permissions() if view.is_staff else {},
    )


# --------------------------------------------------------------------------- images


@blueprint.get("/<shop_slug>/images/<int:image_id>/<size>")
def image(shop_slug: str, image_id: int, size: str) -> Any:
    if size not in image_files.SIZES:
        abort(404)
    view = _shop_or_404(shop_slug)
    if not view.unlocked:
        abort(404)
    found = visible_image(view, image_id)
    if found is None:
        abort(404)
    shared = view.shop.access is ShopAccess.PUBLIC and not view.is_staff
    return serve_image(found.storage_key, found.format, found.digest, size, shared=shared)


def serve_image(
    storage_key: str, image_format: str, digest: str, size: str, *, shared: bool
) -> Any:
    """Answer an image size with validators; ``shared`` lets public caches keep it briefly."""
    etag = f"{digest[:32]}-{size}"
    cache_control = f"{'public' if shared else 'private'}, max-age={IMAGE_MAX_AGE}"
    if etag in request.if_none_match:
        response = make_response("", 304)
    else:
        data = image_files.image_storage().read(
            image_files.size_key(storage_key, size, image_format)
        )
        if data is None:
            abort(404)
        response = make_response(data)
        response.headers["Content-Type"] = image_files.CONTENT_TYPES[image_format]
    response.set_etag(etag)
    response.headers["Cache-Control"] = cache_control
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# --------------------------------------------------------------------------- unlocking


def _unlock_page(view: ShopView, *, status: int = 200, error: str | None = None) -> Any:
    next_url = _safe_next(view, request.args.get("next") or request.full_path.rstrip("?"))
    return (
        render_template(
            "storefront/unlock.html", view=view, shop=view.shop, error=error, next_url=next_url
        ),
        status,
    )


def _safe_next(view: ShopView, target: str | None) -> str:
    """Only paths inside this shop: the unlock form must not redirect elsewhere."""
    shop_root = url_for("storefront_shop.shop", shop_slug=view.shop.slug)
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith(shop_root):
            return target
    return shop_root


def _unlock_rate_limit() -> str:
    return current_settings().login_rate_limit


def _unlock_key() -> str:
    organization = g.get("organization")
    slug = (request.view_args or {}).get("shop_slug", "")
    return f"shop-unlock:{request.remote_addr}:{organization.id if organization else 0}:{slug}"


@blueprint.get("/<shop_slug>/unlock")
def unlock_form(shop_slug: str) -> Any:
    view = _shop_or_404(shop_slug)
    if view.shop.access is not ShopAccess.PASSWORD or view.unlocked:
        return redirect(_safe_next(view, request.args.get("next")))
    return _unlock_page(view)


@blueprint.post("/<shop_slug>/unlock")
@limiter.limit(_unlock_rate_limit, key_func=_unlock_key, methods=["POST"])
def unlock(shop_slug: str) -> Any:
    view = _shop_or_404(shop_slug)
    target = _safe_next(view, request.form.get("next"))
    if view.shop.access is not ShopAccess.PASSWORD:
        return redirect(target)
    if not shop_services.check_password(view.shop, request.form.get("password", "")):
        return _unlock_page(view, status=422, error=_("This password is not right."))
    remember_unlock(view.shop)
    return redirect(target)


# --------------------------------------------------------------------------- design mode


def _staff_view_or_404(shop_slug: str, permission: Permission) -> ShopView:
    view = _shop_or_404(shop_slug)
    if not view.is_staff:
        abort(404)
    if not role_can(current_role(), permission):
        abort(403)
    return view


def _back_to_shop(view: ShopView) -> Any:
    return redirect(_safe_next(view, request.form.get("next")))


@blueprint.post("/<shop_slug>/design")
def toggle_design(shop_slug: str) -> Any:
    view = _staff_view_or_404(shop_slug, Permission.MANAGE_SHOPS)
    session[DESIGN_SESSION_KEY] = not session.get(DESIGN_SESSION_KEY, False)
    return _back_to_shop(view)


def _offset() -> int:
    return -1 if request.form.get("direction") == "up" else 1


def _form_int(name: str) -> int:
    value = request.form.get(name, "")
    if not value.isdigit():
        abort(400)
    return int(value)


@blueprint.post("/<shop_slug>/design/categories")
def reorder_categories(shop_slug: str) -> Any:
    view = _staff_view_or_404(shop_slug, Permission.MANAGE_SHOPS)
    organization = g.organization
    try:
        if request.is_json:
            payload = request.get_json(silent=True) or {}
            shop_services.set_categories(
                organization=organization,
                actor=current_actor(),
                shop=view.shop,
                audience=Audience(payload.get("audience", "customer")),
                tag_ids=payload.get("tag_ids") or [],
            )
        else:
            shop_services.move_category(
                organization=organization,
                actor=current_actor(),
                shop=view.shop,
                audience=Audience(request.form.get("audience", "customer")),
                tag_id=_form_int("tag_id"),
                offset=_offset(),
            )
    except ValueError:
        abort(400)
    except DomainError as error:
        db.session.rollback()
        return _design_error(view, error)
    db.session.commit()
    if request.is_json:
        return jsonify({"ok": True})
    return _back_to_shop(view)


@blueprint.post("/<shop_slug>/design/articles")
def reorder_articles(shop_slug: str) -> Any:
    view = _staff_view_or_404(shop_slug, Permission.MANAGE_SHOPS)
    organization = g.organization
    try:
        if request.is_json:
            payload = request.get_json(silent=True) or {}
            tag_id = payload.get("tag_id")
            article_ids = payload.get("article_ids")
            if not isinstance(tag_id, int) or not isinstance(article_ids, list):
                abort(400)
            shop_services.reorder_articles(
                organization=organization,
                actor=current_actor(),
                shop=view.shop,
                tag_id=tag_id,
                article_ids=[i for i in article_ids if isinstance(i, int)],
            )
        else:
            shop_services.move_article(
                organization=organization,
                actor=current_actor(),
                shop=view.shop,
                tag_id=_form_int("tag_id"),
                article_id=_form_int("article_id"),
                offset=_offset(),
            )
    except DomainError as error:
        db.session.rollback()
        return _design_error(view, error)
    db.session.commit()
    if request.is_json:
        return jsonify({"ok": True})
    return _back_to_shop(view)


def _design_error(view: ShopView, error: DomainError) -> Any:
    if request.is_json:
        return jsonify({"error": {"code": error.code, "message": error.message}}), error.status
    flash(error.message, "error")
    return _back_to_shop(view)


@blueprint.after_request
def _no_store_for_people(response: Response) -> Response:
    # Pages of signed-in staff or unlocked shops must not be kept by shared caches.
    if response.mimetype == "text/html" and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "private, no-cache"
    return response
