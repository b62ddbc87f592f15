"""The catalog (articles, variants, images, tags) and the shop pages that show it.

Articles are the organization's products, not a shop's: everything shop-specific (which tags a shop
shows to whom, the order of its articles) lives in the shop tables. Translatable text is stored as
one column per language (``name_fr``, ``name_en``) and read with :meth:`Translatable.localized`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from comptoir.platform.db import (
    BigId,
    JsonColumn,
    Model,
    TenantMixin,
    TimestampMixin,
    UtcDateTime,
    tenant_foreign_key,
    utcnow,
)
from comptoir.platform.tenancy import current_scope

LANGUAGES = ("fr", "en")


class ShopAccess(StrEnum):
    PUBLIC = "public"
    PASSWORD = "password"  # noqa: S105 - an access mode, not a secret
    STAFF = "staff"


class Audience(StrEnum):
    """Who looks at a shop: its customers, or the organization's staff (who see more)."""

    CUSTOMER = "customer"
    STAFF = "staff"


def _enum(enum_class: type[StrEnum], name: str) -> sa.Enum:
    # Text with a CHECK constraint, like the foundation's enums: a new value is a migration.
    return sa.Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Translatable:
    """Reads a ``<field>_fr`` / ``<field>_en`` pair in the visitor's language, else the other."""

    def localized(self, field: str, locale: str | None = None) -> str:
        if locale is None:
            from comptoir.storefront.formatting import current_locale

            locale = current_locale()
        preferred = [locale, *(lang for lang in LANGUAGES if lang != locale)]
        for lang in preferred:
            value = getattr(self, f"{field}_{lang}", None)
            if value:
                return str(value)
        return ""

    def translations(self, field: str) -> dict[str, str]:
        return {lang: getattr(self, f"{field}_{lang}") or "" for lang in LANGUAGES}


# --------------------------------------------------------------------------- catalog


class Tag(TenantMixin, TimestampMixin, Translatable, Model):
    """A label on articles; shops show articles by tag (their categories)."""

    __tablename__ = "tags"
    __table_args__ = TenantMixin.tenant_table_args()

    name_fr: Mapped[str] = mapped_column(sa.String(100), default="", nullable=False)
    name_en: Mapped[str] = mapped_column(sa.String(100), default="", nullable=False)
    color: Mapped[str] = mapped_column(sa.String(7), default="#0b57d0", nullable=False)

    @property
    def name(self) -> str:
        return self.localized("name")


class Article(TenantMixin, TimestampMixin, Translatable, Model):
    """Something the organization sells: a course, a swim cap, a pair of goggles."""

    __tablename__ = "articles"
    __table_args__ = TenantMixin.tenant_table_args(
        # SKUs of articles and variants share one namespace; the service checks across both.
        sa.UniqueConstraint("organization_id", "sku", name="uq_articles_org_sku"),
        sa.CheckConstraint("price >= 0", name="price_not_negative"),
        sa.CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
        sa.CheckConstraint("sold >= 0", name="sold_not_negative"),
        sa.CheckConstraint("max_per_order IS NULL OR max_per_order >= 1", name="max_per_order"),
        sa.Index("ix_articles_org_active", "organization_id", "active"),
        tenant_foreign_key(
            ["checkout_form_id"],
            "checkout_forms",
            name="fk_articles_checkout_form_id_checkout_forms",
        ),
    )

    name_fr: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    name_en: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    description_fr: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)
    description_en: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)
    # Minor units (cents) of the organization's currency, before tax.
    price: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    tax_category: Mapped[str] = mapped_column(sa.String(20), default="standard", nullable=False)
    sku: Mapped[str | None] = mapped_column(sa.String(64))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True, nullable=False)
    # NULL is unlimited. With variants, stock is tracked on each variant instead.
    stock: Mapped[int | None] = mapped_column(sa.Integer)
    # Units sold for good (paid or promised orders); holds of open carts are counted apart.
    sold: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)
    max_per_order: Mapped[int | None] = mapped_column(sa.Integer)
    # The checkout form this article asks for (comptoir.storefront.checkout_forms).
    checkout_form_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=utcnow)

    variants: Mapped[list[ArticleVariant]] = relationship(
        primaryjoin="Article.id == foreign(ArticleVariant.article_id)",
        order_by="ArticleVariant.position, ArticleVariant.id",
        cascade="all, delete-orphan",
        back_populates="article",
    )
    tag_links: Mapped[list[ArticleTag]] = relationship(
        primaryjoin="Article.id == foreign(ArticleTag.article_id)",
        cascade="all, delete-orphan",
        order_by="ArticleTag.id",
    )
    images: Mapped[list[ArticleImage]] = relationship(
        primaryjoin="Article.id == foreign(ArticleImage.article_id)",
        order_by="ArticleImage.position, ArticleImage.id",
        cascade="all, delete-orphan",
        back_populates="article",
    )

    @property
    def name(self) -> str:
        return self.localized("name")

    @property
    def description(self) -> str:
        return self.localized("description")

    @property
    def tag_ids(self) -> list[int]:
        return [link.tag_id for link in self.tag_links]

    def price_bounds(self) -> tuple[int, int]:
        """The lowest and highest price a customer may pay (variants may differ)."""
        prices = [v.effective_price for v in self.variants] or [self.price]
        return min(prices), max(prices)

    def __repr__(self) -> str:
        return f"<Article {self.id} {self.name_fr or self.name_en!r}>"


