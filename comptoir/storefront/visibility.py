"""Who sees what in a shop: the audience of a request, the shop's access rule, visible articles.

The rule, in one place for pages, images and the API:

- The audience is *staff* when the caller is staff of this organization (a signed-in member, or an
  API key of the organization); anyone else is a *customer*.
- A staff-only shop exists only for staff (404 for anyone else). A password shop opens to
  customers once unlocked: in this browser session, or with an access token in ``X-Shop-Access``.
- An article is visible to an audience when it is active and carries at least one tag that this
  shop shows to that audience (customer categories; staff see the staff categories as well).

Anything not visible answers 404, never 403, so nothing confirms it exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import has_request_context, request, session
from sqlalchemy.orm import selectinload

from comptoir.platform.db import db
from comptoir.platform.errors import DomainError
from comptoir.storefront import shops as shop_services
from comptoir.storefront.formatting import current_locale
from comptoir.storefront.models import (
    Article,
    ArticleImage,
    ArticleTag,
    Audience,
    Shop,
    ShopAccess,
    ShopArticlePosition,
    ShopCategory,
    Tag,
)
from comptoir.tenants.context import current_role

ACCESS_HEADER = "X-Shop-Access"
SESSION_KEY_PREFIX = "shop_access."


class ShopLockedError(DomainError):
    """A password shop asked for without its password (``POST …/unlock`` first)."""

    status = 403
    code = "shop_locked"


def current_audience() -> Audience:
    return Audience.STAFF if current_role() is not None else Audience.CUSTOMER


def session_key(shop: Shop) -> str:
    return f"{SESSION_KEY_PREFIX}{shop.id}"


def remember_unlock(shop: Shop) -> None:
    """This browser session may read ``shop`` until its password changes."""
    session[session_key(shop)] = shop.password_version


def is_unlocked(shop: Shop) -> bool:
    """Whether a customer of this request may read a password shop."""
    if shop.access is ShopAccess.PUBLIC:
        return True
    if shop.access is not ShopAccess.PASSWORD or not has_request_context():
        return False
    if session.get(session_key(shop)) == shop.password_version:
        return True
    return shop_services.access_token_valid(shop, request.headers.get(ACCESS_HEADER))


@dataclass(frozen=True)
class Category:
    tag: Tag
    audience: Audience  # STAFF for categories only staff see

    @property
    def staff_only(self) -> bool:
        return self.audience is Audience.STAFF


@dataclass
class ShopView:
    """A shop as this request may see it."""

    shop: Shop
    audience: Audience
    unlocked: bool

    @property
    def is_staff(self) -> bool:
        return self.audience is Audience.STAFF

    @property
    def categories(self) -> list[Category]:
        """The categories in order: the customer ones, then (for staff) the staff-only ones."""
        shown: list[Category] = []
        seen: set[int] = set()
        ordered = sorted(
            self.shop.categories,
            key=lambda c: (c.audience is Audience.STAFF, c.position, c.id),
        )
        for category in ordered:
            if category.audience is Audience.STAFF and not self.is_staff:
                continue
            if category.tag_id in seen:
                continue
            seen.add(category.tag_id)
            shown.append(Category(tag=category.tag, audience=category.audience))
        return shown

    @property
    def tag_ids(self) -> list[int]:
        return [category.tag.id for category in self.categories]


def load_shop(slug: str) -> Shop | None:
    return db.session.execute(
        sa.select(Shop)
        .where(Shop.slug == slug.lower())
        .options(selectinload(Shop.categories).joinedload(ShopCategory.tag))
    ).scalar_one_or_none()


def view_shop(slug: str, audience: Audience | None = None) -> ShopView | None:
    """The shop as the caller may see it, or None when it does not exist for them."""
    shop = load_shop(slug)
    if shop is None:
        return None
    audience = audience or current_audience()
    if shop.access is ShopAccess.STAFF and audience is not Audience.STAFF:
        return None
    unlocked = audience is Audience.STAFF or is_unlocked(shop)
    return ShopView(shop=shop, audience=audience, unlocked=unlocked)


def microsite_shops(audience: Audience) -> list[Shop]:
    """The shops the microsite lists: public and password ones; staff-only ones for staff."""
    query = sa.select(Shop).order_by(Shop.position, Shop.id)
    if audience is not Audience.STAFF:
        query = query.where(Shop.access != ShopAccess.STAFF)
    return list(db.session.execute(query).scalars())


# --------------------------------------------------------------------------- articles


def _localized_name_order() -> list[Any]:
    locale = current_locale()
    other = "en" if locale == "fr" else "fr"
    preferred = getattr(Article, f"name_{locale}")
    fallback = getattr(Article, f"name_{other}")
    return [sa.func.coalesce(sa.func.nullif(preferred, ""), fallback)]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def visible_articles_query(
    view: ShopView, *, tag_id: int | None = None, q: str | None = None
) -> sa.Select[Any]:
    """Active articles with at least one of the view's tags, in the shop's order."""
    tag_ids = view.tag_ids
    if tag_id is not None:
        tag_ids = [tag_id] if tag_id in tag_ids else []
    query = sa.select(Article).where(
        Article.active.is_(True),
        Article.id.in_(sa.select(ArticleTag.article_id).where(ArticleTag.tag_id.in_(tag_ids))),
    )
    if q:
        pattern = f"%{_escape_like(q.strip())}%"
        query = query.where(
            sa.or_(
                Article.name_fr.ilike(pattern, escape="\\"),
                Article.name_en.ilike(pattern, escape="\\"),
                Article.description_fr.ilike(pattern, escape="\\"),
                Article.description_en.ilike(pattern, escape="\\"),
                Article.sku.ilike(pattern, escape="\\"),
            )
        )
    position = sa.orm.aliased(ShopArticlePosition)
    return query.outerjoin(
        position, sa.and_(position.article_id == Article.id, position.shop_id == view.shop.id)
    ).order_by(position.position.asc().nulls_last(), *_localized_name_order(), Article.id)


def with_card_data(query: sa.Select[Any]) -> sa.Select[Any]:
    """Load what cards show (variants for availability, images) in one statement each."""
    return query.options(selectinload(Article.variants), selectinload(Article.images))


@dataclass
class Page:
    items: list[Article]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max((self.total + self.per_page - 1) // self.per_page, 1)

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paginate(query: sa.Select[Any], *, page: int, per_page: int) -> Page:
    page = max(page, 1)
    total = db.session.execute(
        sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    items = list(
        db.session.execute(query.limit(per_page).offset((page - 1) * per_page)).scalars().unique()
    )
    return Page(items=items, page=page, per_page=per_page, total=total)


def visible_article(view: ShopView, article_id: int) -> Article | None:
    query = visible_articles_query(view).where(Article.id == article_id)
    query = with_card_data(query).options(selectinload(Article.tag_links))
    return db.session.execute(query).scalars().first()


def visible_image(view: ShopView, image_id: int) -> ArticleImage | None:
    """An image, only when its article is visible in this shop to this audience."""
    visible_ids = visible_articles_query(view).with_only_columns(Article.id).order_by(None)
    return db.session.execute(
        sa.select(ArticleImage).where(
            ArticleImage.id == image_id, ArticleImage.article_id.in_(visible_ids)
        )
    ).scalar_one_or_none()


def visible_tag_ids_of(view: ShopView, article: Article) -> list[int]:
    """The article's tags this audience may know about (not the staff-only ones)."""
    shown = set(view.tag_ids)
    return [tag_id for tag_id in article.tag_ids if tag_id in shown]


def first_images(articles: Sequence[Article]) -> dict[int, ArticleImage]:
    return {a.id: a.images[0] for a in articles if a.images}
