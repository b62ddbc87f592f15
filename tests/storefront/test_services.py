"""Catalog and shop services: bad input keeps nothing, unique SKUs, tags stay in their tenant."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from comptoir.platform.audit import Actor, AuditLog
from comptoir.platform.db import db
from comptoir.platform.errors import ValidationError
from comptoir.platform.tenancy import tenant_scope, unscoped
from comptoir.storefront import services, shops
from comptoir.storefront.inventory import Availability
from comptoir.storefront.models import (
    Article,
    ArticleVariant,
    Audience,
    CatalogVersion,
    Shop,
    ShopAccess,
    Tag,
)
from comptoir.storefront.services import ArticleData, VariantData
from comptoir.storefront.shops import ShopData
from comptoir.tenants.models import Organization
from tests.factories import OrganizationFactory
from tests.storefront.factories import ArticleFactory, TagFactory, add_variant, detach

pytestmark = pytest.mark.usefixtures("app_context")

ACTOR = Actor(label="owner@example.org")


@pytest.fixture
def organization() -> Organization:
    return OrganizationFactory(slug="club-natation")


def _count(model: type) -> int:
    with unscoped():
        return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def _create(organization: Organization, **fields: Any) -> Article:
    values: dict[str, Any] = {"name_fr": "Bonnet", "price": 1200, **fields}
    with tenant_scope(organization.id):
        article = services.create_article(
            organization=organization, actor=ACTOR, data=ArticleData(**values)
        )
        db.session.commit()
    return detach(article)


def _refused(organization: Organization, **fields: Any) -> dict[str, list[str]]:
    values: dict[str, Any] = {"name_fr": "Bonnet", "price": 1200, **fields}
    with tenant_scope(organization.id), pytest.raises(ValidationError) as caught:
        services.create_article(organization=organization, actor=ACTOR, data=ArticleData(**values))
    db.session.rollback()
    return caught.value.fields


def test_create_article_with_variants_and_tags(organization: Organization) -> None:
    tag = TagFactory(organization_ref=organization)
    article = _create(
        organization,
        name_en="Swim cap",
        sku="CAP",
        tag_ids=[tag.id],
        variants=[
            VariantData(name_fr="Petit", name_en="Small", sku="CAP-S", stock=3),
            VariantData(name_fr="Grand", sku="CAP-L", price=1500),
        ],
    )
    with tenant_scope(organization.id):
        stored = db.session.get(Article, article.id)
        assert stored is not None
        assert stored.tag_ids == [tag.id]
        assert [v.sku for v in stored.variants] == ["CAP-S", "CAP-L"]
        assert [v.effective_price for v in stored.variants] == [1200, 1500]
        assert stored.localized("name", "en") == "Swim cap"
        # A missing translation falls back to the other language.
        assert stored.variants[1].localized("name", "en") == "Grand"
        actions = db.session.execute(sa.select(AuditLog.action)).scalars().all()
        assert "article.created" in actions


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"price": -1}, "price"),
        ({"price": 12.5}, "price"),
        ({"price": "1200"}, "price"),
        ({"price": True}, "price"),
        ({"price": None}, "price"),
        ({"name_fr": "  ", "name_en": ""}, "name"),
        ({"stock": -3}, "stock"),
        ({"max_per_order": 0}, "max_per_order"),
        ({"tax_category": "luxury"}, "tax_category"),
        ({"sku": "has space"}, "sku"),
        ({"variants": [VariantData(name_fr="", name_en="")]}, "variants.0.name"),
        ({"variants": [VariantData(name_fr="S", price=-5)]}, "variants.0.price"),
        ({"tag_ids": [987654]}, "tag_ids"),
    ],
)
def test_bad_article_input_keeps_nothing(
    organization: Organization, fields: dict[str, Any], field: str
) -> None:
    errors = _refused(organization, **fields)
    assert field in errors
    assert _count(Article) == 0
    assert _count(ArticleVariant) == 0
    assert _count(AuditLog) == 0


def test_sku_is_unique_across_articles_and_variants(organization: Organization) -> None:
    first = _create(organization, sku="GOG-1", variants=[VariantData(name_fr="Bleu", sku="GOG-1B")])
    assert "sku" in _refused(organization, sku="gog-1")  # whatever the case
    assert "sku" in _refused(organization, sku="GOG-1B")  # a variant's SKU
    assert "variants.0.sku" in _refused(
        organization, variants=[VariantData(name_fr="X", sku="GOG-1")]
    )
    assert "variants.1.sku" in _refused(
        organization,
        variants=[VariantData(name_fr="X", sku="NEW"), VariantData(name_fr="Y", sku="new")],
    )
    assert _count(Article) == 1
    # The same SKU in another organization is fine.
    other = OrganizationFactory()
    _create(other, sku="GOG-1")
    # An article keeps its own SKUs when it is saved again.
    with tenant_scope(organization.id):
        article = db.session.get(Article, first.id)
        assert article is not None
        services.update_article(
            organization=organization,
            actor=ACTOR,
            article=article,
            data=services.merge(services.article_data(article), {"price": 1300}),
        )
        db.session.commit()
        assert article.price == 1300


def test_tag_of_another_organization_is_refused(organization: Organization) -> None:
    foreign_tag = TagFactory(organization_ref=OrganizationFactory())
    errors = _refused(organization, tag_ids=[foreign_tag.id])
    assert "tag_ids" in errors
    shop_data = ShopData(slug="boutique", name_fr="Boutique", customer_tag_ids=[foreign_tag.id])
    with tenant_scope(organization.id), pytest.raises(ValidationError) as caught:
        shops.create_shop(organization=organization, actor=ACTOR, data=shop_data)
    db.session.rollback()
    assert "customer_tag_ids" in caught.value.fields
    assert _count(Shop) == 0


def test_update_replaces_variants_and_frees_their_skus(organization: Organization) -> None:
    article = _create(
        organization,
        variants=[VariantData(name_fr="S", sku="V-S"), VariantData(name_fr="M", sku="V-M")],
    )
    with tenant_scope(organization.id):
        stored = db.session.get(Article, article.id)
        assert stored is not None
        keep = stored.variants[1]
        data = services.merge(
            services.article_data(stored),
            {
                "variants": [
                    VariantData(id=keep.id, name_fr="M", sku="V-M", stock=4),
                    VariantData(name_fr="S2", sku="V-S"),
                ]
            },
        )
        services.update_article(organization=organization, actor=ACTOR, article=stored, data=data)
        db.session.commit()
        assert [(v.name_fr, v.sku, v.stock) for v in stored.variants] == [
            ("M", "V-M", 4),
            ("S2", "V-S", None),
        ]
        assert stored.variants[0].id == keep.id
    assert _count(ArticleVariant) == 2


def test_variant_of_another_article_cannot_be_edited(organization: Organization) -> None:
    other = _create(organization, variants=[VariantData(name_fr="S")])
    article = _create(organization, name_fr="Lunettes")
    with tenant_scope(organization.id):
        stranger_id = db.session.get(Article, other.id).variants[0].id  # type: ignore[union-attr]
        stored = db.session.get(Article, article.id)
        assert stored is not None
        data = services.merge(
            services.article_data(stored), {"variants": [VariantData(id=stranger_id, name_fr="X")]}
        )
        with pytest.raises(ValidationError) as caught:
            services.update_article(
                organization=organization, actor=ACTOR, article=stored, data=data
            )
        assert "variants.0.id" in caught.value.fields


def test_archive_restore_and_bulk_tagging(organization: Organization) -> None:
    tag = TagFactory(organization_ref=organization)
    first = ArticleFactory(organization_ref=organization)
    second = ArticleFactory(organization_ref=organization)
    with tenant_scope(organization.id):
        articles = services.articles_by_ids([first.id, second.id])
        assert (
            services.tag_articles(
                organization=organization, actor=ACTOR, articles=articles, tag=tag
            )
            == 2
        )
        assert (
            services.tag_articles(
                organization=organization, actor=ACTOR, articles=articles, tag=tag
            )
            == 0
        )
        assert (
            services.set_articles_active(
                organization=organization, actor=ACTOR, articles=articles, active=False
            )
            == 2
        )
        db.session.commit()
        archived = (
            db.session.execute(services.search_articles_query(status="archived", tag_id=tag.id))
            .scalars()
            .all()
        )
        assert {a.id for a in archived} == {first.id, second.id}
        assert db.session.execute(services.search_articles_query()).scalars().all() == []
        services.set_articles_active(
            organization=organization, actor=ACTOR, articles=articles[:1], active=True
        )
        services.tag_articles(
            organization=organization, actor=ACTOR, articles=articles, tag=tag, remove=True
        )
        db.session.commit()
        assert [a.id for a in db.session.execute(services.search_articles_query()).scalars()] == [
            first.id
        ]
        assert all(a.tag_ids == [] for a in articles)


def test_search_matches_names_and_skus(organization: Organization) -> None:
    _create(organization, name_fr="Bonnet de bain", sku="CAP-1")
    _create(
        organization,
        name_fr="Lunettes",
        name_en="Goggles",
        variants=[VariantData(name_fr="S", sku="GOG-S")],
    )
    with tenant_scope(organization.id):

        def names(q: str) -> list[str]:
            query = services.search_articles_query(q=q)
            return [a.name_fr for a in db.session.execute(query).scalars()]

        assert names("bonnet") == ["Bonnet de bain"]
        assert names("goggles") == ["Lunettes"]
        assert names("gog-s") == ["Lunettes"]
        assert names("cap-1") == ["Bonnet de bain"]
        assert names("%") == []


def test_tag_validation_and_delete(organization: Organization) -> None:
    with tenant_scope(organization.id):
        with pytest.raises(ValidationError) as caught:
            services.create_tag(organization=organization, actor=ACTOR, name_fr="", color="blue")
        assert set(caught.value.fields) == {"name", "color"}
        tag = services.create_tag(
            organization=organization, actor=ACTOR, name_fr="Cours", color="#A34700"
        )
        db.session.commit()
        assert tag.color == "#a34700"
        services.delete_tag(organization=organization, actor=ACTOR, tag=tag)
        db.session.commit()
    assert _count(Tag) == 0


def test_catalog_changes_bump_the_version(organization: Organization) -> None:
    def version() -> int:
        with tenant_scope(organization.id):
            value = db.session.execute(sa.select(CatalogVersion.version)).scalar_one_or_none()
            db.session.rollback()
            return value or 1

    start = version()
    article = _create(organization)
    after_create = version()
    assert after_create > start
    with tenant_scope(organization.id):
        stored = db.session.get(Article, article.id)
        assert stored is not None
        stored.price = 99
        db.session.commit()
    assert version() > after_create


# --------------------------------------------------------------------------- shops


def _shop(organization: Organization, **fields: Any) -> Shop:
    values: dict[str, Any] = {"slug": "boutique", "name_fr": "Boutique", **fields}
    with tenant_scope(organization.id):
        shop = shops.create_shop(organization=organization, actor=ACTOR, data=ShopData(**values))
        db.session.commit()
    return detach(shop)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "admin"}, "slug"),
        ({"name_fr": ""}, "name"),
        ({"access": "secret"}, "access"),
        ({"access": "password"}, "password"),
        ({"access": "password", "password": "abc"}, "password"),
        ({"cart_minutes": 0}, "cart_minutes"),
        ({"cart_minutes": "20"}, "cart_minutes"),
        ({"payment_methods": ["bitcoin"]}, "payment_methods"),
        ({"payment_methods": []}, "payment_methods"),
    ],
)
def test_bad_shop_input_keeps_nothing(
    organization: Organization, fields: dict[str, Any], field: str
) -> None:
    values: dict[str, Any] = {"slug": "boutique", "name_fr": "Boutique", **fields}
    with tenant_scope(organization.id), pytest.raises(ValidationError) as caught:
        shops.create_shop(organization=organization, actor=ACTOR, data=ShopData(**values))
    db.session.rollback()
    assert field in caught.value.fields
    assert _count(Shop) == 0


def test_shop_slug_is_unique_in_the_organization(organization: Organization) -> None:
    _shop(organization)
    with tenant_scope(organization.id), pytest.raises(ValidationError) as caught:
        shops.create_shop(
            organization=organization, actor=ACTOR, data=ShopData(slug="boutique", name_en="Shop")
        )
    db.session.rollback()
    assert "slug" in caught.value.fields
    _shop(OrganizationFactory())  # another organization may use it


def test_password_is_hashed_never_audited_and_changing_it_revokes_tokens(
    organization: Organization,
) -> None:
    shop = _shop(organization, access="password", password="le-secret-du-club")
    with tenant_scope(organization.id):
        stored = db.session.get(Shop, shop.id)
        assert stored is not None
        assert stored.password_hash is not None
        assert "le-secret-du-club" not in stored.password_hash
        assert shops.check_password(stored, "le-secret-du-club")
        assert not shops.check_password(stored, "wrong")
        token = shops.issue_access_token(stored)
        assert shops.access_token_valid(stored, token)
        assert not shops.access_token_valid(stored, token + "x")
        shops.update_shop(
            organization=organization,
            actor=ACTOR,
            shop=stored,
            data=shops.merge(shops.shop_data(stored), {"password": "un-autre-secret"}),
        )
        db.session.commit()
        assert not shops.access_token_valid(stored, token)
        audit_text = str(db.session.execute(sa.select(AuditLog.before, AuditLog.after)).all())
    assert "secret" not in audit_text
    assert "argon2" not in audit_text


def test_access_token_is_scoped_to_its_shop(organization: Organization) -> None:
    first = _shop(organization, slug="a", access="password", password="secret-a")
    second = _shop(organization, slug="b", access="password", password="secret-a")
    with tenant_scope(organization.id):
        a = db.session.get(Shop, first.id)
        b = db.session.get(Shop, second.id)
        assert a is not None
        assert b is not None
        assert not shops.access_token_valid(b, shops.issue_access_token(a))


def test_categories_and_article_order(organization: Organization) -> None:
    courses = TagFactory(organization_ref=organization)
    merch = TagFactory(organization_ref=organization)
    articles = [ArticleFactory(organization_ref=organization, name_fr=f"A{i}") for i in range(4)]
    for article in articles:
        _link(organization, article, courses)
    _link(organization, articles[0], merch)
    shop = _shop(organization, customer_tag_ids=[courses.id, merch.id], staff_tag_ids=[merch.id])
    with tenant_scope(organization.id):
        stored = db.session.get(Shop, shop.id)
        assert stored is not None
        assert stored.tag_ids_for(Audience.CUSTOMER) == [courses.id, merch.id]
        shops.move_category(
            organization=organization,
            actor=ACTOR,
            shop=stored,
            audience=Audience.CUSTOMER,
            tag_id=merch.id,
            offset=-1,
        )
        db.session.commit()
        assert stored.tag_ids_for(Audience.CUSTOMER) == [merch.id, courses.id]
        ids = [a.id for a in articles]
        assert shops.ordered_article_ids(stored, courses.id) == ids
        shops.reorder_articles(
            organization=organization,
            actor=ACTOR,
            shop=stored,
            tag_id=courses.id,
            article_ids=[ids[3], ids[1], ids[2], ids[0]],
        )
        db.session.commit()
        assert shops.ordered_article_ids(stored, courses.id) == [ids[3], ids[1], ids[2], ids[0]]
        shops.move_article(
            organization=organization,
            actor=ACTOR,
            shop=stored,
            tag_id=courses.id,
            article_id=ids[0],
            offset=-1,
        )
        db.session.commit()
        assert shops.ordered_article_ids(stored, courses.id) == [ids[3], ids[1], ids[0], ids[2]]
        with pytest.raises(ValidationError):
            shops.reorder_articles(
                organization=organization,
                actor=ACTOR,
                shop=stored,
                tag_id=courses.id,
                article_ids=[ids[0], 987654],
            )
        # One page of the category: only those articles swap places.
        shops.reorder_articles(
            organization=organization,
            actor=ACTOR,
            shop=stored,
            tag_id=courses.id,
            article_ids=[ids[2], ids[3]],
        )
        db.session.commit()
        assert shops.ordered_article_ids(stored, courses.id) == [ids[2], ids[1], ids[0], ids[3]]


def test_switching_access_away_from_password_forgets_it(organization: Organization) -> None:
    shop = _shop(organization, access="password", password="secret-a")
    with tenant_scope(organization.id):
        stored = db.session.get(Shop, shop.id)
        assert stored is not None
        shops.update_shop(
            organization=organization,
            actor=ACTOR,
            shop=stored,
            data=shops.merge(shops.shop_data(stored), {"access": "public"}),
        )
        db.session.commit()
        assert stored.password_hash is None
        assert stored.access is ShopAccess.PUBLIC


def test_availability_counts_stock_sold_and_variants(organization: Organization) -> None:
    unlimited = ArticleFactory(organization_ref=organization, stock=None)
    tracked = ArticleFactory(organization_ref=organization, stock=5, sold=5)
    sized = ArticleFactory(organization_ref=organization)
    add_variant(sized, "S", stock=2, sold=1)
    add_variant(sized, "M", stock=3)
    with tenant_scope(organization.id):
        loaded = services.articles_by_ids([unlimited.id, tracked.id, sized.id])
        availability = Availability.of(loaded)
        by_id = {a.id: a for a in loaded}
        assert availability.article(by_id[unlimited.id]) is None
        assert availability.sold_out(by_id[tracked.id])
        assert availability.article(by_id[sized.id]) == 4
        assert [availability.variant(v) for v in by_id[sized.id].variants] == [1, 3]


def _link(organization: Organization, article: Article, tag: Tag) -> None:
    from tests.storefront.factories import tag_article

    tag_article(article, tag)