class ArticleVariant(TenantMixin, Translatable, Model):
    """A choice inside an article (a size, a colour) with its own SKU, price and stock."""

    __tablename__ = "article_variants"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["article_id"], "articles", ondelete="CASCADE"),
        sa.UniqueConstraint("organization_id", "sku", name="uq_article_variants_org_sku"),
        sa.CheckConstraint("price IS NULL OR price >= 0", name="price_not_negative"),
        sa.CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
        sa.CheckConstraint("sold >= 0", name="sold_not_negative"),
        sa.Index("ix_article_variants_article", "article_id", "position"),
    )

    article_id: Mapped[int] = mapped_column(BigId, nullable=False)
    name_fr: Mapped[str] = mapped_column(sa.String(100), default="", nullable=False)
    name_en: Mapped[str] = mapped_column(sa.String(100), default="", nullable=False)
    sku: Mapped[str | None] = mapped_column(sa.String(64))
    # NULL means the article's price.
    price: Mapped[int | None] = mapped_column(sa.Integer)
    stock: Mapped[int | None] = mapped_column(sa.Integer)
    sold: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)
    position: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)

    article: Mapped[Article] = relationship(
        primaryjoin="Article.id == foreign(ArticleVariant.article_id)",
        back_populates="variants",
    )

    @property
    def name(self) -> str:
        return self.localized("name")

    @property
    def effective_price(self) -> int:
        return self.article.price if self.price is None else self.price


class ArticleTag(TenantMixin, Model):
    __tablename__ = "article_tags"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["article_id"], "articles", ondelete="CASCADE"),
        tenant_foreign_key(["tag_id"], "tags", ondelete="CASCADE"),
        sa.UniqueConstraint("article_id", "tag_id", name="uq_article_tags_article_tag"),
        # The shop page looks articles up by tag.
        sa.Index("ix_article_tags_tag", "tag_id", "article_id"),
    )

    article_id: Mapped[int] = mapped_column(BigId, nullable=False)
    tag_id: Mapped[int] = mapped_column(BigId, nullable=False)


class ArticleImage(TenantMixin, TimestampMixin, Translatable, Model):
    """An uploaded picture, stored re-encoded in a few sizes through the image storage."""

    __tablename__ = "article_images"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["article_id"], "articles", ondelete="CASCADE"),
        sa.Index("ix_article_images_article", "article_id", "position"),
    )

    article_id: Mapped[int] = mapped_column(BigId, nullable=False)
    position: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)
    # Where the sizes live in the storage: "<storage_key>/<size>.<extension>".
    storage_key: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    format: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    width: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    height: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    byte_size: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    digest: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    alt_fr: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    alt_en: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)

    article: Mapped[Article] = relationship(
        primaryjoin="Article.id == foreign(ArticleImage.article_id)", back_populates="images"
    )


