"""The organization's switch for attendants' price changes, set through its settings page and
API, decides whether an attendant may change a cart's prices, in the cart pages and the API."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db
from comptoir.storefront.models import Cart, CartLine
from tests.storefront.cart_world import CartWorld, bearer, build_cart_world, database, sign_in

SWITCH = "attendant_can_override_prices"


@pytest.fixture
def world(app: Flask) -> CartWorld:
    return build_cart_world(app)


def staff_client(app: Flask, world: CartWorld, who: str) -> FlaskClient:
    client = app.test_client()
    with client.session_transaction() as cookie_session:
        cookie_session["locale"] = "en"
    sign_in(client, world, who)
    return client


def the_line(app: Flask) -> tuple[int, int, int]:
    """(cart id, line id, unit price) of the only cart line."""
    with database(app):
        line = db.session.execute(sa.select(CartLine)).scalar_one()
        cart = db.session.get(Cart, line.cart_id)
        assert cart is not None
        return cart.id, line.id, line.unit_price


def price_audits(app: Flask) -> int:
    with database(app):
        return int(
            db.session.execute(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "cart.price_overridden")
            ).scalar_one()
        )


def test_in_the_pages_the_settings_page_decides_for_attendants(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    added = client.post(
        f"{world.shop_url}/cart/add", data={"article_id": world.articles["cap"], "quantity": 1}
    )
    assert added.status_code == 302
    cart_id, line_id, _price = the_line(app)
    cart_page = f"{world.shop_url}/carts/{cart_id}"
    price_url = f"{cart_page}/lines/{line_id}/price"
    settings_page = f"/o/{world.org_slug}/admin/settings/"
    attendant = staff_client(app, world, "attendant")
    owner = staff_client(app, world, "owner")

    def change_price(cents: str) -> int:
        form = {f"price-{line_id}-unit_price": cents, f"price-{line_id}-reason": "Volunteer"}
        return attendant.post(price_url, data=form).status_code

    # Off (the default): no price form for the attendant, and a posted one is refused.
    assert "Change the price" not in attendant.get(cart_page).get_data(as_text=True)
    assert change_price("10.00") == 403
    assert the_line(app)[2] == 1500
    # The attendant cannot turn it on.
    assert attendant.post(settings_page, data={SWITCH: "y"}).status_code == 403
    assert change_price("10.00") == 403

    # The owner turns it on in the settings page: the attendant now changes the price.
    assert owner.post(settings_page, data={SWITCH: "y"}).status_code == 302
    assert "Change the price" in attendant.get(cart_page).get_data(as_text=True)
    assert change_price("10.00") == 302
    assert the_line(app)[2] == 1000
    assert price_audits(app) == 1

    # And off again: refused again, the price stays.
    assert owner.post(settings_page, data={}).status_code == 302
    assert "Change the price" not in attendant.get(cart_page).get_data(as_text=True)
    assert change_price("5.00") == 403
    assert the_line(app)[2] == 1000
    assert price_audits(app) == 1


def test_in_the_api_the_settings_resource_decides_for_attendants(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    created = client.post(f"{world.api}/shops/{world.shop_slug}/carts")
    cart_id, token = created.get_json()["id"], {"X-Cart-Token": created.get_json()["token"]}
    line = client.post(
        f"{world.api}/carts/{cart_id}/lines",
        json={"article_id": world.articles["cap"], "quantity": 2},
        headers=token,
    )
    assert line.status_code == 201
    line_url = f"{world.api}/carts/{cart_id}/lines/{line.get_json()['id']}"
    settings = f"{world.api}/settings"
    attendant = bearer(world, "attendant")
    owner = bearer(world, "owner")
    new_price = {"unit_price": 900, "reason": "Team price"}

    assert client.get(settings, headers=attendant).get_json() == {SWITCH: False}
    refused = client.patch(line_url, json=new_price, headers=attendant)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    # The attendant's own key cannot turn the switch on.
    assert client.patch(settings, json={SWITCH: True}, headers=attendant).status_code == 403
    assert client.patch(line_url, json=new_price, headers=attendant).status_code == 403
    assert the_line(app)[2] == 1500

    assert client.patch(settings, json={SWITCH: True}, headers=owner).status_code == 200
    allowed = client.patch(line_url, json=new_price, headers=attendant)
    assert allowed.status_code == 200, allowed.get_json()
    assert (allowed.get_json()["unit_price"], allowed.get_json()["original_unit_price"]) == (
        900,
        1500,
    )
    assert price_audits(app) == 1

    assert client.patch(settings, json={SWITCH: False}, headers=owner).status_code == 200
    assert (
        client.patch(line_url, json={**new_price, "unit_price": 1}, headers=attendant).status_code
        == 403
    )
    assert the_line(app)[2] == 900
    # Owners and admins never depended on the switch.
    assert (
        client.patch(line_url, json={**new_price, "unit_price": 800}, headers=owner).status_code
        == 200
    )
    assert price_audits(app) == 2
