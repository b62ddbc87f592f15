"""The shop's limit of cart renewals: set in the shop settings page and the API, audited, obeyed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db, utcnow
from comptoir.storefront.models import Shop
from tests.storefront.cart_world import (
    CartWorld,
    bearer,
    build_cart_world,
    database,
    move_expiry,
    sign_in,
)


@pytest.fixture
def world(app: Flask) -> CartWorld:
    return build_cart_world(app)


def renewals_of(app: Flask, world: CartWorld) -> int:
    with database(app):
        shop = db.session.get(Shop, world.shop_id)
        assert shop is not None
        return shop.max_cart_renewals


def shop_audits(app: Flask, world: CartWorld) -> list[AuditLog]:
    with database(app):
        entries = list(
            db.session.execute(
                sa.select(AuditLog)
                .where(
                    AuditLog.organization_id == world.organization_id,
                    AuditLog.action == "shop.updated",
                )
                .order_by(AuditLog.id)
            ).scalars()
        )
        for entry in entries:
            db.session.expunge(entry)
        return entries


def staff_client(app: Flask, world: CartWorld, who: str) -> FlaskClient:
    client = app.test_client()
    with client.session_transaction() as cookie_session:
        cookie_session["locale"] = "en"
    sign_in(client, world, who)
    return client


def page_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "name_fr": "Boutique du club",
        "name_en": "Club shop",
        "slug": "boutique",
        "access": "public",
        "password": "",
        "cart_minutes": "20",
        "max_cart_renewals": "2",
    }
    form.update(overrides)
    return form


# --------------------------------------------------------------------------- the settings page


def test_the_page_tab_shows_and_saves_the_renewal_limit_next_to_the_cart_minutes(
    app: Flask, world: CartWorld
) -> None:
    admin = staff_client(app, world, "admin")
    url = f"/o/{world.org_slug}/admin/shops/{world.shop_slug}/settings/"
    html = admin.get(url).get_data(as_text=True)
    assert 'name="cart_minutes"' in html
    assert '<label for="max_cart_renewals">Renewals allowed per cart</label>' in html
    assert 'name="max_cart_renewals" type="number" value="2"' in html
    assert html.index('name="cart_minutes"') < html.index('name="max_cart_renewals"')

    saved = admin.post(url, data=page_form(max_cart_renewals="5"))
    assert saved.status_code == 302
    assert renewals_of(app, world) == 5
    assert 'name="max_cart_renewals" type="number" value="5"' in admin.get(url).get_data(
        as_text=True
    )
    [entry] = shop_audits(app, world)
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["max_cart_renewals"], entry.after["max_cart_renewals"]) == (2, 5)

    # None is allowed: the customer then never renews.
    assert admin.post(url, data=page_form(max_cart_renewals="0")).status_code == 302
    assert renewals_of(app, world) == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("21", "At most 20 renewals."),
        ("-1", "Enter a number of at least 0."),
        ("", "Enter a number of renewals."),
        ("two", "Not a valid integer value."),
    ],
)
def test_a_bad_renewal_limit_is_explained_beside_the_field_and_nothing_is_saved(
    app: Flask, world: CartWorld, value: str, message: str
) -> None:
    admin = staff_client(app, world, "owner")
    url = f"/o/{world.org_slug}/admin/shops/{world.shop_slug}/settings/"
    refused = admin.post(url, data=page_form(max_cart_renewals=value, cart_minutes="45"))
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert f'<p class="error" id="max_cart_renewals-error">{message}</p>' in html
    assert 'aria-invalid="true"' in html
    # What was typed stays in the form.
    assert 'name="cart_minutes" type="number" value="45"' in html
    with database(app):
        shop = db.session.get(Shop, world.shop_id)
        assert shop is not None
        assert (shop.cart_minutes, shop.max_cart_renewals) == (20, 2)
    assert shop_audits(app, world) == []


def test_the_page_in_french(app: Flask, world: CartWorld) -> None:
    admin = staff_client(app, world, "owner")
    with admin.session_transaction() as cookie_session:
        cookie_session["locale"] = "fr"
    html = admin.get(f"/o/{world.org_slug}/admin/shops/{world.shop_slug}/settings/").get_data(
        as_text=True
    )
    assert "Prolongations permises par panier" in html


# --------------------------------------------------------------------------- the API


def test_the_api_reads_and_changes_the_renewal_limit(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    url = f"{world.api}/shops/{world.shop_slug}"
    assert client.get(url, headers=bearer(world, "owner")).get_json()["max_cart_renewals"] == 2
    changed = client.patch(url, json={"max_cart_renewals": 20}, headers=bearer(world, "owner"))
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert body["max_cart_renewals"] == 20
    assert body["cart_minutes"] == 20
    assert renewals_of(app, world) == 20
    [entry] = shop_audits(app, world)
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["max_cart_renewals"], entry.after["max_cart_renewals"]) == (2, 20)
    assert entry.actor_api_key_id is not None
    assert (
        client.patch(url, json={"max_cart_renewals": 0}, headers=bearer(world, "owner")).get_json()[
            "max_cart_renewals"
        ]
        == 0
    )
    listed = client.get(f"{world.api}/shops", headers=bearer(world, "attendant")).get_json()
    assert [shop["max_cart_renewals"] for shop in listed] == [0]


def test_a_new_shop_allows_two_renewals_unless_told(client: FlaskClient, world: CartWorld) -> None:
    shops = f"{world.api}/shops"
    plain = client.post(
        shops, json={"slug": "camp", "name": {"fr": "Camp"}}, headers=bearer(world, "owner")
    )
    assert plain.status_code == 201, plain.get_json()
    assert plain.get_json()["max_cart_renewals"] == 2
    strict = client.post(
        shops,
        json={"slug": "gala", "name": {"fr": "Gala"}, "max_cart_renewals": 0},
        headers=bearer(world, "owner"),
    )
    assert strict.status_code == 201, strict.get_json()
    assert strict.get_json()["max_cart_renewals"] == 0


@pytest.mark.parametrize("value", [21, -1, 2.5, "3", True, None])
def test_a_bad_renewal_limit_is_a_validation_error_and_nothing_is_saved(
    app: Flask, client: FlaskClient, world: CartWorld, value: Any
) -> None:
    response = client.patch(
        f"{world.api}/shops/{world.shop_slug}",
        json={"max_cart_renewals": value, "cart_minutes": 45},
        headers=bearer(world, "owner"),
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert "max_cart_renewals" in error["fields"]
    with database(app):
        shop = db.session.get(Shop, world.shop_id)
        assert shop is not None
        assert (shop.cart_minutes, shop.max_cart_renewals) == (20, 2)
    assert shop_audits(app, world) == []


def test_attendants_cannot_change_the_renewal_limit(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    refused = client.patch(
        f"{world.api}/shops/{world.shop_slug}",
        json={"max_cart_renewals": 9},
        headers=bearer(world, "attendant"),
    )
    assert refused.status_code == 403
    attendant = staff_client(app, world, "attendant")
    url = f"/o/{world.org_slug}/admin/shops/{world.shop_slug}/settings/"
    assert attendant.post(url, data=page_form(max_cart_renewals="9")).status_code == 403
    assert renewals_of(app, world) == 2


# --------------------------------------------------------------------------- customers


def test_customers_renew_as_many_times_as_the_shop_now_allows(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    url = f"{world.api}/shops/{world.shop_slug}"
    assert (
        client.patch(url, json={"max_cart_renewals": 1}, headers=bearer(world, "owner")).status_code
        == 200
    )
    created = client.post(f"{url}/carts").get_json()
    cart_id, token = created["id"], {"X-Cart-Token": created["token"]}
    assert created["renewals_left"] == 1
    renew_url = f"{world.api}/carts/{cart_id}/renew"
    move_expiry(app, cart_id, utcnow() + timedelta(minutes=3))
    assert client.post(renew_url, headers=token).status_code == 200
    move_expiry(app, cart_id, utcnow() + timedelta(minutes=3))
    spent = client.post(renew_url, headers=token)
    assert spent.status_code == 409
    assert spent.get_json()["error"]["code"] == "conflict"

    assert (
        client.patch(url, json={"max_cart_renewals": 0}, headers=bearer(world, "owner")).status_code
        == 200
    )
    other = client.post(f"{url}/carts").get_json()
    assert other["renewals_left"] == 0
    move_expiry(app, other["id"], utcnow() + timedelta(minutes=3))
    current = client.get(
        f"{world.api}/carts/{other['id']}", headers={"X-Cart-Token": other["token"]}
    ).get_json()
    assert current["can_renew"] is False
    refused = client.post(
        f"{world.api}/carts/{other['id']}/renew", headers={"X-Cart-Token": other["token"]}
    )
    assert refused.status_code == 409
