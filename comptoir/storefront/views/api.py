"""The JSON API of the catalog and the shops, under ``/api/v1/o/{org}``.

Staff (API keys, or the admin session) manage ``/tags``, ``/articles`` and ``/shops``. Anyone may
read ``/shops/{shop}/articles``: the answer is exactly what the caller's audience may see there
(see :mod:`comptoir.storefront.visibility`), and a password shop first needs ``/unlock``.
"""

from __future__ import annotations

from typing import Any

from flask import abort, g, request
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from comptoir.platform.db import db
from comptoir.platform.errors import NotFoundError, ValidationError
from comptoir.platform.extensions import limiter
from comptoir.platform.settings import current_settings
from comptoir.storefront import presenters, services
from comptoir.storefront import shops as shop_services
from comptoir.storefront.inventory import Availability
from comptoir.storefront.models import Article, ShopAccess, Tag
from comptoir.storefront.schemas import (
    AccessTokenSchema,
    ArticleCreateSchema,
    ArticleQuerySchema,
    ArticleSchema,
    ArticleUpdateSchema,
    ShopArticleQuerySchema,
    ShopArticleSchema,
    ShopCreateSchema,
    ShopSchema,
    ShopUpdateSchema,
    TagCreateSchema,
    TagSchema,
    TagUpdateSchema,
    UnlockSchema,
)
from comptoir.storefront.services import ArticleData, VariantData
from comptoir.storefront.visibility import (
    ShopLockedError,
    ShopView,
    view_shop,
    visible_article,
    visible_articles_query,
    with_card_data,
)
from comptoir.tenants.api_support import (
    Page,
    current_organization,
    organization_api_blueprint,
    page_schema,
    paginate,
    public_endpoint,
    require_permission,
)
from comptoir.tenants.context import current_actor
from comptoir.tenants.permissions import Permission

blueprint = organization_api_blueprint(
    "catalog",
    __name__,
    "Tags, articles with their variants, and the shop pages. Staff read them with any role; "
    "changing articles and tags needs `manage_catalog`, changing shops `manage_shops`. "
    "`/shops/{shop}/articles` is open to anyone and answers what the caller may see there.",
)


def _currency() -> str:
    return current_organization().currency


# --------------------------------------------------------------------------- tags


def _tag_or_404(tag_id: int) -> Tag:
    return services.get_tag(tag_id)


@blueprint.route("/tags", methods=["GET"])
@require_permission(Permission.VIEW_ADMIN)
@blueprint.response(200, TagSchema(many=True))
def list_tags() -> list[dict[str, Any]]:
    """List tags"""
    return [presenters.tag_dict(tag) for tag in services.list_tags()]


@blueprint.route("/tags", methods=["POST"])
@require_permission(Permission.MANAGE_CATALOG)
@blueprint.arguments(TagCreateSchema)
@blueprint.response(201, TagSchema)
def create_tag(values: dict[str, Any]) -> dict[str, Any]:
    """Create a tag"""
    tag = services.create_tag(
        organization=current_organization(),
        actor=current_actor(),
        name_fr=values["name"].get("fr", ""),
        name_en=values["name"].get("en", ""),
        color=values["color"],
    )
    db.session.commit()
    return presenters.tag_dict(tag)


@blueprint.route("/tags/<id:tag_id>", methods=["GET"])
@require_permission(Permission.VIEW_ADMIN)
@blueprint.response(200, TagSchema)
def get_tag(tag_id: int) -> dict[str, Any]:
    """Get a tag"""
    return presenters.tag_dict(_tag_or_404(tag_id))


@blueprint.route("/tags/<id:tag_id>", methods=["PATCH"])
@require_permission(Permission.MANAGE_CATALOG)
@blueprint.arguments(TagUpdateSchema)
@blueprint.response(200, TagSchema)
def update_tag(changes: dict[str, Any], tag_id: int) -> dict[str, Any]:
    """Change a tag"""
    tag = _tag_or_404(tag_id)
    name = changes.get("name", {})
    services.update_tag(
        organization=current_organization(),
        actor=current_actor(),
        tag=tag,
        name_fr=name.get("fr", tag.name_fr),
        name_en=name.get("en", tag.name_en),
        color=changes.get("color", tag.color),
    )
    db.session.commit()
    return presenters.tag_dict(tag)


@blueprint.route("/tags/<id:tag_id>", methods=["DELETE"])
@require_permission(Permission.MANAGE_CATALOG)
@blueprint.response(204)
def delete_tag(tag_id: int) -> None:
    """Delete a tag

    Articles lose it and shops stop showing it as a category.
    """
    services.delete_tag(
        organization=current_organization(), actor=current_actor(), tag=_tag_or_404(tag_id)
    )
    db.session.commit()


# --------------------------------------------------------------------------- articles


def _article_or_404(article_id: int) -> Article:
    article = db.session.get(
        Article,
        article_id,
        options=[selectinload(Article.variants), selectinload(Article.tag_links)],
    )
    if article is None:
        raise NotFoundError(_("This article does not exist."))
    return article


