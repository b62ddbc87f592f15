"""The shop page runs the same number of SQL statements for 10 articles as for 1,000."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.db import db
from comptoir.storefront.models import (
    Article,
    ArticleImage,
    ArticleTag,
    ArticleVariant,
    Audience,
    Shop,
    ShopAccess,
    ShopCategory,
    Tag,
)
from comptoir.tenants.models import Role
from tests.factories import OrganizationFactory, staff
from tests.storefront.world import database


def seed(app: Flask, slug: str, count: int) -> str:
    """An organization whose public shop shows ``count`` articles (variants and images too)."""
    with database(app):
        organization = OrganizationFactory(slug=slug, default_locale="fr")
        user = staff(organization, Role.OWNER)
        org_id = organization.id
        tag_id = db.session.execute(
            sa.insert(Tag)
            .values(organization_id=org_id, name_fr="Cours", name_en="Courses")
            .returning(Tag.id)
        ).scalar_one()
        shop_id = db.session.execute(
            sa.insert(Shop)
            .values(
                organization_id=org_id,
                slug="boutique",
                name_fr="Boutique",
                access=ShopAccess.PUBLIC,
                password_version=1,
                position=0,
                cart_minutes=20,
                payment_methods=["offline"],
                etransfer={},
                communication={},
            )
            .returning(Shop.id)
        ).scalar_one()
        db.session.execute(
            sa.insert(ShopCategory).values(
                organization_id=org_id,
                shop_id=shop_id,
                tag_id=tag_id,
                audience=Audience.CUSTOMER,
                position=0,
            )
        )
        article_ids = (
            db.session.execute(
                sa.insert(Article).returning(Article.id),
                [
                    {
                        "organization_id": org_id,
                        "name_fr": f"Article {n:04d}",
                        "name_en": f"Item {n:04d}",
                        "description_fr": "",
                        "description_en": "",
                        "price": 1000 + n,
                        "tax_category": "standard",
                        "active": True,
                        "sold": 0,
                        "stock": 5 if n % 3 == 0 else None,
                    }
                    for n in range(count)
                ],
            )
            .scalars()
            .all()
        )
        db.session.execute(
            sa.insert(ArticleTag),
            [{"organization_id": org_id, "article_id": a, "tag_id": tag_id} for a in article_ids],
        )
        db.session.execute(
            sa.insert(ArticleVariant),
            [
                {
                    "organization_id": org_id,
                    "article_id": a,
                    "name_fr": size,
                    "name_en": size,
                    "stock": 2,
                    "sold": 0,
                    "position": p,
                }
                for a in article_ids[::2]
                for p, size in enumerate(("S", "M", "L"))
            ],
        )
        db.session.execute(
            sa.insert(ArticleImage),
            [
                {
                    "organization_id": org_id,
                    "article_id": a,
                    "position": 0,
                    "storage_key": f"org-{org_id}/articles/{a}/x",
                    "format": "jpeg",
                    "width": 10,
                    "height": 10,
                    "byte_size": 100,
                    "digest": "0" * 64,
                    "alt_fr": "",
                    "alt_en": "",
                }
                for a in article_ids
            ],
        )
        db.session.commit()
        return user.get_id()


@contextmanager
def counted(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def statements_for(app: Flask, url: str, login: str | None = None, **headers: str) -> int:
    client: FlaskClient = app.test_client()
    if login is not None:
        with client.session_transaction() as cookie_session:
            cookie_session["_user_id"] = login
    with counted(app) as statements:
        response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return len(statements)


@pytest.mark.slow
def test_shop_page_statements_do_not_grow_with_the_catalog(app: Flask) -> None:
    small_login = seed(app, "petit-club", 10)
    large_login = seed(app, "grand-club", 1000)
    for path in ("/", "/?q=Item", "/?lang=en"):
        small = statements_for(app, f"/o/petit-club/boutique{path}")
        large = statements_for(app, f"/o/grand-club/boutique{path}")
        assert small == large, path
    # Staff get the page with their extra lookups (membership), never cached.
    small = statements_for(app, "/o/petit-club/boutique/", small_login)
    large = statements_for(app, "/o/grand-club/boutique/", large_login)
    assert small == large
    assert large <= 15
    # The same through the API.
    small = statements_for(app, "/api/v1/o/petit-club/shops/boutique/articles?per_page=200")
    large = statements_for(app, "/api/v1/o/grand-club/shops/boutique/articles?per_page=200")
    assert small == large


def test_a_cached_page_costs_no_query_and_an_edit_shows_at_once(app: Flask) -> None:
    seed(app, "club-cache", 30)
    url = "/o/club-cache/boutique/"
    first = statements_for(app, url)
    assert first > 0
    assert statements_for(app, url) == 0
    with database(app):
        article = db.session.execute(
            sa.select(Article).where(Article.name_fr == "Article 0000")
        ).scalar_one()
        article.name_fr = "AAA bonnet renommé"
        db.session.commit()
    page = app.test_client().get(url).get_data(as_text=True)
    assert "AAA bonnet renommé" in page
    # Not for signed-in people, searches or other parameters: those always reach the app.
    assert statements_for(app, url + "?q=Article") > 0
    assert statements_for(app, url + "?lang=en") > 0
