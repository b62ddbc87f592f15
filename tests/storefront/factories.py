"""Catalog factories: tags, articles, variants and shops, committed across organizations."""

from __future__ import annotations

from typing import Any

import factory

from comptoir.platform.db import db
from comptoir.platform.tenancy import unscoped
from comptoir.storefront.models import (
    Article,
    ArticleTag,
    ArticleVariant,
    Audience,
    Shop,
    ShopAccess,
    ShopCategory,
    Tag,
)
from comptoir.tenants.models import Organization
from tests.factories import _TEST_HASHER, CommittingFactory, OrganizationFactory


def detach(instance: Any) -> Any:
    """Load and detach a committed tenant row, so a test reads its fields outside any scope."""
    with unscoped():
        db.session.refresh(instance)
        db.session.expunge(instance)
        db.session.commit()
    return instance


class CatalogFactory(CommittingFactory):
    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> Any:
        return detach(super()._create(model_class, *args, **kwargs))


class TagFactory(CatalogFactory):
    class Meta:
        model = Tag

    organization_id = factory.LazyAttribute(lambda o: o.organization_ref.id)
    name_fr = factory.Sequence(lambda n: f"Étiquette {n}")
    name_en = factory.Sequence(lambda n: f"Tag {n}")
    color = "#0b57d0"

    class Params:
        organization_ref = factory.SubFactory(OrganizationFactory)


class ArticleFactory(CatalogFactory):
    class Meta:
        model = Article

    organization_id = factory.LazyAttribute(lambda o: o.organization_ref.id)
    name_fr = factory.Sequence(lambda n: f"Article {n}")
    name_en = factory.Sequence(lambda n: f"Item {n}")
    description_fr = "Une description."
    description_en = "A description."
    price = 1500
    tax_category = "standard"
    active = True
    sold = 0

    class Params:
        organization_ref = factory.SubFactory(OrganizationFactory)


class ShopFactory(CatalogFactory):
    class Meta:
        model = Shop

    organization_id = factory.LazyAttribute(lambda o: o.organization_ref.id)
    slug = factory.Sequence(lambda n: f"boutique-{n}")
    name_fr = factory.Sequence(lambda n: f"Boutique {n}")
    name_en = factory.Sequence(lambda n: f"Shop {n}")
    access = ShopAccess.PUBLIC
    password_version = 1
    cart_minutes = 20
    payment_methods = factory.LazyFunction(lambda: ["offline"])

    class Params:
        organization_ref = factory.SubFactory(OrganizationFactory)


SHOP_PASSWORD = "nageurs-2026"


def password_shop(organization: Organization, **fields: Any) -> Shop:
    return ShopFactory(
        organization_ref=organization,
        access=ShopAccess.PASSWORD,
        password_hash=_TEST_HASHER.hash(SHOP_PASSWORD),
        **fields,
    )


def tag_article(article: Article, *tags: Tag) -> None:
    for tag in tags:
        _LinkFactory(organization_id=article.organization_id, article_id=article.id, tag_id=tag.id)


def add_category(
    shop: Shop, tag: Tag, audience: Audience = Audience.CUSTOMER, position: int = 0
) -> None:
    _CategoryFactory(
        organization_id=shop.organization_id,
        shop_id=shop.id,
        tag_id=tag.id,
        audience=audience,
        position=position,
    )


def add_variant(article: Article, name: str, **fields: Any) -> ArticleVariant:
    variant: ArticleVariant = _VariantFactory(
        organization_id=article.organization_id,
        article_id=article.id,
        name_fr=name,
        name_en=name,
        **fields,
    )
    return variant


class _LinkFactory(CatalogFactory):
    class Meta:
        model = ArticleTag


class _CategoryFactory(CatalogFactory):
    class Meta:
        model = ShopCategory


class _VariantFactory(CatalogFactory):
    class Meta:
        model = ArticleVariant

    sold = 0
    position = 0