def _variants(values: list[dict[str, Any]]) -> list[VariantData]:
    return [
        VariantData(
            id=value.get("id"),
            name_fr=value["name"].get("fr", ""),
            name_en=value["name"].get("en", ""),
            sku=value.get("sku"),
            price=value.get("price"),
            stock=value.get("stock"),
        )
        for value in values
    ]


def _article_changes(values: dict[str, Any], current: ArticleData) -> dict[str, Any]:
    """Schema values to ``ArticleData`` fields; a language left out of a text keeps its value."""
    changes: dict[str, Any] = {}
    for field in ("name", "description"):
        if field in values:
            for lang in ("fr", "en"):
                key = f"{field}_{lang}"
                changes[key] = values[field].get(lang, getattr(current, key))
    for field in (
        "price",
        "tax_category",
        "sku",
        "tag_ids",
        "active",
        "stock",
        "max_per_order",
        "checkout_form_id",
    ):
        if field in values:
            changes[field] = values[field]
    if "variants" in values:
        changes["variants"] = _variants(values["variants"])
    return changes


@blueprint.route("/articles", methods=["GET"])
@require_permission(Permission.VIEW_ADMIN)
@blueprint.query_arguments(ArticleQuerySchema)
@blueprint.response(200, page_schema(ArticleSchema))
def list_articles(arguments: dict[str, Any]) -> Page:
    """List articles

    `q` searches names and SKUs (variants' too); `tag` keeps the articles with that tag;
    `status` is `active`, `archived` or `all` (the default).
    """
    query = services.search_articles_query(
        q=arguments["q"] or None, tag_id=arguments["tag"], status=arguments["status"]
    ).options(selectinload(Article.variants), selectinload(Article.tag_links))
    page = paginate(query, page=arguments["page"], per_page=arguments["per_page"])
    currency = _currency()
    page["items"] = [presenters.article_dict(article, currency) for article in page["items"]]
    return page


@blueprint.route("/articles", methods=["POST"])
@require_permission(Permission.MANAGE_CATALOG)
@blueprint.arguments(ArticleCreateSchema)
@blueprint.response(201, ArticleSchema)
def create_article(values: dict[str, Any]) -> dict[str, Any]:
    """Create an article

    Prices are integers in minor units; `stock: null` is unlimited. SKUs are unique in the
    organization (articles and variants together) and tags must be the organization's.
    """
    data = services.merge(ArticleData(), _article_changes(values, ArticleData()))
    article = services.create_article(
        organization=current_organization(), actor=current_actor(), data=data
    )
    db.session.commit()
    return presenters.article_dict(_article_or_404(article.id), _currency())


@blueprint.route("/articles/<id:article_id>", methods=["GET"])
@require_permission(Permission.VIEW_ADMIN)
@blueprint.response(200, ArticleSchema)
def get_article(article_id: int) -> dict[str, Any]:
    """Get an article"""
    return presenters.article_dict(_article_or_404(article_id), _currency())


@blueprint.route("/articles/<id:article_id>", methods=["PATCH"])
@require_permission(Permission.MANAGE_CATALOG)
@blueprint.arguments(ArticleUpdateSchema)
@blueprint.response(200, ArticleSchema)
def update_article(changes: dict[str, Any], article_id: int) -> dict[str, Any]:
    """Change an article

    Only the fields sent change; `variants`, when sent, is the whole list (variants left out are
    removed, those with an `id` are changed, the others added). The answer is the whole article.
    """
    article = _article_or_404(article_id)
    current = services.article_data(article)
    services.update_article(
        organization=current_organization(),
        actor=current_actor(),
        article=article,
        data=services.merge(current, _article_changes(changes, current)),
    )
    db.session.commit()
    return presenters.article_dict(_article_or_404(article_id), _currency())


# --------------------------------------------------------------------------- shops


def _shop_or_404(slug: str) -> Any:
    shop = shop_services.find_shop(slug)
    if shop is None:
        raise NotFoundError(_("This shop does not exist."))
    return shop


def _shop_changes(values: dict[str, Any], current: shop_services.ShopData) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for field in ("name", "intro"):
        if field in values:
            for lang in ("fr", "en"):
                key = f"{field}_{lang}"
                changes[key] = values[field].get(lang, getattr(current, key))
    for field in (
        "slug",
        "access",
        "password",
        "customer_tag_ids",
        "staff_tag_ids",
        "cart_minutes",
        "max_cart_renewals",
        "payment_methods",
        "default_checkout_form_id",
        "etransfer",
        "communication",
    ):
        if field in values:
            changes[field] = values[field]
    return changes


@blueprint.route("/shops", methods=["GET"])
@require_permission(Permission.VIEW_ADMIN)
@blueprint.response(200, ShopSchema(many=True))
def list_shops() -> list[dict[str, Any]]:
    """List shops"""
    return [presenters.shop_dict(shop) for shop in shop_services.list_shops()]


