"""The storefront pages: the visibility matrix, password shops, admin mode and Design mode."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.tenancy import tenant_scope
from comptoir.storefront import shops as shop_services
from comptoir.storefront.models import ShopArticlePosition
from comptoir.tenants.models import Organization
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


def become(client: FlaskClient, world: World, caller: str, access: str) -> None:
    if caller in {"staff_here", "staff_other", "attendant"}:
        sign_in_as(client, world, caller)
    elif caller == "unlocked" and access == "password":
        response = client.post(
            f"/o/{world.org_slug}/{world.shop_slugs[access]}/unlock",
            data={"password": SHOP_PASSWORD},
        )
        assert response.status_code == 302


@pytest.mark.parametrize("access", ACCESSES)
@pytest.mark.parametrize("caller", CALLERS)
def test_pages_follow_the_visibility_rule(
    client: FlaskClient, world: World, access: str, caller: str
) -> None:
    become(client, world, caller, access)
    base = f"/o/{world.org_slug}/{world.shop_slugs[access]}"
    for kind in TAG_KINDS:
        for state in STATES:
            key = (kind, state)
            visible = expected_visible(access, caller, kind, state)
            expected = 200 if visible else 404
            label = f"{access}/{caller}/{kind}/{state}"
            article = client.get(f"{base}/articles/{world.articles[key]}")
            assert article.status_code == expected, label
            image = client.get(f"{base}/images/{world.images[key]}/card")
            assert image.status_code == expected, label
            listing = client.get(f"{base}/", query_string={"q": world.names[key]})
            link = f'{base}/articles/{world.articles[key]}"'
            assert (link in listing.get_data(as_text=True)) is visible, label


@pytest.mark.parametrize("caller", ["anonymous", "unlocked", "staff_other"])
def test_staff_only_shop_does_not_exist_for_others(
    client: FlaskClient, world: World, caller: str
) -> None:
    become(client, world, caller, "staff")
    base = f"/o/{world.org_slug}/{world.shop_slugs['staff']}"
    assert client.get(f"{base}/").status_code == 404
    assert client.get(f"{base}/unlock").status_code == 404
    microsite = client.get(f"/o/{world.org_slug}/").get_data(as_text=True)
    assert "Boutique staff" not in microsite
    assert "Boutique public" in microsite


def test_password_shop_cannot_be_read_around(app: Flask, client: FlaskClient, world: World) -> None:
    base = f"/o/{world.org_slug}/{world.shop_slugs['password']}"
    visible_name = world.names[("customer", "active")]
    shop_page = client.get(f"{base}/")
    assert shop_page.status_code == 401
    text = shop_page.get_data(as_text=True)
    assert visible_name not in text
    assert 'name="password"' in text
    searched = client.get(f"{base}/", query_string={"q": "Article"})
    assert searched.status_code == 401
    assert "/articles/" not in searched.get_data(as_text=True)
    article_url = f"{base}/articles/{world.articles[('customer', 'active')]}"
    assert client.get(article_url).status_code == 404
    image_url = f"{base}/images/{world.images[('customer', 'active')]}/card"
    assert client.get(image_url).status_code == 404
    # The same image through the public shop is served: the password shop is what hides it.
    public_image = (
        f"/o/{world.org_slug}/boutique-public/images/{world.images[('customer', 'active')]}/card"
    )
    assert client.get(public_image).status_code == 200

    wrong = client.post(f"{base}/unlock", data={"password": "not-it"})
    assert wrong.status_code == 422
    assert client.get(article_url).status_code == 404

    unlocked = client.post(f"{base}/unlock", data={"password": SHOP_PASSWORD, "next": article_url})
    assert unlocked.status_code == 302
    assert unlocked.headers["Location"].endswith(article_url)
    assert client.get(article_url).status_code == 200
    assert client.get(image_url).status_code == 200

    # A new password ends the browser sessions that had unlocked the old one.
    with database(app), tenant_scope(world.organization_id):
        shop = shop_services.find_shop(world.shop_slugs["password"])
        assert shop is not None
        shop_services.update_shop(
            organization=db.session.get(Organization, world.organization_id),  # type: ignore[arg-type]
            actor=Actor(label="owner"),
            shop=shop,
            data=shop_services.merge(shop_services.shop_data(shop), {"password": "nouveau-mdp"}),
        )
        db.session.commit()
    assert client.get(article_url).status_code == 404


def test_unlock_only_redirects_inside_the_shop(client: FlaskClient, world: World) -> None:
    base = f"/o/{world.org_slug}/{world.shop_slugs['password']}"
    response = client.post(
        f"{base}/unlock", data={"password": SHOP_PASSWORD, "next": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{base}/")


def test_unlock_attempts_are_rate_limited_and_the_password_never_shows(
    client: FlaskClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    base = f"/o/{world.org_slug}/{world.shop_slugs['password']}"
    caplog.set_level(logging.DEBUG)
    statuses = []
    for attempt in range(12):
        response = client.post(f"{base}/unlock", data={"password": f"guess-{attempt}-secret"})
        statuses.append(response.status_code)
        assert f"guess-{attempt}-secret" not in response.get_data(as_text=True)
    assert statuses[:10] == [422] * 10
    assert statuses[10:] == [429, 429]
    # Even the right password waits for the window to pass.
    assert client.post(f"{base}/unlock", data={"password": SHOP_PASSWORD}).status_code == 429
    assert "secret" not in caplog.text
    assert SHOP_PASSWORD not in caplog.text


def test_staff_see_staff_categories_under_the_admin_band(client: FlaskClient, world: World) -> None:
    base = f"/o/{world.org_slug}/{world.shop_slugs['public']}"
    staff_tag = world.tags["staff"]
    customer_page = client.get(f"{base}/", query_string={"category": staff_tag})
    text = customer_page.get_data(as_text=True)
    assert "Tag staff" not in text
    assert "staff-band" not in text
    assert world.names[("staff", "active")] not in text

    sign_in_as(client, world, "staff_here")
    staff_page = client.get(f"{base}/", query_string={"category": staff_tag})
    text = staff_page.get_data(as_text=True)
    assert "staff-band" in text
    assert "Tag staff" in text
    assert world.names[("staff", "active")] in text
    assert world.names[("staff", "archived")] not in text


def test_design_mode_reorders_for_managers_only(
    app: Flask, client: FlaskClient, world: World
) -> None:
    base = f"/o/{world.org_slug}/{world.shop_slugs['public']}"
    customer_tag = world.tags["customer"]
    move = {"tag_id": customer_tag, "article_id": world.articles[("customer", "active")]}
    # Customers: these endpoints do not exist.
    assert client.post(f"{base}/design").status_code == 404
    assert (
        client.post(f"{base}/design/articles", data={**move, "direction": "up"}).status_code == 404
    )
    # An attendant is staff but may not change the shop.
    sign_in_as(client, world, "attendant")
    assert client.post(f"{base}/design").status_code == 403
    client.get(f"/o/{world.org_slug}/")  # a fresh request
    sign_in_as(client, world, "staff_here")
    toggled = client.post(f"{base}/design", data={"next": f"{base}/"})
    assert toggled.status_code == 302
    page = client.get(f"{base}/").get_data(as_text=True)
    assert "design.js" in page
    assert 'aria-pressed="true"' in page
    moved = client.post(f"{base}/design/articles", data={**move, "direction": "down"})
    assert moved.status_code == 302
    saved = client.post(
        f"{base}/design/categories",
        json={"audience": "customer", "tag_ids": [customer_tag]},
    )
    assert saved.status_code == 200
    assert saved.get_json() == {"ok": True}
    refused = client.post(
        f"{base}/design/articles", json={"tag_id": customer_tag, "article_ids": [999999]}
    )
    assert refused.status_code == 422
    with database(app), tenant_scope(world.organization_id):
        positions = db.session.execute(sa.select(ShopArticlePosition)).scalars().all()
        assert positions  # the first move wrote the shop's order


def test_microsite_lists_public_pages_and_formats_prices_per_language(
    client: FlaskClient, world: World
) -> None:
    microsite = client.get(f"/o/{world.org_slug}/?lang=fr").get_data(as_text=True)
    assert "Boutique public" in microsite
    assert "Boutique password" in microsite
    base = f"/o/{world.org_slug}/{world.shop_slugs['public']}"
    french = client.get(f"{base}/?lang=fr").get_data(as_text=True)
    assert "10,00\xa0$" in french
    english = client.get(f"{base}/?lang=en").get_data(as_text=True)
    assert "$10.00" in english
    assert 'lang="en"' in english


def test_unknown_shop_and_organization_are_404(client: FlaskClient, world: World) -> None:
    assert client.get(f"/o/{world.org_slug}/nope/").status_code == 404
    assert client.get("/o/nobody/boutique-public/").status_code == 404
    # A shop of another organization is not reachable under this one.
    assert client.get(f"/o/{world.other_org_slug}/boutique-public/").status_code == 404
