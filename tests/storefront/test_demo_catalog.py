"""The demo club's catalog: seeded once, whatever the number of runs, and shown by its shop."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from comptoir.platform.db import db
from comptoir.platform.tenancy import unscoped
from comptoir.storefront.models import Article, ArticleImage, Audience, Shop, ShopAccess, Tag
from tests.storefront.world import database


def _counts() -> dict[str, int]:
    with unscoped():
        return {
            model.__name__: db.session.execute(
                sa.select(sa.func.count()).select_from(model)
            ).scalar_one()
            for model in (Tag, Article, ArticleImage, Shop)
        }


def test_demo_catalog_is_idempotent_and_browsable(app: Flask) -> None:
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["seed-demo", "--base-url", "http://demo.example"])
        assert result.exit_code == 0, result.output
        with database(app):
            counts = _counts()
            shop = db.session.execute(sa.select(Shop)).scalar_one()
            assert shop.access is ShopAccess.PUBLIC
            assert len(shop.tag_ids_for(Audience.CUSTOMER)) == 3
            assert len(shop.tag_ids_for(Audience.STAFF)) == 1
    assert counts == {"Tag": 4, "Article": 9, "ArticleImage": 9, "Shop": 1}
    client = app.test_client()
    page = client.get("/o/dauphins/boutique/?lang=fr").get_data(as_text=True)
    assert "Cours pour enfants" in page
    assert "Serviette du club" not in page  # counter merchandise is for staff only
    caps = client.get("/o/dauphins/boutique/?lang=en&q=cap").get_data(as_text=True)
    assert "Club silicone cap" in caps
