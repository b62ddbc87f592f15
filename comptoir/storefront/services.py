"""Catalog services: tags, articles with their variants, tags and images.

Each function takes explicit arguments (the organization, the actor, the objects), validates all
its input before touching anything, changes state, writes an audit entry and flushes. The caller
(a view, the API, a CLI command) commits once. Shops live in :mod:`comptoir.storefront.shops`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import IO, Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.errors import NotFoundError, ValidationError
from comptoir.storefront import images as image_files
from comptoir.storefront import validation as check
from comptoir.storefront.models import (
    Article,
    ArticleImage,
    ArticleTag,
    ArticleVariant,
    Tag,
)
from comptoir.tenants.models import Organization

# Which taxes apply to an article; the tax rates themselves belong to billing.
TAX_CATEGORIES: dict[str, Any] = {
    "standard": _l("Standard (taxable)"),
    "exempt": _l("Exempt (no tax)"),
}
ARTICLE_AUDIT_FIELDS = (
    "name_fr",
    "name_en",
    "description_fr",
    "description_en",
    "price",
    "tax_category",
    "sku",
    "active",
    "stock",
    "max_per_order",
    "checkout_form_id",
)


# --------------------------------------------------------------------------- tags


def get_tag(tag_id: int) -> Tag:
    tag = db.session.get(Tag, tag_id)
    if tag is None:
        raise NotFoundError(_("This tag does not exist."))
    return tag


def list_tags() -> list[Tag]:
    return list(db.session.execute(sa.select(Tag).order_by(Tag.id)).scalars())


def _tag_values(name_fr: Any, name_en: Any, color: Any) -> tuple[str, str, str]:
    errors = check.FieldErrors()
    fr, en = check.translations(errors, "name", name_fr, name_en, max_length=100, required=True)
    cleaned_color = check.color(errors, "color", color)
    errors.raise_if_any()
    return fr, en, cleaned_color


def create_tag(
    *,
    organization: Organization,
    actor: Actor,
    name_fr: str = "",
    name_en: str = "",
    color: str = "#0b57d0",
) -> Tag:
    fr, en, cleaned_color = _tag_values(name_fr, name_en, color)
    tag = Tag(organization_id=organization.id, name_fr=fr, name_en=en, color=cleaned_color)
    db.session.add(tag)
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="tag.created",
        target=tag,
        after=audit.snapshot(tag, ("name_fr", "name_en", "color")),
    )
    return tag


def update_tag(
    *,
    organization: Organization,
    actor: Actor,
    tag: Tag,
    name_fr: str,
    name_en: str,
    color: str,
) -> Tag:
    fr, en, cleaned_color = _tag_values(name_fr, name_en, color)
    before = audit.snapshot(tag, ("name_fr", "name_en", "color"))
    tag.name_fr, tag.name_en, tag.color = fr, en, cleaned_color
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="tag.updated",
        target=tag,
        before=before,
        after=audit.snapshot(tag, ("name_fr", "name_en", "color")),
    )
    return tag


def delete_tag(*, organization: Organization, actor: Actor, tag: Tag) -> None:
    """Delete a tag; articles lose it and shops stop showing it as a category."""
    before = audit.snapshot(tag, ("name_fr", "name_en", "color"))
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="tag.deleted",
        target=tag,
        before=before,
    )
    db.session.delete(tag)
    db.session.flush()


def existing_tag_ids(tag_ids: Sequence[int]) -> set[int]:
    """The ids among ``tag_ids`` that are tags of the organization in scope."""
    if not tag_ids:
        return set()
    return set(db.session.execute(sa.select(Tag.id).where(Tag.id.in_(tag_ids))).scalars())


def check_tag_ids(errors: check.FieldErrors, field_name: str, values: Any) -> list[int]:
    tag_ids = check.id_list(errors, field_name, values)
    unknown = set(tag_ids) - existing_tag_ids(tag_ids)
    if unknown:
        errors.add(field_name, _("Unknown tag: %(ids)s.", ids=", ".join(map(str, sorted(unknown)))))
    return tag_ids


# --------------------------------------------------------------------------- articles


@dataclass
class VariantData:
    """A variant as submitted; ``id`` None adds one, an existing id changes it."""

    id: int | None = None
    name_fr: str = ""
    name_en: str = ""
    sku: str | None = None
    price: Any = None
    stock: Any = None


@dataclass
class ArticleData:
    """Every field of an article. ``variants`` None leaves the variants as they are."""

    name_fr: str = ""
    name_en: str = ""
    description_fr: str = ""
    description_en: str = ""
    price: Any = None
    tax_category: str = "standard"
    sku: str | None = None
    active: bool = True
    stock: Any = None
    max_per_order: Any = None
    checkout_form_id: Any = None
    tag_ids: list[int] = field(default_factory=list)
    variants: list[VariantData] | None = None


ARTICLE_DATA_FIELDS = frozenset(f.name for f in fields(ArticleData))


def article_data(article: Article) -> ArticleData:
    """The current values of ``article``, to merge a partial change onto."""
    return ArticleData(
        name_fr=article.name_fr,
        name_en=article.name_en,
        description_fr=article.description_fr,
        description_en=article.description_en,
        price=article.price,
        tax_category=article.tax_category,
        sku=article.sku,
        active=article.active,
        stock=article.stock,
        max_per_order=article.max_per_order,
        checkout_form_id=article.checkout_form_id,
        tag_ids=article.tag_ids,
        variants=None,
    )


def variant_data(variant: ArticleVariant) -> VariantData:
    return VariantData(
        id=variant.id,
        name_fr=variant.name_fr,
        name_en=variant.name_en,
        sku=variant.sku,
        price=variant.price,
        stock=variant.stock,
    )


def merge(current: ArticleData, changes: dict[str, Any]) -> ArticleData:
    unknown = set(changes) - ARTICLE_DATA_FIELDS
    if unknown:
        message = f"unknown article fields: {sorted(unknown)}"
        raise TypeError(message)
    return replace(current, **changes)


def get_article(article_id: int) -> Article:
    article = db.session.get(Article, article_id)
    if article is None:
        raise NotFoundError(_("This article does not exist."))
    return article


def _taken_skus(skus: Sequence[str], *, article_id: int | None) -> set[str]:
    """SKUs among ``skus`` used by another article or by a variant of another article."""
    if not skus:
        return set()
    lowered = [s.lower() for s in skus]
    article_query = sa.select(Article.sku).where(sa.func.lower(Article.sku).in_(lowered))
    variant_query = sa.select(ArticleVariant.sku).where(
        sa.func.lower(ArticleVariant.sku).in_(lowered)
    )
    if article_id is not None:
        article_query = article_query.where(Article.id != article_id)
        variant_query = variant_query.where(ArticleVariant.article_id != article_id)
    taken = db.session.execute(sa.union_all(article_query, variant_query)).scalars()
    return {s.lower() for s in taken if s}


@dataclass
class _CleanVariant:
    id: int | None
    name_fr: str
    name_en: str
    sku: str | None
    price: int | None
    stock: int | None


@dataclass
class _CleanArticle:
    name_fr: str
    name_en: str
    description_fr: str
    description_en: str
    price: int
    tax_category: str
    sku: str | None
    active: bool
    stock: int | None
    max_per_order: int | None
    checkout_form_id: int | None
    tag_ids: list[int]
    variants: list[_CleanVariant] | None


def _validate_variants(
    errors: check.FieldErrors, variants: list[VariantData], article: Article | None
) -> list[_CleanVariant]:
    own_ids = {v.id for v in article.variants} if article is not None else set()
    cleaned: list[_CleanVariant] = []
    for index, variant in enumerate(variants):
        prefix = f"variants.{index}"
        if variant.id is not None and variant.id not in own_ids:
            errors.add(f"{prefix}.id", _("This variant is not one of the article's."))
        fr, en = check.translations(
            errors,
            f"{prefix}.name",
            variant.name_fr,
            variant.name_en,
            max_length=100,
            required=True,
        )
        cleaned.append(
            _CleanVariant(
                id=variant.id,
                name_fr=fr,
                name_en=en,
                sku=check.sku(errors, f"{prefix}.sku", variant.sku),
                price=check.money(errors, f"{prefix}.price", variant.price, required=False),
                stock=check.quantity(errors, f"{prefix}.stock", variant.stock),
            )
        )
    return cleaned


def _check_skus(errors: check.FieldErrors, clean: _CleanArticle, article: Article | None) -> None:
    """SKUs are unique in the organization, articles and variants together."""
    located: list[tuple[str, str]] = []
    if clean.sku:
        located.append(("sku", clean.sku))
    if clean.variants is not None:
        located.extend((f"variants.{i}.sku", v.sku) for i, v in enumerate(clean.variants) if v.sku)
    elif article is not None:
        # Unchanged variants still share the namespace with the article's new SKU.
        located.extend(("variants", v.sku) for v in article.variants if v.sku)
    seen: set[str] = set()
    for field_name, value in located:
        if value.lower() in seen:
            errors.add(field_name, _("This SKU is used twice in this article."))
        seen.add(value.lower())
    taken = _taken_skus(
        [value for _field, value in located], article_id=article.id if article else None
    )
    for field_name, value in located:
        if value.lower() in taken:
            errors.add(field_name, _("This SKU is already used by another article."))


def _checkout_form_exists(form_id: int) -> bool:
    from comptoir.storefront.checkout_forms import form_exists

    return form_exists(form_id)


def _validate_article(data: ArticleData, article: Article | None) -> _CleanArticle:
    errors = check.FieldErrors()
    name_fr, name_en = check.translations(
        errors, "name", data.name_fr, data.name_en, max_length=200, required=True
    )
    description_fr, description_en = check.translations(
        errors,
        "description",
        data.description_fr,
        data.description_en,
        max_length=20_000,
        required=False,
    )
    price = check.money(errors, "price", data.price)
    if data.tax_category not in TAX_CATEGORIES:
        errors.add("tax_category", _("Choose one of: %(codes)s.", codes=", ".join(TAX_CATEGORIES)))
    if not isinstance(data.active, bool):
        errors.add("active", _("Give true or false."))
    stock = check.quantity(errors, "stock", data.stock)
    max_per_order = check.quantity(errors, "max_per_order", data.max_per_order, minimum=1)
    checkout_form_id = None
    if data.checkout_form_id is not None:
        checkout_form_id = check.quantity(
            errors, "checkout_form_id", data.checkout_form_id, minimum=1
        )
        if checkout_form_id is not None and not _checkout_form_exists(checkout_form_id):
            errors.add("checkout_form_id", _("This checkout form does not exist."))
    variants = (
        _validate_variants(errors, data.variants, article) if data.variants is not None else None
    )
    clean = _CleanArticle(
        name_fr=name_fr,
        name_en=name_en,
        description_fr=description_fr,
        description_en=description_en,
        price=price or 0,
        tax_category=data.tax_category,
        sku=check.sku(errors, "sku", data.sku),
        active=bool(data.active),
        stock=stock,
        max_per_order=max_per_order,
        checkout_form_id=checkout_form_id,
        tag_ids=check_tag_ids(errors, "tag_ids", data.tag_ids),
        variants=variants,
    )
    if not errors:
        _check_skus(errors, clean, article)
    errors.raise_if_any()
    return clean


def _apply_variants(article: Article, variants: list[_CleanVariant]) -> None:
    by_id = {v.id: v for v in article.variants}
    kept: list[ArticleVariant] = []
    for position, clean in enumerate(variants):
        variant = by_id.get(clean.id) if clean.id is not None else None
        if variant is None:
            variant = ArticleVariant(organization_id=article.organization_id)
        variant.name_fr, variant.name_en = clean.name_fr, clean.name_en
        variant.sku, variant.price, variant.stock = clean.sku, clean.price, clean.stock
        variant.position = position
        kept.append(variant)
    # Removed variants go before new ones take their SKUs (one flush, deletes are ordered first
    # only within a table; clearing the old SKUs avoids a unique clash in between).
    for variant in article.variants:
        if variant not in kept and variant.sku is not None:
            variant.sku = None
    db.session.flush()
    article.variants = kept


def _apply_tags(article: Article, tag_ids: list[int]) -> None:
    wanted = set(tag_ids)
    article.tag_links = [link for link in article.tag_links if link.tag_id in wanted]
    present = {link.tag_id for link in article.tag_links}
    for tag_id in tag_ids:
        if tag_id not in present:
            article.tag_links.append(
                ArticleTag(organization_id=article.organization_id, tag_id=tag_id)
            )


def _snapshot(article: Article) -> dict[str, Any]:
    values = audit.snapshot(article, ARTICLE_AUDIT_FIELDS)
    values["tag_ids"] = sorted(article.tag_ids)
    values["variants"] = [
        {
            "id": v.id,
            "name_fr": v.name_fr,
            "name_en": v.name_en,
            "sku": v.sku,
            "price": v.price,
            "stock": v.stock,
        }
        for v in article.variants
    ]
    return values


def _assign(article: Article, clean: _CleanArticle) -> None:
    for name in ARTICLE_AUDIT_FIELDS:
        setattr(article, name, getattr(clean, name))


def create_article(*, organization: Organization, actor: Actor, data: ArticleData) -> Article:
    clean = _validate_article(data, None)
    article = Article(organization_id=organization.id)
    _assign(article, clean)
    db.session.add(article)
    _apply_tags(article, clean.tag_ids)
    if clean.variants:
        _apply_variants(article, clean.variants)
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="article.created",
        target=article,
        after=_snapshot(article),
    )
    return article


def update_article(
    *, organization: Organization, actor: Actor, article: Article, data: ArticleData
) -> Article:
    clean = _validate_article(data, article)
    before = _snapshot(article)
    _assign(article, clean)
    _apply_tags(article, clean.tag_ids)
    if clean.variants is not None:
        _apply_variants(article, clean.variants)
    db.session.flush()
    after = _snapshot(article)
    if after != before:
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="article.updated",
            target=article,
            before=before,
            after=after,
        )
    return article


def set_articles_active(
    *, organization: Organization, actor: Actor, articles: Sequence[Article], active: bool
) -> int:
    """Archive (``active=False``) or restore articles; answers how many changed."""
    changed = 0
    for article in articles:
        if article.active is active:
            continue
        article.active = active
        changed += 1
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="article.restored" if active else "article.archived",
            target=article,
            before={"active": not active},
            after={"active": active},
        )
    db.session.flush()
    return changed


def tag_articles(
    *,
    organization: Organization,
    actor: Actor,
    articles: Sequence[Article],
    tag: Tag,
    remove: bool = False,
) -> int:
    """Add ``tag`` to (or remove it from) every article; answers how many changed."""
    changed = 0
    for article in articles:
        has_tag = tag.id in article.tag_ids
        if has_tag is not remove:
            continue
        if remove:
            article.tag_links = [link for link in article.tag_links if link.tag_id != tag.id]
        else:
            article.tag_links.append(ArticleTag(organization_id=organization.id, tag_id=tag.id))
        changed += 1
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="article.untagged" if remove else "article.tagged",
            target=article,
            after={"tag_id": tag.id},
        )
    db.session.flush()
    return changed


def articles_by_ids(article_ids: Sequence[int]) -> list[Article]:
    """The organization's articles among ``article_ids``; ids of others are ignored."""
    if not article_ids:
        return []
    return list(
        db.session.execute(
            sa.select(Article).where(Article.id.in_(article_ids)).order_by(Article.id)
        ).scalars()
    )


