"""A shop to test carts against: Québec taxes, articles with and without stock, variants, a
per-order maximum, a staff-only article, staff of every role, API keys, and another organization.

Built through the services and committed; described by plain ids so tests can make requests
without an outer app context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing.taxes import apply_province_preset
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.tenancy import tenant_scope, unscoped
from comptoir.storefront import services, shops
from comptoir.storefront.models import Article, ArticleVariant, Cart, StockHold
from comptoir.storefront.services import ArticleData, VariantData
from comptoir.storefront.shops import ShopData
from comptoir.tenants.models import Organization, Role
from tests.factories import OrganizationFactory, api_key, staff

SET_UP = Actor(label="set-up", role=Role.OWNER.value)


@contextmanager
def database(app: Flask) -> Iterator[None]:
    with app.app_context(), unscoped():
        try:
            yield
        finally:
            db.session.remove()


@dataclass
class CartWorld:
    org_slug: str
    organization_id: int
    shop_slug: str
    shop_id: int
    other_org_slug: str
    other_organization_id: int
    # name -> article id: cap (stock 10, $15), goggles (unlimited, $20, at most 3 per order),
    # suit (variants small: stock 2, large: stock 5 at $45), staff_only, exempt (no tax), last (1)
    articles: dict[str, int] = field(default_factory=dict)
    variants: dict[str, int] = field(default_factory=dict)
    other_article: int = 0
    # "<user id>:<session version>" as Flask-Login keeps it
    logins: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def shop_url(self) -> str:
        return f"/o/{self.org_slug}/{self.shop_slug}"

    @property
    def api(self) -> str:
        return f"/api/v1/o/{self.org_slug}"


def _article(organization: Any, **values: Any) -> Article:
    return services.create_article(
        organization=organization, actor=SET_UP, data=ArticleData(**values)
    )


def build_cart_world(app: Flask) -> CartWorld:
    with database(app):
        organization = OrganizationFactory(
            slug="club-cart", name="Club aquatique", email="info@club.example", default_locale="fr"
        )
        other = OrganizationFactory(slug="other-club", name="Other club")
        world = CartWorld(
            org_slug=organization.slug,
            organization_id=organization.id,
            shop_slug="boutique",
            shop_id=0,
            other_org_slug=other.slug,
            other_organization_id=other.id,
        )
        for name, org, role in (
            ("owner", organization, Role.OWNER),
            ("admin", organization, Role.ADMIN),
            ("attendant", organization, Role.ATTENDANT),
            ("other_owner", other, Role.OWNER),
        ):
            world.logins[name] = staff(org, role).get_id()
        with tenant_scope(organization.id):
            apply_province_preset(organization=organization, actor=SET_UP, province="QC")
            customer_tag = services.create_tag(
                organization=organization, actor=SET_UP, name_fr="Boutique", name_en="Shop"
            )
            staff_tag = services.create_tag(
                organization=organization, actor=SET_UP, name_fr="Comptoir", name_en="Counter"
            )
            db.session.flush()
            shop = shops.create_shop(
                organization=organization,
                actor=SET_UP,
                data=ShopData(
                    slug=world.shop_slug,
                    name_fr="Boutique du club",
                    name_en="Club shop",
                    cart_minutes=20,
                    customer_tag_ids=[customer_tag.id],
                    staff_tag_ids=[staff_tag.id],
                ),
            )
            world.shop_id = shop.id
            tags = [customer_tag.id]
            world.articles["cap"] = _article(
                organization, name_fr="Bonnet", name_en="Cap", price=1500, stock=10, tag_ids=tags
            ).id
            world.articles["goggles"] = _article(
                organization,
                name_fr="Lunettes",
                name_en="Goggles",
                price=2000,
                max_per_order=3,
                tag_ids=tags,
            ).id
            suit = _article(
                organization,
                name_fr="Maillot",
                name_en="Swimsuit",
                price=4000,
                tag_ids=tags,
                max_per_order=6,
                variants=[
                    VariantData(name_fr="Petit", name_en="Small", stock=2),
                    VariantData(name_fr="Grand", name_en="Large", stock=5, price=4500),
                ],
            )
            world.articles["suit"] = suit.id
            world.variants["small"] = suit.variants[0].id
            world.variants["large"] = suit.variants[1].id
            world.articles["staff_only"] = _article(
                organization,
                name_fr="Sifflet",
                name_en="Whistle",
                price=500,
                tag_ids=[staff_tag.id],
            ).id
            world.articles["exempt"] = _article(
                organization,
                name_fr="Cours",
                name_en="Lesson",
                price=10000,
                tax_category="exempt",
                tag_ids=tags,
            ).id
            world.articles["last"] = _article(
                organization,
                name_fr="Dernier",
                name_en="Last one",
                price=100,
                stock=1,
                tag_ids=tags,
            ).id
            db.session.commit()
        with tenant_scope(other.id):
            other_tag = services.create_tag(organization=other, actor=SET_UP, name_fr="Autre")
            db.session.flush()
            world.other_article = _article(
                other, name_fr="Ailleurs", price=700, stock=5, tag_ids=[other_tag.id]
            ).id
            db.session.commit()
        for name, org, role in (
            ("owner", organization, Role.OWNER),
            ("attendant", organization, Role.ATTENDANT),
            ("other_owner", other, Role.OWNER),
        ):
            world.keys[name] = api_key(org, role)
        return world


def sign_in(client: FlaskClient, world: CartWorld, who: str) -> None:
    with client.session_transaction() as cookie_session:
        cookie_session["_user_id"] = world.logins[who]
        cookie_session["_fresh"] = True


def bearer(world: CartWorld, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.keys[who]}"}


def set_organization_flag(app: Flask, world: CartWorld, *, attendant_can_override: bool) -> None:
    with database(app):
        organization = db.session.get(Organization, world.organization_id)
        assert organization is not None
        organization.attendant_can_override_prices = attendant_can_override
        db.session.commit()


def move_expiry(app: Flask, cart_id: int, expires_at: datetime) -> None:
    """Move a cart and its holds in time, as the clock would (no service, no audit)."""
    with database(app):
        db.session.execute(sa.update(Cart).where(Cart.id == cart_id).values(expires_at=expires_at))
        db.session.execute(
            sa.update(StockHold).where(StockHold.cart_id == cart_id).values(expires_at=expires_at)
        )
        db.session.commit()


def set_stock(app: Flask, article_id: int, stock: int | None, sold: int = 0) -> None:
    with database(app):
        db.session.execute(
            sa.update(Article).where(Article.id == article_id).values(stock=stock, sold=sold)
        )
        db.session.commit()


def stock_of(app: Flask, article_id: int, variant_id: int | None = None) -> tuple[int | None, int]:
    with database(app):
        if variant_id is None:
            row = db.session.execute(
                sa.select(Article.stock, Article.sold).where(Article.id == article_id)
            ).one()
        else:
            row = db.session.execute(
                sa.select(ArticleVariant.stock, ArticleVariant.sold).where(
                    ArticleVariant.id == variant_id
                )
            ).one()
        return row[0], row[1]


def held(app: Flask, article_id: int, variant_id: int | None = None) -> int:
    """Units of a stock unit held by active holds now."""
    from comptoir.storefront.inventory import StockKey, active_holds

    with database(app):
        return active_holds([StockKey(article_id, variant_id)]).get(
            StockKey(article_id, variant_id), 0
        )
