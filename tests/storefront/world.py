"""A catalog to test visibility against: every tag kind and article state, in shops of every access.

Built through the services (images included), committed, and described by plain ids so tests can
make requests without an outer app context.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.tenancy import tenant_scope, unscoped
from comptoir.storefront import services, shops
from comptoir.storefront.services import ArticleData
from comptoir.storefront.shops import ShopData
from comptoir.tenants.models import Organization, Role
from tests.factories import OrganizationFactory, staff

ACTOR = Actor(label="set-up")
SHOP_PASSWORD = "le-mot-de-passe-du-club"
TAG_KINDS = ("customer", "staff", "none")
STATES = ("active", "archived")
ACCESSES = ("public", "password", "staff")
CALLERS = ("anonymous", "unlocked", "staff_here", "staff_other")


@contextmanager
def database(app: Flask) -> Iterator[None]:
    with app.app_context(), unscoped():
        try:
            yield
        finally:
            db.session.remove()


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "#0b57d0", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class World:
    org_slug: str
    organization_id: int
    other_org_slug: str
    # "<user id>:<session version>" of each signed-in caller, as Flask-Login keeps it
    logins: dict[str, str] = field(default_factory=dict)
    shop_slugs: dict[str, str] = field(default_factory=dict)
    tags: dict[str, int] = field(default_factory=dict)
    # (tag kind, state) -> article id, and the id of its image
    articles: dict[tuple[str, str], int] = field(default_factory=dict)
    images: dict[tuple[str, str], int] = field(default_factory=dict)
    names: dict[tuple[str, str], str] = field(default_factory=dict)


def create_article(organization: Organization, **values: Any) -> int:
    with tenant_scope(organization.id):
        article = services.create_article(
            organization=organization, actor=ACTOR, data=ArticleData(**values)
        )
        db.session.commit()
        return article.id


def build_world(app: Flask) -> World:
    with database(app):
        organization = OrganizationFactory(slug="club-natation", name="Club de natation")
        other = OrganizationFactory(slug="autre-club", name="Autre club")
        world = World(
            org_slug=organization.slug,
            organization_id=organization.id,
            other_org_slug=other.slug,
        )
        for caller, user in (
            ("staff_here", staff(organization, Role.OWNER)),
            ("staff_other", staff(other, Role.OWNER)),
            ("attendant", staff(organization, Role.ATTENDANT)),
        ):
            world.logins[caller] = user.get_id()
        with tenant_scope(organization.id):
            for kind in TAG_KINDS:
                tag = services.create_tag(
                    organization=organization, actor=ACTOR, name_fr=f"Tag {kind}", color="#0b57d0"
                )
                db.session.flush()
                world.tags[kind] = tag.id
            for kind in TAG_KINDS:
                for state in STATES:
                    name = f"Article-{kind}-{state}"
                    article = services.create_article(
                        organization=organization,
                        actor=ACTOR,
                        data=ArticleData(
                            name_fr=name, price=1000, tag_ids=[world.tags[kind]], active=True
                        ),
                    )
                    image = services.add_image(
                        organization=organization,
                        actor=ACTOR,
                        article=article,
                        stream=io.BytesIO(png_bytes()),
                    )
                    if state == "archived":
                        services.set_articles_active(
                            organization=organization, actor=ACTOR, articles=[article], active=False
                        )
                    db.session.flush()
                    world.articles[(kind, state)] = article.id
                    world.images[(kind, state)] = image.id
                    world.names[(kind, state)] = name
            for access in ACCESSES:
                shop = shops.create_shop(
                    organization=organization,
                    actor=ACTOR,
                    data=ShopData(
                        slug=f"boutique-{access}",
                        name_fr=f"Boutique {access}",
                        access=access,
                        password=SHOP_PASSWORD if access == "password" else None,
                        customer_tag_ids=[world.tags["customer"]],
                        staff_tag_ids=[world.tags["staff"]],
                    ),
                )
                world.shop_slugs[access] = shop.slug
            db.session.commit()
        return world


def expected_visible(access: str, caller: str, kind: str, state: str) -> bool:
    """The rule, written out independently of the code under test."""
    if state != "active" or kind == "none":
        return False
    if caller == "staff_here":
        return kind in {"customer", "staff"}
    if access == "staff":
        return False
    if access == "password" and caller != "unlocked":
        return False
    return kind == "customer"


def sign_in_as(client: FlaskClient, world: World, caller: str) -> None:
    with client.session_transaction() as cookie_session:
        cookie_session["_user_id"] = world.logins[caller]
        cookie_session["_fresh"] = True
