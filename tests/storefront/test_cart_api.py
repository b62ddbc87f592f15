"""The cart API: shapes, bad input, who may reach a cart, staff powers, totals with taxes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db, utcnow
from comptoir.storefront.models import CartLine
from tests.storefront.cart_world import (
    CartWorld,
    bearer,
    build_cart_world,
    database,
    held,
    move_expiry,
    set_organization_flag,
    sign_in,
)


@pytest.fixture
def world(app: Flask) -> CartWorld:
    return build_cart_world(app)


def open_cart(client: FlaskClient, world: CartWorld) -> tuple[int, dict[str, str]]:
    response = client.post(f"{world.api}/shops/{world.shop_slug}/carts")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return body["id"], {"X-Cart-Token": body["token"]}


def add_line(
    client: FlaskClient, world: CartWorld, cart: tuple[int, dict[str, str]], payload: Any
) -> Any:
    return client.post(f"{world.api}/carts/{cart[0]}/lines", json=payload, headers=cart[1])


def line_rows(app: Flask) -> list[tuple[int, int, int | None]]:
    with database(app):
        return [
            (row.quantity, row.unit_price, row.price_override_reason and 1)
            for row in db.session.execute(sa.select(CartLine).order_by(CartLine.id)).scalars()
        ]


def test_a_new_cart_has_a_token_an_expiry_and_empty_totals(
    client: FlaskClient, world: CartWorld
) -> None:
    response = client.post(f"{world.api}/shops/{world.shop_slug}/carts")
    assert response.status_code == 201
    body = response.get_json()
    assert len(body["token"]) >= 40
    assert body["lines"] == []
    assert (body["subtotal"], body["taxes"], body["total"]) == (0, [], 0)
    assert body["currency"] == "CAD"
    assert body["status"] == "active"
    assert body["expires_at"] > (utcnow() + timedelta(minutes=19)).isoformat()
    fetched = client.get(f"{world.api}/carts/{body['id']}", headers={"X-Cart-Token": body["token"]})
    assert fetched.status_code == 200
    assert "token" not in fetched.get_json()


def test_lines_totals_and_each_tax_by_name(client: FlaskClient, world: CartWorld) -> None:
    cart = open_cart(client, world)
    created = add_line(client, world, cart, {"article_id": world.articles["cap"], "quantity": 3})
    assert created.status_code == 201
    line = created.get_json()
    assert line == {
        "id": line["id"],
        "article_id": world.articles["cap"],
        "variant_id": None,
        "name": "Bonnet",
        "quantity": 3,
        "unit_price": 1500,
        "original_unit_price": 1500,
        "price_override_reason": None,
        "total": 4500,
    }
    assert (
        add_line(
            client, world, cart, {"article_id": world.articles["exempt"], "quantity": 1}
        ).status_code
        == 201
    )
    body = client.get(f"{world.api}/carts/{cart[0]}?lang=en", headers=cart[1]).get_json()
    assert body["subtotal"] == 4500 + 10000
    # Québec: GST 5 % and QST 9.975 % on the taxable cap only, each rounded half up.
    assert body["taxes"] == [
        {"code": "GST", "name": "GST", "rate": "5.000", "amount": 225},
        {"code": "QST", "name": "QST", "rate": "9.975", "amount": 449},
    ]
    assert body["total"] == body["subtotal"] + 225 + 449
    assert [line["name"] for line in body["lines"]] == ["Cap", "Lesson"]
    french = client.get(f"{world.api}/carts/{cart[0]}?lang=fr", headers=cart[1]).get_json()
    assert [tax["name"] for tax in french["taxes"]] == ["TPS", "TVQ"]


@pytest.mark.parametrize(
    ("quantity", "field"),
    [(0, "quantity"), (-2, "quantity"), ("2", "quantity"), (1.5, "quantity"), (None, "quantity")],
)
def test_bad_quantities_are_refused_and_nothing_changes(
    app: Flask, client: FlaskClient, world: CartWorld, quantity: Any, field: str
) -> None:
    cart = open_cart(client, world)
    response = add_line(
        client, world, cart, {"article_id": world.articles["cap"], "quantity": quantity}
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]
    assert line_rows(app) == []
    assert held(app, world.articles["cap"]) == 0


def test_limits_and_unknown_things(app: Flask, client: FlaskClient, world: CartWorld) -> None:
    cart = open_cart(client, world)
    over_max = add_line(
        client, world, cart, {"article_id": world.articles["goggles"], "quantity": 4}
    )
    assert over_max.status_code == 422
    assert "quantity" in over_max.get_json()["error"]["fields"]
    over_stock = add_line(
        client, world, cart, {"article_id": world.articles["cap"], "quantity": 11}
    )
    assert over_stock.status_code == 409
    assert over_stock.get_json()["error"]["code"] == "out_of_stock"
    assert "10" in over_stock.get_json()["error"]["message"]
    for article_id in (world.articles["staff_only"], world.other_article, 99_999_999):
        hidden = add_line(client, world, cart, {"article_id": article_id, "quantity": 1})
        assert hidden.status_code == 404, article_id
        assert hidden.get_json()["error"]["code"] == "not_found"
    wrong_variant = add_line(
        client,
        world,
        cart,
        {"article_id": world.articles["cap"], "variant_id": world.variants["small"], "quantity": 1},
    )
    assert wrong_variant.status_code == 404
    unknown_field = add_line(
        client, world, cart, {"article_id": world.articles["cap"], "quantity": 1, "price": 1}
    )
    assert unknown_field.status_code == 422
    assert line_rows(app) == []
    unknown_cart = client.post(
        f"{world.api}/carts/99999999/lines",
        json={"article_id": world.articles["cap"], "quantity": 1},
        headers=cart[1],
    )
    assert unknown_cart.status_code == 404


def test_a_cart_is_reached_with_its_token_or_by_staff_of_its_organization(
    client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    other = open_cart(client, world)
    url = f"{world.api}/carts/{cart[0]}"
    assert client.get(url).status_code == 404
    assert client.get(url, headers=other[1]).status_code == 404
    assert client.get(url, headers={"X-Cart-Token": "guessed"}).status_code == 404
    assert client.get(url, headers=bearer(world, "attendant")).status_code == 200
    assert client.get(url, headers=bearer(world, "other_owner")).status_code == 404
    elsewhere = client.get(f"/api/v1/o/{world.other_org_slug}/carts/{cart[0]}", headers=cart[1])
    assert elsewhere.status_code == 404


def test_a_customer_sending_a_price_gets_403_and_nothing_changes(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    line = add_line(client, world, cart, {"article_id": world.articles["cap"], "quantity": 1})
    url = f"{world.api}/carts/{cart[0]}/lines/{line.get_json()['id']}"
    for body in (
        {"unit_price": 1},
        {"unit_price": 1, "reason": "friend"},
        {"quantity": 2, "unit_price": 1, "reason": "friend"},
    ):
        refused = client.patch(url, json=body, headers=cart[1])
        assert refused.status_code == 403, body
        error = refused.get_json()["error"]
        assert error["code"] == "forbidden"
        assert "unit_price" in error["fields"]
    assert line_rows(app) == [(1, 1500, None)]
    expiry = client.patch(
        f"{world.api}/carts/{cart[0]}",
        json={"expires_at": (utcnow() + timedelta(days=1)).isoformat()},
        headers=cart[1],
    )
    assert expiry.status_code == 403
    assert "expires_at" in expiry.get_json()["error"]["fields"]


def test_staff_expiry_out_of_range_is_refused_and_a_past_time_ends_the_cart_now(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    add_line(client, world, cart, {"article_id": world.articles["cap"], "quantity": 1})
    url = f"{world.api}/carts/{cart[0]}"
    owner = bearer(world, "owner")

    # The first instant Python knows, an hour ahead of UTC: before any UTC time there is.
    ancient = client.patch(url, json={"expires_at": "0001-01-01T00:00:00+01:00"}, headers=owner)
    assert ancient.status_code == 422, ancient.get_json()
    assert "expires_at" in ancient.get_json()["error"]["fields"]
    assert held(app, world.articles["cap"]) == 1

    before = utcnow()
    ended = client.patch(url, json={"expires_at": "2001-01-01T00:00:00+00:00"}, headers=owner)
    assert ended.status_code == 200, ended.get_json()
    assert datetime.fromisoformat(ended.get_json()["expires_at"]) >= before - timedelta(seconds=1)
    assert held(app, world.articles["cap"]) == 0


def test_staff_change_a_price_with_a_reason_audited_with_the_original_kept(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    line = add_line(client, world, cart, {"article_id": world.articles["cap"], "quantity": 2})
    url = f"{world.api}/carts/{cart[0]}/lines/{line.get_json()['id']}"
    missing_reason = client.patch(url, json={"unit_price": 1000}, headers=bearer(world, "owner"))
    assert missing_reason.status_code == 422
    assert "reason" in missing_reason.get_json()["error"]["fields"]
    changed = client.patch(
        url, json={"unit_price": 1000, "reason": "Team discount"}, headers=bearer(world, "owner")
    )
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert (body["unit_price"], body["original_unit_price"], body["total"]) == (1000, 1500, 2000)
    assert body["price_override_reason"] == "Team discount"
    totals = client.get(f"{world.api}/carts/{cart[0]}", headers=cart[1]).get_json()
    assert totals["subtotal"] == 2000
    assert totals["total"] == 2000 + 100 + 200  # GST 5 %, QST 9.975 % rounded
    with database(app):
        entry = db.session.execute(
            sa.select(AuditLog).where(AuditLog.action == "cart.price_overridden")
        ).scalar_one()
    assert entry.before is not None
    assert entry.after is not None
    assert entry.before["unit_price"] == 1500
    assert entry.after["unit_price"] == 1000
    assert entry.after["original_unit_price"] == 1500
    assert entry.after["price_override_reason"] == "Team discount"
    assert entry.actor_api_key_id is not None


def test_attendants_change_prices_only_when_the_organization_allows_it(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    line = add_line(client, world, cart, {"article_id": world.articles["cap"], "quantity": 1})
    url = f"{world.api}/carts/{cart[0]}/lines/{line.get_json()['id']}"
    body = {"unit_price": 0, "reason": "Prize"}
    assert client.patch(url, json=body, headers=bearer(world, "attendant")).status_code == 403
    assert client.patch(url, json=body, headers=bearer(world, "other_owner")).status_code == 404
    assert line_rows(app) == [(1, 1500, None)]
    set_organization_flag(app, world, attendant_can_override=True)
    allowed = client.patch(url, json=body, headers=bearer(world, "attendant"))
    assert allowed.status_code == 200
    assert allowed.get_json()["unit_price"] == 0
    assert line_rows(app) == [(1, 0, 1)]


def test_staff_session_in_the_browser_needs_the_organization(
    client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    sign_in(client, world, "other_owner")
    assert client.get(f"{world.api}/carts/{cart[0]}").status_code == 404
    sign_in(client, world, "admin")
    assert client.get(f"{world.api}/carts/{cart[0]}").status_code == 200


def test_an_expired_cart_answers_410_to_customers(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    line = add_line(client, world, cart, {"article_id": world.articles["cap"], "quantity": 1})
    move_expiry(app, cart[0], utcnow() - timedelta(seconds=1))
    line_url = f"{world.api}/carts/{cart[0]}/lines/{line.get_json()['id']}"
    for response in (
        client.get(f"{world.api}/carts/{cart[0]}", headers=cart[1]),
        add_line(client, world, cart, {"article_id": world.articles["cap"], "quantity": 1}),
        client.patch(line_url, json={"quantity": 2}, headers=cart[1]),
        client.delete(line_url, headers=cart[1]),
    ):
        assert response.status_code == 410
        assert response.get_json()["error"]["code"] == "cart_expired"
    staff_view = client.get(f"{world.api}/carts/{cart[0]}", headers=bearer(world, "owner"))
    assert staff_view.status_code == 200
    assert staff_view.get_json()["status"] == "expired"
    assert line_rows(app) == [(1, 1500, None)]


def test_invoice_preview_is_for_staff_as_pdf_or_html(client: FlaskClient, world: CartWorld) -> None:
    cart = open_cart(client, world)
    add_line(client, world, cart, {"article_id": world.articles["cap"], "quantity": 2})
    url = f"{world.api}/carts/{cart[0]}/invoice-preview"
    assert client.get(url, headers=cart[1]).status_code == 401
    assert client.get(url, headers=bearer(world, "other_owner")).status_code == 404
    pdf = client.get(url, headers={**bearer(world, "attendant"), "Accept": "application/pdf"})
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    html = client.get(url, headers={**bearer(world, "attendant"), "Accept": "text/html"})
    assert html.status_code == 200
    assert html.mimetype == "text/html"
    text = html.get_data(as_text=True)
    assert "APERÇU" in text or "PREVIEW" in text
    assert "1234567890 TQ0001" in text
    refused = client.get(url, headers={**bearer(world, "owner"), "Accept": "application/json"})
    assert refused.status_code == 406


def test_the_openapi_document_describes_the_cart_api(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    paths = document["paths"]
    for path, methods in {
        "/api/v1/o/{org}/shops/{shop}/carts": {"post"},
        "/api/v1/o/{org}/carts/{cart_id}": {"get", "patch"},
        "/api/v1/o/{org}/carts/{cart_id}/lines": {"post"},
        "/api/v1/o/{org}/carts/{cart_id}/lines/{line_id}": {"patch", "delete"},
        "/api/v1/o/{org}/carts/{cart_id}/invoice-preview": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    add = paths["/api/v1/o/{org}/carts/{cart_id}/lines"]["post"]
    assert {"201", "409", "410", "422"} <= set(add["responses"])
    preview = paths["/api/v1/o/{org}/carts/{cart_id}/invoice-preview"]["get"]
    assert {"application/pdf", "text/html"} <= set(preview["responses"]["200"]["content"])
    assert preview["security"] == [{"bearerAuth": []}]
    schemas = document["components"]["schemas"]
    assert schemas["CartLineCreate"]["additionalProperties"] is False
    assert "unit_price" not in schemas["CartLineCreate"]["properties"]