def search_articles_query(
    *, q: str | None = None, tag_id: int | None = None, status: str = "active"
) -> sa.Select[Any]:
    """The admin list: text search on names and SKUs, a tag filter, active/archived/all."""
    query = sa.select(Article)
    if status == "active":
        query = query.where(Article.active.is_(True))
    elif status == "archived":
        query = query.where(Article.active.is_(False))
    if tag_id is not None:
        query = query.where(
            Article.id.in_(sa.select(ArticleTag.article_id).where(ArticleTag.tag_id == tag_id))
        )
    if q:
        pattern = f"%{_escape_like(q.strip())}%"
        query = query.where(
            sa.or_(
                Article.name_fr.ilike(pattern, escape="\\"),
                Article.name_en.ilike(pattern, escape="\\"),
                Article.sku.ilike(pattern, escape="\\"),
                Article.id.in_(
                    sa.select(ArticleVariant.article_id).where(
                        ArticleVariant.sku.ilike(pattern, escape="\\")
                    )
                ),
            )
        )
    return query.order_by(Article.name_fr, Article.name_en, Article.id)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --------------------------------------------------------------------------- images


def add_image(
    *,
    organization: Organization,
    actor: Actor,
    article: Article,
    stream: IO[bytes],
    alt_fr: str = "",
    alt_en: str = "",
) -> ArticleImage:
    """Verify, resize and store an uploaded image, as the article's last image."""
    errors = check.FieldErrors()
    fr, en = check.translations(errors, "alt", alt_fr, alt_en, max_length=200, required=False)
    errors.raise_if_any()
    processed = image_files.process_image(image_files.read_limited(stream))
    storage_key = image_files.new_storage_key(organization.id, article.id)
    image_files.store(image_files.image_storage(), storage_key, processed)
    image = ArticleImage(
        organization_id=organization.id,
        storage_key=storage_key,
        format=processed.format,
        width=processed.width,
        height=processed.height,
        byte_size=processed.byte_size,
        digest=processed.digest,
        alt_fr=fr,
        alt_en=en,
        position=max((i.position for i in article.images), default=-1) + 1,
    )
    article.images.append(image)
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="article.image_added",
        target=article,
        after={"image_id": image.id, "width": image.width, "height": image.height},
    )
    return image


def delete_image(
    *, organization: Organization, actor: Actor, article: Article, image_id: int
) -> None:
    image = next((i for i in article.images if i.id == image_id), None)
    if image is None:
        raise NotFoundError(_("This image does not exist."))
    article.images.remove(image)
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="article.image_removed",
        target=article,
        before={"image_id": image_id},
    )
    # The files go after the row: a failed transaction leaves orphan files, never broken rows.
    image_files.remove(image_files.image_storage(), image.storage_key, image.format)


def move_image(
    *, organization: Organization, actor: Actor, article: Article, image_id: int, offset: int
) -> None:
    """Move an image earlier (-1) or later (+1); the first image is the article's card image."""
    ordered = list(article.images)
    index = next((i for i, image in enumerate(ordered) if image.id == image_id), None)
    if index is None:
        raise NotFoundError(_("This image does not exist."))
    target = index + offset
    if offset not in (-1, 1):
        raise ValidationError(_("Move one place at a time."))
    if not 0 <= target < len(ordered):
        return
    ordered[index], ordered[target] = ordered[target], ordered[index]
    for position, image in enumerate(ordered):
        image.position = position
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="article.images_reordered",
        target=article,
        after={"image_ids": [image.id for image in ordered]},
    )