# --------------------------------------------------------------------------- shops


class Shop(TenantMixin, TimestampMixin, Translatable, Model):
    """A shop page of the organization's microsite, with its access rule and categories."""

    __tablename__ = "shops"
    __table_args__ = TenantMixin.tenant_table_args(
        sa.UniqueConstraint("organization_id", "slug", name="uq_shops_org_slug"),
        sa.CheckConstraint("cart_minutes >= 1", name="cart_minutes_positive"),
        sa.CheckConstraint("max_cart_renewals >= 0", name="max_cart_renewals_not_negative"),
        tenant_foreign_key(
            ["default_checkout_form_id"],
            "checkout_forms",
            name="fk_shops_default_checkout_form_id_checkout_forms",
        ),
    )

    slug: Mapped[str] = mapped_column(sa.String(63), nullable=False)
    name_fr: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    name_en: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    intro_fr: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)
    intro_en: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)
    access: Mapped[ShopAccess] = mapped_column(
        _enum(ShopAccess, "shop_access"), default=ShopAccess.PUBLIC, nullable=False
    )
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    # Bumped when the password changes: earlier unlocks (sessions, access tokens) stop working.
    password_version: Mapped[int] = mapped_column(sa.Integer, default=1, nullable=False)
    position: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)
    cart_minutes: Mapped[int] = mapped_column(sa.Integer, default=20, nullable=False)
    # How many times a customer may renew a cart that is about to expire.
    max_cart_renewals: Mapped[int] = mapped_column(sa.Integer, default=2, nullable=False)
    payment_methods: Mapped[list[str]] = mapped_column(
        JsonColumn, default=lambda: ["offline"], nullable=False
    )
    default_checkout_form_id: Mapped[int | None] = mapped_column(BigId)
    etransfer: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict, nullable=False)
    communication: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict, nullable=False)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=utcnow)

    categories: Mapped[list[ShopCategory]] = relationship(
        primaryjoin="Shop.id == foreign(ShopCategory.shop_id)",
        order_by="ShopCategory.audience, ShopCategory.position, ShopCategory.id",
        cascade="all, delete-orphan",
    )

    @property
    def name(self) -> str:
        return self.localized("name")

    @property
    def intro(self) -> str:
        return self.localized("intro")

    def tag_ids_for(self, audience: Audience) -> list[int]:
        return [c.tag_id for c in self.categories if c.audience is audience]

    def __repr__(self) -> str:
        return f"<Shop {self.slug}>"


class ShopCategory(TenantMixin, Model):
    """A tag a shop shows as a category, to its customers or to staff only, in order."""

    __tablename__ = "shop_categories"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["shop_id"], "shops", ondelete="CASCADE"),
        tenant_foreign_key(["tag_id"], "tags", ondelete="CASCADE"),
        sa.UniqueConstraint("shop_id", "audience", "tag_id", name="uq_shop_categories_shop_tag"),
    )

    shop_id: Mapped[int] = mapped_column(BigId, nullable=False)
    tag_id: Mapped[int] = mapped_column(BigId, nullable=False)
    audience: Mapped[Audience] = mapped_column(_enum(Audience, "audience"), nullable=False)
    position: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)

    tag: Mapped[Tag] = relationship(
        primaryjoin="Tag.id == foreign(ShopCategory.tag_id)", lazy="joined", viewonly=True
    )


class ShopArticlePosition(TenantMixin, Model):
    """Where an article sits in a shop's lists (Design mode); unlisted articles follow by name."""

    __tablename__ = "shop_article_positions"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["shop_id"], "shops", ondelete="CASCADE"),
        tenant_foreign_key(["article_id"], "articles", ondelete="CASCADE"),
        sa.UniqueConstraint("shop_id", "article_id", name="uq_shop_article_positions_shop_article"),
    )

    shop_id: Mapped[int] = mapped_column(BigId, nullable=False)
    article_id: Mapped[int] = mapped_column(BigId, nullable=False)
    position: Mapped[int] = mapped_column(sa.Integer, nullable=False)


