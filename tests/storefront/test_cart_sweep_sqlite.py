"""The sweep on the embedded default (SQLite), where the database's clock answers naive text."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask_migrate import upgrade

from comptoir.app import create_app
from comptoir.platform.db import db, utcnow
from comptoir.platform.tenancy import unscoped
from comptoir.storefront import holds
from comptoir.storefront.models import Cart, CartStatus, Shop
from tests.conftest import make_settings
from tests.factories import OrganizationFactory


def test_the_sweep_runs_on_sqlite_and_expires_what_is_due(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'comptoir.sqlite3'}", "", tmp_path))
    with app.app_context():
        upgrade()
        with unscoped():
            organization = OrganizationFactory()
            shop = Shop(organization_id=organization.id, slug="boutique", name_en="Shop")
            db.session.add(shop)
            db.session.flush()
            for minutes in (-5, 30):
                db.session.add(
                    Cart(
                        organization_id=organization.id,
                        shop_id=shop.id,
                        token_hash=f"hash-{minutes}",
                        expires_at=utcnow() + timedelta(minutes=minutes),
                    )
                )
            db.session.commit()

        result = holds.sweep_expired()

        with unscoped():
            statuses = sorted(db.session.execute(sa.select(Cart.status)).scalars())
        db.session.remove()
    assert result.carts_expired == 1
    assert statuses == sorted([CartStatus.ACTIVE, CartStatus.EXPIRED])
