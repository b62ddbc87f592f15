"""The cart pages: step 1 of the checkout, the countdown, expiry, and the staff extras."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.app import create_app
from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db, utcnow
from comptoir.storefront.models import Cart, CartLine
from comptoir.storefront.views.cart import cookie_name
from tests.conftest import make_settings
from tests.storefront.cart_world import (
    CartWorld,
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


def add(client: FlaskClient, world: CartWorld, article: str, quantity: object = 1, **extra: object):  # type: ignore[no-untyped-def]
    data = {"article_id": world.articles[article], "quantity": quantity, **extra}
    return client.post(f"{world.shop_url}/cart/add", data=data)


def the_cart(app: Flask) -> tuple[int, list[int]]:
    with database(app):
        cart = db.session.execute(sa.select(Cart).order_by(Cart.id.desc())).scalars().first()
        assert cart is not None
        lines = list(
            db.session.execute(
                sa.select(CartLine.id).where(CartLine.cart_id == cart.id).order_by(CartLine.id)
            ).scalars()
        )
        return cart.id, lines


def english(client: FlaskClient) -> FlaskClient:
    """Read the pages in English (the organization's default is French)."""
    with client.session_transaction() as cookie_session:
        cookie_session["locale"] = "en"
    return client


def staff_client(app: Flask, world: CartWorld, who: str) -> FlaskClient:
    client = english(app.test_client())
    sign_in(client, world, who)
    return client


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return english(app.test_client())


def test_the_article_page_adds_to_the_cart_and_the_cart_shows_totals_and_time(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    article_page = client.get(f"{world.shop_url}/articles/{world.articles['cap']}")
    assert article_page.status_code == 200
    assert f'action="{world.shop_url}/cart/add"' in article_page.get_data(as_text=True)

    added = add(client, world, "cap", 2)
    assert added.status_code == 302
    assert added.headers["Location"].endswith(f"{world.shop_url}/cart")
    cookie = client.get_cookie(cookie_name(world.shop_id))
    assert cookie is not None
    assert cookie.http_only

    page = client.get(f"{world.shop_url}/cart")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "1. Cart" in html
    assert "4. Confirmation" in html
    assert 'aria-current="step"' in html
    assert "Cap" in html
    # 2 x $15.00 = $30.00; GST $1.50; QST $2.99 (9.975 % of 3000 = 299.25); total $34.49.
    assert "$30.00" in html
    assert "GST" in html
    assert "$1.50" in html
    assert "QST" in html
    assert "$2.99" in html
    assert "$34.49" in html
    assert 'data-expires-at="' in html
    assert 'aria-live="polite"' in html
    assert "storefront/cart.js" in html
    assert "Continue" in html
    # Customers never see the staff extras.
    assert "staff-action" not in html
    assert "Preview invoice" not in html
    assert held(app, world.articles["cap"]) == 2


def test_the_shop_and_article_pages_lead_back_to_the_visitors_own_cart(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart_link = f'href="{world.shop_url}/cart"'
    shop_page = client.get(f"{world.shop_url}/").get_data(as_text=True)
    article_page = client.get(f"{world.shop_url}/articles/{world.articles['cap']}")
    assert cart_link in shop_page
    assert cart_link in article_page.get_data(as_text=True)

    add(client, world, "cap", 2)
    # Another visitor, served the same cached shop page, reaches their own (empty) cart.
    stranger = english(app.test_client())
    assert cart_link in stranger.get(f"{world.shop_url}/").get_data(as_text=True)
    assert "Cap" not in stranger.get(f"{world.shop_url}/cart").get_data(as_text=True)
    assert "Cap" in client.get(f"{world.shop_url}/cart").get_data(as_text=True)


def test_quantities_are_edited_with_plain_forms_and_bad_input_is_explained(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    add(client, world, "cap", 1)
    cart_id, (line_id,) = the_cart(app)
    url = f"{world.shop_url}/carts/{cart_id}/lines/{line_id}"
    field = f"line-{line_id}-quantity"
    for bad in ("abc", "0", "-3", "1.5"):
        refused = client.post(url, data={field: bad})
        assert refused.status_code == 422, bad
        html = refused.get_data(as_text=True)
        assert 'aria-invalid="true"' in html
        assert f'id="{field}-error"' in html
    too_many = client.post(url, data={field: "11"})
    assert too_many.status_code == 409
    assert "Only 10 left" in too_many.get_data(as_text=True)
    assert held(app, world.articles["cap"]) == 1
    assert client.post(url, data={field: "4"}).status_code == 302
    assert held(app, world.articles["cap"]) == 4
    removed = client.post(f"{url}/remove")
    assert removed.status_code == 302
    assert held(app, world.articles["cap"]) == 0
    assert "Your cart is empty" in client.get(f"{world.shop_url}/cart").get_data(as_text=True)


def test_adding_refuses_what_the_customer_cannot_have(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    over_max = add(client, world, "goggles", 4)
    assert over_max.status_code == 422
    assert "At most 3 per order" in over_max.get_data(as_text=True)
    bad = add(client, world, "cap", "lots")
    assert bad.status_code == 422
    assert (
        client.post(
            f"{world.shop_url}/cart/add",
            data={"article_id": world.articles["staff_only"], "quantity": 1},
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"{world.shop_url}/cart/add", data={"article_id": world.other_article, "quantity": 1}
        ).status_code
        == 404
    )
    no_option = add(client, world, "suit", 1)
    assert no_option.status_code == 422
    assert "Choose an option" in no_option.get_data(as_text=True)
    with database(app):
        assert db.session.execute(sa.select(sa.func.count()).select_from(CartLine)).scalar() == 0
    assert add(client, world, "suit", 1, variant_id=world.variants["small"]).status_code == 302


def test_an_expired_cart_says_so_and_offers_what_is_still_available(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    add(client, world, "cap", 2)
    add(client, world, "last", 1)
    cart_id, _lines = the_cart(app)
    move_expiry(app, cart_id, utcnow() - timedelta(minutes=1))
    # Someone else takes the last unit meanwhile.
    other = english(app.test_client())
    assert add(other, world, "last", 1).status_code == 302

    page = client.get(f"{world.shop_url}/cart")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Your cart expired" in html
    assert 'role="alert"' in html
    assert html.count("Add again") == 1
    assert "No longer available" in html
    again = client.post(
        f"{world.shop_url}/cart/add",
        data={"article_id": world.articles["cap"], "quantity": 2},
    )
    assert again.status_code == 302
    new_cart_id, _lines = the_cart(app)
    assert new_cart_id != cart_id
    assert held(app, world.articles["cap"]) == 2


def test_renewal_button_and_countdown_data(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    add(client, world, "cap", 1)
    cart_id, _lines = the_cart(app)
    html = client.get(f"{world.shop_url}/cart").get_data(as_text=True)
    assert re.search(r"<form[^>]*data-cart-renew[^>]* hidden", html)
    move_expiry(app, cart_id, utcnow() + timedelta(minutes=4))
    html = client.get(f"{world.shop_url}/cart").get_data(as_text=True)
    assert not re.search(r"<form[^>]*data-cart-renew[^>]* hidden", html)
    assert client.post(f"{world.shop_url}/carts/{cart_id}/renew").status_code == 302
    with database(app):
        cart = db.session.get(Cart, cart_id)
        assert cart is not None
        assert cart.renewals == 1
        assert cart.expires_at > utcnow() + timedelta(minutes=19)


def test_staff_powers_are_refused_to_customers_and_to_other_organizations(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    add(client, world, "cap", 1)
    cart_id, (line_id,) = the_cart(app)
    base = f"{world.shop_url}/carts/{cart_id}"
    price = {f"price-{line_id}-unit_price": "1.00", f"price-{line_id}-reason": "friend"}
    expiry = {"expires_at": "2030-01-01T12:00"}
    # The customer reaches the cart, but not these powers.
    assert client.post(f"{base}/lines/{line_id}/price", data=price).status_code == 403
    assert client.post(f"{base}/expiry", data=expiry).status_code == 403
    assert client.get(f"{base}/invoice").status_code == 403
    assert client.get(f"{base}/invoice.pdf").status_code == 403
    # Another visitor does not even reach it; nor does staff of another organization.
    stranger = english(app.test_client())
    assert stranger.get(base).status_code == 404
    assert stranger.post(f"{base}/lines/{line_id}/price", data=price).status_code == 404
    other_staff = staff_client(app, world, "other_owner")
    assert other_staff.get(base).status_code == 404
    assert other_staff.post(f"{base}/expiry", data=expiry).status_code == 404
    assert other_staff.get(f"{base}/invoice").status_code == 404
    # An attendant sees the cart and its expiry, but no price change until allowed.
    attendant = staff_client(app, world, "attendant")
    page = attendant.get(base).get_data(as_text=True)
    assert "Change the expiry" in page
    assert "Change the price" not in page
    assert attendant.post(f"{base}/lines/{line_id}/price", data=price).status_code == 403
    with database(app):
        assert db.session.execute(sa.select(CartLine.unit_price)).scalar_one() == 1500
        assert (
            db.session.execute(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.action.like("cart.%"))
            ).scalar()
            == 0
        )
    set_organization_flag(app, world, attendant_can_override=True)
    assert "Change the price" in attendant.get(base).get_data(as_text=True)
    assert attendant.post(f"{base}/lines/{line_id}/price", data=price).status_code == 302
    with database(app):
        assert db.session.execute(sa.select(CartLine.unit_price)).scalar_one() == 100


def test_staff_change_a_price_and_the_expiry_and_preview_the_invoice(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    add(client, world, "cap", 2)
    cart_id, (line_id,) = the_cart(app)
    base = f"{world.shop_url}/carts/{cart_id}"
    owner = staff_client(app, world, "owner")
    page = owner.get(base)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "staff-band" in html
    assert "staff-action" in html
    assert 'type="datetime-local"' in html
    assert "Preview invoice" in html

    no_reason = owner.post(
        f"{base}/lines/{line_id}/price", data={f"price-{line_id}-unit_price": "12.00"}
    )
    assert no_reason.status_code == 422
    assert f'id="price-{line_id}-reason-error"' in no_reason.get_data(as_text=True)
    changed = owner.post(
        f"{base}/lines/{line_id}/price",
        data={f"price-{line_id}-unit_price": "12,00", f"price-{line_id}-reason": "Membre"},
    )
    assert changed.status_code == 302
    customer_page = client.get(f"{world.shop_url}/cart").get_data(as_text=True)
    assert "Price changed by staff from $15.00" in customer_page
    assert "$24.00" in customer_page

    local = (utcnow() + timedelta(hours=3)).astimezone(ZoneInfo("America/Toronto"))
    moved = owner.post(f"{base}/expiry", data={"expires_at": local.strftime("%Y-%m-%dT%H:%M")})
    assert moved.status_code == 302
    bad_time = owner.post(f"{base}/expiry", data={"expires_at": "tomorrow"})
    assert bad_time.status_code == 422
    with database(app):
        cart = db.session.get(Cart, cart_id)
        assert cart is not None
        assert abs((cart.expires_at - local).total_seconds()) < 60
        actions = set(db.session.execute(sa.select(AuditLog.action)).scalars())
        assert {"cart.price_overridden", "cart.expiry_changed"} <= actions

    invoice = owner.get(f"{base}/invoice")
    assert invoice.status_code == 200
    text = invoice.get_data(as_text=True)
    assert "PREVIEW" in text
    assert "123456789 RT0001" in text
    assert "Membre" in text
    assert "-$6.00" in text  # the discount: 2 x $3.00
    pdf = owner.get(f"{base}/invoice.pdf")
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")


def test_page_api_and_preview_agree_on_the_totals(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    add(client, world, "cap", 3)
    add(client, world, "suit", 1, variant_id=world.variants["large"])
    add(client, world, "exempt", 1)
    cart_id, _lines = the_cart(app)
    owner = staff_client(app, world, "owner")
    api = client.get(
        f"{world.api}/carts/{cart_id}",
        headers={"X-Cart-Token": client.get_cookie(cookie_name(world.shop_id)).value},  # type: ignore[union-attr]
    ).get_json()
    lines_total = sum(line["total"] for line in api["lines"])
    taxes_total = sum(tax["amount"] for tax in api["taxes"])
    assert api["subtotal"] == lines_total == 3 * 1500 + 4500 + 10000
    assert api["total"] == lines_total + taxes_total
    total_text = f"${api['total'] // 100}.{api['total'] % 100:02d}"
    page = client.get(f"{world.shop_url}/cart").get_data(as_text=True)
    preview = owner.get(f"{world.shop_url}/carts/{cart_id}/invoice").get_data(as_text=True)
    total_row = re.compile(r"data-cart-total>([^<]+)<")
    match = total_row.search(page)
    assert match is not None
    assert total_text in match.group(1)
    assert total_text in preview.split("invoice__total", 1)[1]


def test_the_cart_speaks_the_organizations_language_by_default(
    app: Flask, world: CartWorld
) -> None:
    french = app.test_client()
    assert add(french, world, "cap", 2).status_code == 302
    html = french.get(f"{world.shop_url}/cart").get_data(as_text=True)
    assert '<html lang="fr">' in html
    assert "Bonnet" in html
    assert "TPS" in html
    assert "TVQ" in html
    assert "34,49\u00a0$" in html


def test_cart_forms_carry_a_csrf_token_and_posts_without_one_are_refused(
    app: Flask, world: CartWorld, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    guarded = create_app(make_settings(database_url, redis_url, tmp_path, WTF_CSRF_ENABLED=True))
    visitor = english(guarded.test_client())
    article_url = f"{world.shop_url}/articles/{world.articles['cap']}"
    no_token = visitor.post(
        f"{world.shop_url}/cart/add", data={"article_id": world.articles["cap"], "quantity": 1}
    )
    assert no_token.status_code == 400
    page = visitor.get(article_url).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    added = visitor.post(
        f"{world.shop_url}/cart/add",
        data={"article_id": world.articles["cap"], "quantity": 1, "csrf_token": token.group(1)},
    )
    assert added.status_code == 302
    cart_page = visitor.get(f"{world.shop_url}/cart").get_data(as_text=True)
    forms = cart_page.count('method="post"')
    assert forms >= 3  # quantity, remove, renew
    assert cart_page.count('name="csrf_token"') == forms
    cart_id, (line_id,) = the_cart(app)
    refused = visitor.post(f"{world.shop_url}/carts/{cart_id}/lines/{line_id}/remove")
    assert refused.status_code == 400
    assert held(app, world.articles["cap"]) == 1