class CatalogVersion(TenantMixin, Model):
    """A counter bumped by every catalog or shop change: the key of cached shop pages."""

    __tablename__ = "catalog_versions"
    __table_args__ = TenantMixin.tenant_table_args(
        sa.UniqueConstraint("organization_id", name="uq_catalog_versions_org"),
    )

    version: Mapped[int] = mapped_column(sa.BigInteger, default=1, nullable=False)


# --------------------------------------------------------------------------- catalog version

CATALOG_MODELS: tuple[type, ...] = (
    Tag,
    Article,
    ArticleVariant,
    ArticleTag,
    ArticleImage,
    Shop,
    ShopCategory,
    ShopArticlePosition,
)


_PENDING_VERSIONS = "comptoir_catalog_versions"


def bump_catalog_version(session: Session, organization_id: int) -> int:
    """Invalidate the organization's cached shop pages (in the caller's transaction).

    Answers the new version; once the transaction commits, cached pages of older versions stop
    answering (:func:`comptoir.storefront.page_cache.publish_versions`).
    """
    table = cast(sa.Table, CatalogVersion.__table__)
    connection = session.connection()
    version = connection.execute(
        sa.update(table)
        .where(table.c.organization_id == organization_id)
        .values(version=table.c.version + 1)
        .returning(table.c.version)
    ).scalar_one_or_none()
    if version is None:
        version = 2
        connection.execute(
            sa.insert(table).values(organization_id=organization_id, version=version)
        )
    slug = connection.execute(
        sa.text("SELECT slug FROM organizations WHERE id = :id"), {"id": organization_id}
    ).scalar_one_or_none()
    if slug is not None:
        pending: dict[str, int] = session.info.setdefault(_PENDING_VERSIONS, {})
        pending[slug] = max(pending.get(slug, 0), int(version))
    return int(version)


def _bump_on_catalog_change(session: Session, flush_context: Any) -> None:
    # Every ORM write to the catalog, whoever makes it, invalidates the cached pages; services
    # that write with bulk statements bump explicitly. After the flush, so that new rows carry
    # their organization and the row-level security settings are in step with the scope.
    organizations: set[int] = set()
    for instance in (*session.new, *session.dirty, *session.deleted):
        if isinstance(instance, CATALOG_MODELS):
            organization_id = getattr(instance, "organization_id", None)
            if organization_id is None:
                organization_id = current_scope().organization_id
            if organization_id is not None:
                organizations.add(organization_id)
    for organization_id in sorted(organizations):
        bump_catalog_version(session, organization_id)


def _publish_after_commit(session: Session) -> None:
    versions = session.info.pop(_PENDING_VERSIONS, None)
    if versions:
        from comptoir.storefront.page_cache import publish_versions

        publish_versions(versions)


def _forget_after_rollback(session: Session, *args: Any) -> None:
    session.info.pop(_PENDING_VERSIONS, None)


def install_catalog_version_hook(session_class: Any) -> None:
    if event.contains(session_class, "after_flush", _bump_on_catalog_change):
        return
    event.listen(session_class, "after_flush", _bump_on_catalog_change)
    event.listen(session_class, "after_commit", _publish_after_commit)
    event.listen(session_class, "after_rollback", _forget_after_rollback)


install_catalog_version_hook(Session)

# Carts live in their own module; importing them here registers them with every model import.
# Articles and shops point at checkout forms: their table joins the metadata the same way.
from comptoir.storefront import checkout_forms as _checkout_forms  # noqa: E402
from comptoir.storefront.cart_models import (  # noqa: E402, F401
    Cart,
    CartLine,
    CartStatus,
    StockHold,
)

del _checkout_forms
