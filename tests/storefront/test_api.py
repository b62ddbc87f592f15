"""The catalog and shop JSON API: the visibility matrix, unlocking, staff writes, bad input."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.tenancy import tenant_scope
from comptoir.storefront.models import Article, Shop, Tag
from comptoir.tenants import services as tenant_services
from comptoir.tenants.models import Organization, Role
from tests.storefront.factories import TagFactory
from tests.storefront.world import (
    ACCESSES,
    CALLERS,
    SHOP_PASSWORD,
    STATES,
    TAG_KINDS,
    World,
    database,
    expected_visible,
    sign_in_as,
)


def _organization(slug: str) -> Organization:
    return db.session.execute(sa.select(Organization).where(Organization.slug == slug)).scalar_one()


def key_for(app: Flask, slug: str, role: Role = Role.OWNER) -> dict[str, str]:
    """The Authorization header of a new API key of organization ``slug`` with ``role``."""
    with database(app):
        organization = _organization(slug)
        with tenant_scope(organization.id):
            _key, secret = tenant_services.create_api_key(
                organization=organization,
                actor=Actor(label="tests", role=Role.OWNER.value),
                name="tests",
                role=role,
            )
            db.session.commit()
        return {"Authorization": f"Bearer {secret}"}


def _api(world: World, path: str) -> str:
    return f"/api/v1/o/{world.org_slug}{path}"


def caller_headers(
    app: Flask, client: FlaskClient, world: World, caller: str, access: str
) -> dict[str, str]:
    if caller == "staff_here":
        return key_for(app, world.org_slug)
    if caller == "staff_other":
        # Signed in, but staff of another organization: a customer here.
        sign_in_as(client, world, "staff_other")
        return {}
    if caller == "unlocked" and access == "password":
        response = client.post(
            _api(world, f"/shops/{world.shop_slugs[access]}/unlock"),
            json={"password": SHOP_PASSWORD},
        )
        assert response.status_code == 200, response.get_json()
        return {"X-Shop-Access": response.get_json()["access_token"]}
    return {}


@pytest.mark.parametrize("access", ACCESSES)
@pytest.mark.parametrize("caller", CALLERS)
def test_shop_articles_answer_what_the_caller_may_see(
    app: Flask, client: FlaskClient, world: World, access: str, caller: str
) -> None:
    headers = caller_headers(app, client, world, caller, access)
    shop = world.shop_slugs[access]
    expected = {
        world.articles[(kind, state)]
        for kind in TAG_KINDS
        for state in STATES
        if expected_visible(access, caller, kind, state)
    }
    listing = client.get(
        _api(world, f"/shops/{shop}/articles"), query_string={"per_page": 200}, headers=headers
    )
    if access == "staff" and caller != "staff_here":
        assert listing.status_code == 404
        assert listing.get_json()["error"]["code"] == "not_found"
    elif access == "password" and caller not in {"unlocked", "staff_here"}:
        assert listing.status_code == 403
        assert listing.get_json()["error"]["code"] == "shop_locked"
    else:
        assert listing.status_code == 200, listing.get_json()
        assert {item["id"] for item in listing.get_json()["items"]} == expected
    for kind in TAG_KINDS:
        for state in STATES:
            article_id = world.articles[(kind, state)]
            response = client.get(
                _api(world, f"/shops/{shop}/articles/{article_id}"), headers=headers
            )
            visible = expected_visible(access, caller, kind, state)
            assert response.status_code == (200 if visible else 404), (access, caller, kind, state)
            if not visible:
                assert response.get_json()["error"]["code"] == "not_found"


def test_shop_article_shape_hides_staff_details(
    app: Flask, client: FlaskClient, world: World
) -> None:
    article_id = world.articles[("customer", "active")]
    body = client.get(_api(world, f"/shops/boutique-public/articles/{article_id}")).get_json()
    assert set(body) == {
        "id",
        "name",
        "description",
        "price",
        "currency",
        "tag_ids",
        "available",
        "max_per_order",
        "variants",
        "images",
    }
    assert body["name"] == {"fr": "Article-customer-active", "en": ""}
    assert body["currency"] == "CAD"
    assert body["available"] is None
    assert body["tag_ids"] == [world.tags["customer"]]
    image = client.get(body["images"][0]["card_url"])
    assert image.status_code == 200
    assert image.headers["Cache-Control"].startswith("public")
    assert image.headers["ETag"]


def test_password_shop_cannot_be_read_around_with_tokens(
    app: Flask, client: FlaskClient, world: World
) -> None:
    base = _api(world, "/shops/boutique-password")
    article_id = world.articles[("customer", "active")]
    for headers in ({}, {"X-Shop-Access": "forged"}, {"X-Shop-Access": ""}):
        assert client.get(f"{base}/articles", headers=headers).status_code == 403
        assert client.get(f"{base}/articles/{article_id}", headers=headers).status_code == 404
    wrong = client.post(f"{base}/unlock", json={"password": "nope"})
    assert wrong.status_code == 422
    assert wrong.get_json()["error"]["fields"] == {"password": ["This password is not right."]}
    assert "nope" not in wrong.get_data(as_text=True)
    token = client.post(f"{base}/unlock", json={"password": SHOP_PASSWORD}).get_json()[
        "access_token"
    ]
    assert client.get(f"{base}/articles", headers={"X-Shop-Access": token}).status_code == 200
    # The token opens this shop only.
    public = client.get(
        _api(world, "/shops/boutique-staff/articles"), headers={"X-Shop-Access": token}
    )
    assert public.status_code == 404
    # Unlocking a shop without a password, or a staff-only one, says nothing useful.
    assert (
        client.post(
            _api(world, "/shops/boutique-public/unlock"), json={"password": SHOP_PASSWORD}
        ).status_code
        == 422
    )
    assert (
        client.post(
            _api(world, "/shops/boutique-staff/unlock"), json={"password": SHOP_PASSWORD}
        ).status_code
        == 404
    )
    assert client.post(_api(world, "/shops/nope/unlock"), json={"password": "x"}).status_code == 404
    # A new password ends the tokens given before.
    owner = key_for(app, world.org_slug)
    changed = client.patch(
        _api(world, "/shops/boutique-password"),
        json={"password": "un-nouveau-secret"},
        headers=owner,
    )
    assert changed.status_code == 200
    assert "password" not in changed.get_json()
    assert client.get(f"{base}/articles", headers={"X-Shop-Access": token}).status_code == 403


def test_unlock_is_rate_limited(client: FlaskClient, world: World) -> None:
    url = _api(world, "/shops/boutique-password/unlock")
    statuses = [client.post(url, json={"password": f"guess-{n}"}).status_code for n in range(11)]
    assert statuses == [422] * 10 + [429]
    limited = client.post(url, json={"password": SHOP_PASSWORD})
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"


def test_another_organizations_key_sees_nothing(
    app: Flask, client: FlaskClient, world: World
) -> None:
    other = key_for(app, world.other_org_slug)
    article_id = world.articles[("customer", "active")]
    assert client.get(_api(world, "/tags"), headers=other).status_code == 404
    assert client.get(_api(world, f"/articles/{article_id}"), headers=other).status_code == 404
    assert (
        client.get(
            _api(world, f"/shops/boutique-public/articles/{article_id}"), headers=other
        ).status_code
        == 404
    )


def test_staff_manage_tags_articles_and_shops(
    app: Flask, client: FlaskClient, world: World
) -> None:
    owner = key_for(app, world.org_slug)
    tag = client.post(_api(world, "/tags"), json={"name": {"fr": "Lunettes"}}, headers=owner)
    assert tag.status_code == 201
    tag_id = tag.get_json()["id"]
    assert tag.get_json() == {
        "id": tag_id,
        "name": {"fr": "Lunettes", "en": ""},
        "color": "#0b57d0",
    }
    renamed = client.patch(
        _api(world, f"/tags/{tag_id}"), json={"name": {"en": "Goggles"}}, headers=owner
    )
    assert renamed.get_json()["name"] == {"fr": "Lunettes", "en": "Goggles"}

    created = client.post(
        _api(world, "/articles"),
        json={
            "name": {"fr": "Lunettes de natation", "en": "Swim goggles"},
            "price": 2499,
            "sku": "GOG",
            "tag_ids": [tag_id, world.tags["customer"]],
            "variants": [
                {"name": {"fr": "Bleu", "en": "Blue"}, "sku": "GOG-B", "stock": 4},
                {"name": {"fr": "Rose"}, "price": 2699},
            ],
        },
        headers=owner,
    )
    assert created.status_code == 201, created.get_json()
    article = created.get_json()
    assert article["price"] == 2499
    assert article["currency"] == "CAD"
    assert article["stock"] is None
    assert [v["sku"] for v in article["variants"]] == ["GOG-B", None]
    blue = article["variants"][0]
    patched = client.patch(
        _api(world, f"/articles/{article['id']}"),
        json={"name": {"en": "Goggles"}, "variants": [{**blue, "stock": 10}]},
        headers=owner,
    )
    assert patched.status_code == 200, patched.get_json()
    body = patched.get_json()
    assert body["name"] == {"fr": "Lunettes de natation", "en": "Goggles"}
    assert [(v["id"], v["stock"]) for v in body["variants"]] == [(blue["id"], 10)]
    assert body["price"] == 2499

    listed = client.get(_api(world, "/articles"), query_string={"q": "gog-b"}, headers=owner)
    assert [item["id"] for item in listed.get_json()["items"]] == [article["id"]]

    shop = client.post(
        _api(world, "/shops"),
        json={
            "slug": "comptoir",
            "name": {"fr": "Comptoir"},
            "access": "password",
            "password": "secret-du-comptoir",
            "customer_tag_ids": [tag_id],
        },
        headers=owner,
    )
    assert shop.status_code == 201, shop.get_json()
    assert shop.get_json()["has_password"] is True
    assert "secret" not in shop.get_data(as_text=True)
    assert client.get(_api(world, "/shops/comptoir"), headers=owner).get_json()[
        "customer_tag_ids"
    ] == [tag_id]
    assert client.delete(_api(world, f"/tags/{tag_id}"), headers=owner).status_code == 204
    assert client.get(_api(world, f"/tags/{tag_id}"), headers=owner).status_code == 404


def test_attendants_read_but_do_not_change_the_catalog(
    app: Flask, client: FlaskClient, world: World
) -> None:
    attendant = key_for(app, world.org_slug, Role.ATTENDANT)
    assert client.get(_api(world, "/articles"), headers=attendant).status_code == 200
    refused = client.post(_api(world, "/tags"), json={"name": {"fr": "X"}}, headers=attendant)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    assert (
        client.patch(
            _api(world, "/shops/boutique-public"), json={"cart_minutes": 5}, headers=attendant
        ).status_code
        == 403
    )


def _count(app: Flask, model: type) -> int:
    with database(app):
        return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": -1}, "price"),
        ({"price": 12.5}, "price"),
        ({"price": "1200"}, "price"),
        ({"name": {"fr": "", "en": " "}}, "name"),
        (
            {"sku": "Article-dup", "variants": [{"name": {"fr": "A"}, "sku": "article-DUP"}]},
            "variants.0.sku",
        ),
        ({"tag_ids": [987654321]}, "tag_ids"),
        ({"variants": [{"name": {"fr": "S"}, "price": -3}]}, "variants.0.price"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_article_input_is_refused_and_keeps_nothing(
    app: Flask, client: FlaskClient, world: World, body: dict[str, Any], field: str
) -> None:
    owner = key_for(app, world.org_slug)
    before = _count(app, Article)
    response = client.post(
        _api(world, "/articles"),
        json={"name": {"fr": "Bonnet"}, "price": 1000, **body},
        headers=owner,
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]
    assert _count(app, Article) == before


def test_tag_of_another_organization_is_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    with database(app):
        foreign = TagFactory(organization_ref=_organization(world.other_org_slug)).id
    owner = key_for(app, world.org_slug)
    article_id = world.articles[("customer", "active")]
    response = client.patch(
        _api(world, f"/articles/{article_id}"), json={"tag_ids": [foreign]}, headers=owner
    )
    assert response.status_code == 422
    assert "tag_ids" in response.get_json()["error"]["fields"]
    shop = client.patch(
        _api(world, "/shops/boutique-public"), json={"staff_tag_ids": [foreign]}, headers=owner
    )
    assert shop.status_code == 422
    with database(app):
        stored = db.session.execute(
            sa.select(Shop).where(Shop.slug == "boutique-public")
        ).scalar_one()
        assert stored.tag_ids_for(stored.categories[0].audience.__class__("staff")) == [
            world.tags["staff"]
        ]
        assert db.session.get(Tag, foreign) is not None
    unknown = client.get(_api(world, "/shops/nope/articles"))
    assert unknown.status_code == 404