@blueprint.route("/shops", methods=["POST"])
@require_permission(Permission.MANAGE_SHOPS)
@blueprint.arguments(ShopCreateSchema)
@blueprint.response(201, ShopSchema)
def create_shop(values: dict[str, Any]) -> dict[str, Any]:
    """Create a shop

    `access` is `public`, `password` (then `password` is needed; it is stored hashed and never
    answered) or `staff`. The category lists are ordered tag ids.
    """
    empty = shop_services.ShopData(customer_tag_ids=[], staff_tag_ids=[])
    shop = shop_services.create_shop(
        organization=current_organization(),
        actor=current_actor(),
        data=shop_services.merge(empty, _shop_changes(values, empty)),
    )
    db.session.commit()
    return presenters.shop_dict(shop)


@blueprint.route("/shops/<shop>", methods=["GET"])
@require_permission(Permission.VIEW_ADMIN)
@blueprint.response(200, ShopSchema)
def get_shop(shop: str) -> dict[str, Any]:
    """Get a shop"""
    return presenters.shop_dict(_shop_or_404(shop))


@blueprint.route("/shops/<shop>", methods=["PATCH"])
@require_permission(Permission.MANAGE_SHOPS)
@blueprint.arguments(ShopUpdateSchema)
@blueprint.response(200, ShopSchema)
def update_shop(changes: dict[str, Any], shop: str) -> dict[str, Any]:
    """Change a shop

    Only the fields sent change; a new `password` ends the access of everyone who had unlocked
    the shop.
    """
    found = _shop_or_404(shop)
    current = shop_services.shop_data(found)
    shop_services.update_shop(
        organization=current_organization(),
        actor=current_actor(),
        shop=found,
        data=shop_services.merge(current, _shop_changes(changes, current)),
    )
    db.session.commit()
    return presenters.shop_dict(found)


def _unlock_limit() -> str:
    return current_settings().login_rate_limit


def _unlock_key() -> str:
    organization = g.get("organization")
    shop = (request.view_args or {}).get("shop", "")
    return f"api-shop-unlock:{request.remote_addr}:{organization.id if organization else 0}:{shop}"


@blueprint.route("/shops/<shop>/unlock", methods=["POST"])
@public_endpoint
@limiter.limit(_unlock_limit, key_func=_unlock_key)
@blueprint.arguments(UnlockSchema)
@blueprint.response(200, AccessTokenSchema)
@blueprint.alt_response(429, description="Too many attempts: wait a minute.")
def unlock_shop(values: dict[str, Any], shop: str) -> dict[str, Any]:
    """Unlock a password shop

    Answers an access token to send as `X-Shop-Access` when reading the shop. Attempts are
    rate-limited; a new password ends the tokens given before.
    """
    view = _shop_view(shop)
    if view.shop.access is not ShopAccess.PASSWORD:
        message = _("This shop has no password.")
        raise ValidationError(message, fields={"password": [message]})
    if not shop_services.check_password(view.shop, values["password"]):
        message = _("This password is not right.")
        raise ValidationError(message, fields={"password": [message]})
    return {
        "access_token": shop_services.issue_access_token(view.shop),
        "expires_in": shop_services.ACCESS_TOKEN_MAX_AGE,
    }


# --------------------------------------------------------------------------- what a shop shows


def _shop_view(slug: str) -> ShopView:
    view = view_shop(slug)
    if view is None:
        raise NotFoundError(_("This shop does not exist."))
    return view


@blueprint.route("/shops/<shop>/articles", methods=["GET"])
@public_endpoint
@blueprint.query_arguments(ShopArticleQuerySchema)
@blueprint.response(200, page_schema(ShopArticleSchema))
@blueprint.alt_response(403, description="`shop_locked`: unlock the password shop first.")
def list_shop_articles(arguments: dict[str, Any], shop: str) -> Page:
    """List what a shop shows

    Exactly the articles the caller may see: customers see the articles with one of the shop's
    customer categories; staff of the organization see the staff categories too. A password shop
    needs an access token (`X-Shop-Access`) or an unlocked session; a staff-only shop is 404 for
    anyone else. `tag` keeps one category, `q` searches names and descriptions.
    """
    view = _shop_view(shop)
    if not view.unlocked:
        raise ShopLockedError(_("This shop is protected by a password: unlock it first."))
    query = visible_articles_query(view, tag_id=arguments["tag"], q=arguments["q"] or None)
    query = with_card_data(query).options(selectinload(Article.tag_links))
    page = paginate(query, page=arguments["page"], per_page=arguments["per_page"])
    availability = Availability.of(page["items"])
    currency = _currency()
    page["items"] = [
        presenters.shop_article_dict(view, article, availability, currency)
        for article in page["items"]
    ]
    return page


@blueprint.route("/shops/<shop>/articles/<id:article_id>", methods=["GET"])
@public_endpoint
@blueprint.response(200, ShopArticleSchema)
def get_shop_article(shop: str, article_id: int) -> dict[str, Any]:
    """Get an article of a shop

    404 when the caller may not see it in this shop (including a password shop not unlocked).
    """
    view = _shop_view(shop)
    article = visible_article(view, article_id) if view.unlocked else None
    if article is None:
        abort(404)
    return presenters.shop_article_dict(view, article, Availability.of([article]), _currency())
