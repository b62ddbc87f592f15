"""The checkout pages (steps 2 to 4), the staff extras, the admin order pages and the checkout
settings (forms, Payment, Customer form, Communication), through the test client."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing.models import Order, Payment
from comptoir.platform.db import db
from comptoir.storefront.checkout_forms import CheckoutForm, CheckoutFormVersion
from comptoir.storefront.models import Shop
from comptoir.storefront.views.cart import cookie_name
from tests.billing.order_world import (
    OrderWorld,
    build_order_world,
    count,
    database,
    new_cart,
    order_state,
    sold,
)
from tests.tenants.api_helpers import sign_in_session

OWNER_FORM = {
    "answers-first_name": "Camille",
    "answers-last_name": "Tremblay",
    "answers-email": "camille@example.org",
}


@pytest.fixture
def world(app: Flask) -> OrderWorld:
    return build_order_world(app)


def as_customer(client: FlaskClient, world: OrderWorld, token: str) -> None:
    client.set_cookie(cookie_name(world.shop_id), token, domain="localhost")


def nonce_of(html: str) -> str:
    match = re.search(r'name="nonce" value="([^"]+)"', html)
    assert match is not None, html
    return match.group(1)


def step_urls(world: OrderWorld, cart_id: int) -> tuple[str, str]:
    base = f"{world.shop_url}/carts/{cart_id}/checkout"
    return f"{base}/information", f"{base}/payment"


# --------------------------------------------------------------------------- customers


def test_a_customer_goes_through_steps_2_to_4_with_e_transfer(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    cart_id, token = new_cart(app, world, [("cap", 2)])
    as_customer(client, world, token)
    information, payment = step_urls(world, cart_id)
    page = client.get(information)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Account owner" in html or "Titulaire" in html or "answers-first_name" in html
    assert "staff-action" not in html
    refused = client.post(information, data={**OWNER_FORM, "answers-email": "nope"})
    assert refused.status_code == 422
    assert "answers-email-error" in refused.get_data(as_text=True)
    assert client.get(payment).status_code == 302  # no information yet
    saved = client.post(information, data=OWNER_FORM)
    assert saved.status_code == 302
    assert saved.headers["Location"].endswith(payment)
    step3 = client.get(payment)
    html = step3.get_data(as_text=True)
    assert 'value="offline"' in html
    assert 'value="etransfer"' in html
    assert 'value="cash"' not in html
    assert 'value="later"' not in html
    nonce = nonce_of(html)
    placed = client.post(payment, data={"payment_method": "etransfer", "nonce": nonce})
    assert placed.status_code == 303
    confirmation_url = placed.headers["Location"]
    # The same page sent again (a double click): the same order, nothing more.
    again = client.post(payment, data={"payment_method": "etransfer", "nonce": nonce})
    assert again.status_code == 303
    assert again.headers["Location"] == confirmation_url
    assert count(app, Order) == 1
    confirmation_page = client.get(confirmation_url)
    assert confirmation_page.headers["Cache-Control"] == "private, no-store"
    confirmation = confirmation_page.get_data(as_text=True)
    assert "C-1001" in confirmation
    assert "paiements@club.example" in confirmation
    assert "Couleur du bonnet?" in confirmation
    assert sold(app, world, "cap") == 2


def test_a_customer_cannot_pay_by_a_staff_method_in_the_page(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    cart_id, token = new_cart(app, world)
    as_customer(client, world, token)
    information, payment = step_urls(world, cart_id)
    client.post(information, data=OWNER_FORM)
    nonce = nonce_of(client.get(payment).get_data(as_text=True))
    refused = client.post(
        payment, data={"payment_method": "cash", "cash_tendered": "100", "nonce": nonce}
    )
    assert refused.status_code == 422
    assert count(app, Order) == 0
    # Without the cart's cookie, the steps are not there.
    client.delete_cookie(cookie_name(world.shop_id), domain="localhost")
    assert client.get(information).status_code == 404


# --------------------------------------------------------------------------- staff


def test_staff_counter_sale_in_cash_with_change(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    cart_id, _token = new_cart(app, world, [("course", 1)])
    sign_in_session(client, world.logins["attendant"])
    information, payment = step_urls(world, cart_id)
    page = client.get(information + "?counter=1").get_data(as_text=True)
    assert "staff-action" in page
    assert 'aria-pressed="false"' in page
    assert client.post(information, data={"customer_switch": ""}).status_code == 302
    step3 = client.get(payment).get_data(as_text=True)
    assert 'value="cash"' in step3
    assert 'value="later"' in step3
    assert 'value="other"' in step3
    placed = client.post(
        payment,
        data={"payment_method": "cash", "cash_tendered": "120,00", "nonce": nonce_of(step3)},
    )
    assert placed.status_code == 303
    confirmation = client.get(placed.headers["Location"]).get_data(as_text=True)
    assert "5,02" in confirmation  # change due on 114,98
    with database(app):
        order = db.session.execute(sa.select(Order)).scalar_one()
        assert order.counter_sale
        payment_row = db.session.execute(sa.select(Payment)).scalar_one()
        assert payment_row.change_due == 502


def test_staff_sell_on_behalf_then_take_payments_split(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    cart_id, _token = new_cart(app, world, [("course", 1)])
    sign_in_session(client, world.logins["attendant"])
    information, payment = step_urls(world, cart_id)
    search = client.get(information + "?q=tremblay").get_data(as_text=True)
    assert "Camille" in search
    prefilled = client.get(
        information + f"?counter=0&customer={world.customers['camille']}"
    ).get_data(as_text=True)
    assert 'value="camille@example.org"' in prefilled
    saved = client.post(
        information,
        data={
            "customer_switch": "on",
            "customer_id": str(world.customers["camille"]),
            **OWNER_FORM,
            "answers-first_name": "Camille-Anne",
        },
    )
    assert saved.status_code == 302
    nonce = nonce_of(client.get(payment).get_data(as_text=True))
    placed = client.post(payment, data={"payment_method": "later", "nonce": nonce})
    assert placed.status_code == 303
    token_url = placed.headers["Location"]
    with database(app):
        order = db.session.execute(sa.select(Order)).scalar_one()
        assert order.customer_id == world.customers["camille"]
        assert order.customer_first_name == "Camille-Anne"
        order_id = order.id
    cash = client.post(
        token_url + "/payments", data={"method": "cash", "amount": "50", "cash_tendered": "60"}
    )
    assert cash.status_code == 303
    no_reference = client.post(token_url + "/payments", data={"method": "other", "amount": "64.98"})
    assert no_reference.status_code == 422
    rest = client.post(
        token_url + "/payments", data={"method": "other", "amount": "64.98", "reference": "CHQ 8"}
    )
    assert rest.status_code == 303
    state = order_state(app, order_id)
    assert state.state == "paid"
    assert state.payments == [("cash", "succeeded", 5000), ("other", "succeeded", 6498)]
    sent = client.post(token_url + "/send-invoice", data={"email": "parent@example.org"})
    assert sent.status_code == 303
    bad = client.post(token_url + "/send-invoice", data={"email": "nope"})
    assert bad.status_code == 422


# --------------------------------------------------------------------------- admin orders


def test_admin_orders_list_page_and_actions(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    cart_id, token = new_cart(app, world, [("cap", 2)])
    as_customer(client, world, token)
    information, payment = step_urls(world, cart_id)
    client.post(information, data=OWNER_FORM)
    client.post(
        payment,
        data={
            "payment_method": "offline",
            "nonce": nonce_of(client.get(payment).get_data(as_text=True)),
        },
    )
    client.delete_cookie(cookie_name(world.shop_id), domain="localhost")
    sign_in_session(client, world.logins["owner"])
    with database(app):
        order = db.session.execute(sa.select(Order)).scalar_one()
        order_id = order.id
        line_id = order.lines[0].id
    listing = client.get(f"/o/{world.org_slug}/admin/orders/?pending=1&q=camille")
    assert listing.status_code == 200
    assert "C-1001" in listing.get_data(as_text=True)
    assert "C-1001" not in client.get(f"/o/{world.org_slug}/admin/orders/?state=paid").get_data(
        as_text=True
    )
    csv_export = client.get(f"/o/{world.org_slug}/admin/orders/export.csv?state=awaiting_payment")
    assert csv_export.mimetype == "text/csv"
    assert "C-1001" in csv_export.get_data(as_text=True)
    page_url = f"/o/{world.org_slug}/admin/orders/{order_id}"
    assert client.get(page_url).status_code == 200
    received = client.post(
        f"{page_url}/payments",
        data={
            "pay-method": "offline",
            "pay-amount": "",
            "pay-received_on": "",
            "pay-reference": "comptoir",
        },
    )
    assert received.status_code == 302, received.get_data(as_text=True)
    assert order_state(app, order_id).state == "paid"
    too_much = client.post(
        f"{page_url}/refunds",
        data={
            "refund-kind": "lines",
            f"line-{line_id}": "3",
            "refund-reason": "x",
            "refund-method": "cash",
        },
    )
    assert too_much.status_code == 422
    refunded = client.post(
        f"{page_url}/refunds",
        data={
            "refund-kind": "lines",
            f"line-{line_id}": "1",
            "refund-reason": "Trop petit",
            "refund-method": "cash",
            "refund-restock": "y",
        },
    )
    assert refunded.status_code == 302
    assert sold(app, world, "cap") == 1
    cancelled = client.post(
        f"{page_url}/cancel", data={"cancel-reason": "Cours annulé", "cancel-method": "cash"}
    )
    assert cancelled.status_code == 302
    state = order_state(app, order_id)
    assert state.state == "cancelled"
    assert sum(state.credit_notes) == state.total
    assert sold(app, world, "cap") == 0
    pdf = client.get(f"{page_url}/invoice.pdf")
    assert pdf.status_code == 200
    assert pdf.data.startswith(b"%PDF")
    page = client.get(page_url).get_data(as_text=True)
    assert "order.cancelled" in page
    assert "refund.recorded" in page
    # Another organization's staff see nothing of it.
    other_client = app.test_client()
    sign_in_session(other_client, world.logins["other"])
    assert other_client.get(page_url).status_code == 404
    assert other_client.get(f"/o/{world.other_org_slug}/admin/orders/{order_id}").status_code == 404


# --------------------------------------------------------------------------- settings


def test_checkout_forms_admin_makes_versions(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    sign_in_session(client, world.logins["admin"])
    base = f"/o/{world.org_slug}/admin/checkout-forms"
    assert client.get(f"{base}/").status_code == 200
    refused = client.post(
        f"{base}/new",
        data={
            "name": "",
            "priority": "1",
            "fields-0-type": "single_choice",
            "fields-0-key": "level",
            "fields-0-label_fr": "Niveau",
        },
    )
    assert refused.status_code == 422
    assert count(app, CheckoutForm) == 0
    created = client.post(
        f"{base}/new",
        data={
            "name": "Inscription",
            "priority": "3",
            "fields-0-type": "single_choice",
            "fields-0-key": "level",
            "fields-0-label_fr": "Niveau",
            "fields-0-options": "Débutant | Beginner\nAvancé | Advanced",
            "fields-0-required": "1",
            "fields-0-position": "1",
            "fields-1-type": "",
        },
    )
    assert created.status_code == 302
    edit_url = created.headers["Location"]
    form_page = client.get(edit_url).get_data(as_text=True)
    assert "Débutant" in form_page
    client.post(
        edit_url,
        data={
            "name": "Inscription",
            "priority": "3",
            "fields-0-type": "single_choice",
            "fields-0-key": "level",
            "fields-0-label_fr": "Niveau",
            "fields-0-options": "debutant | Débutant | Beginner\navance | Avancé | Advanced",
            "fields-0-required": "1",
            "fields-1-type": "consent",
            "fields-1-key": "waiver",
            "fields-1-label_fr": "Décharge",
            "fields-1-help_fr": "J'accepte.",
            "fields-1-required": "1",
        },
    )
    with database(app):
        versions = (
            db.session.execute(sa.select(CheckoutFormVersion).order_by(CheckoutFormVersion.version))
            .scalars()
            .all()
        )
        assert [len(v.fields) for v in versions] == [1, 2]
    attendant = app.test_client()
    sign_in_session(attendant, world.logins["attendant"])
    assert attendant.get(f"{base}/").status_code == 403


def test_payment_and_customer_form_tabs(app: Flask, client: FlaskClient, world: OrderWorld) -> None:
    sign_in_session(client, world.logins["admin"])
    url = f"/o/{world.org_slug}/admin/shops/{world.shop_slug}/settings/payment"
    assert client.get(url).status_code == 200
    refused = client.post(
        url,
        data={
            "method-offline": "1",
            "method-etransfer": "1",
            "email": "not an address",
            "reminder_hours": "48",
            "cancel_hours": "24",
        },
    )
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'id="email-error"' in html
    assert 'id="cancel_hours-error"' in html
    saved = client.post(
        url,
        data={
            "method-etransfer": "1",
            "email": "virements@club.example",
            "auto_deposit": "1",
            "instructions_fr": "Code {{ order_code }}",
            "reminder_hours": "24",
            "cancel_hours": "72",
        },
    )
    assert saved.status_code == 302
    with database(app):
        shop = db.session.get(Shop, world.shop_id)
        assert shop is not None
        assert shop.payment_methods == ["etransfer"]
        assert shop.etransfer["email"] == "virements@club.example"
        assert shop.etransfer["cancel_hours"] == 72
    form_url = f"/o/{world.org_slug}/admin/shops/{world.shop_slug}/settings/customer-form"
    assert client.post(form_url, data={"default_checkout_form_id": "999999"}).status_code == 422


def test_communication_tab_refuses_broken_templates_with_their_line(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    sign_in_session(client, world.logins["owner"])
    url = f"/o/{world.org_slug}/admin/shops/{world.shop_slug}/settings/communication"
    assert client.get(url + "?lang=en").status_code == 200  # the rest of the visit in English
    for body, expected in (
        ("Bonjour {{ customer_first_name }},\n{% if total %}\nsans fin", "Line"),
        ("Bonjour\n{{ ''.__class__.__mro__ }}", "Line 2"),
        ("{{ unknown_thing }}", "Line 1"),
    ):
        refused = client.post(url, data={"confirmation-fr-body": body, "forced_copy": ""})
        assert refused.status_code == 422, body
        html = refused.get_data(as_text=True)
        assert expected in html, (body, html[:3000])
    with database(app):
        shop = db.session.get(Shop, world.shop_id)
        assert shop is not None
        assert not shop.communication.get("templates")
    saved = client.post(
        url,
        data={
            "confirmation-en-subject": "Order {{ order_code }} confirmed",
            "confirmation-en-body": "Hi {{ customer_first_name }}, total {{ total }}.",
            "notify_user_ids": [str(world.user_ids["owner"])],
            "forced_copy": "compta@club.example",
        },
    )
    assert saved.status_code == 302
    with database(app):
        shop = db.session.get(Shop, world.shop_id)
        assert shop is not None
        assert shop.communication["forced_copy"] == "compta@club.example"
        assert shop.communication["notify_user_ids"] == [world.user_ids["owner"]]
        assert shop.communication["templates"]["confirmation"]["en"]["subject"].startswith("Order")
    preview_url = f"/o/{world.org_slug}/admin/shops/{world.shop_slug}/communication/preview"
    preview = client.post(
        preview_url, data={"kind": "confirmation", "locale": "en", "body": "Total: {{ total }}"}
    )
    assert preview.status_code == 200
    assert "$114.98" in preview.get_json()["html"]
    broken = client.post(
        preview_url, data={"kind": "confirmation", "locale": "fr", "body": "a\n{{ x.__class__ }}"}
    )
    assert broken.status_code == 422
    assert "2" in broken.get_json()["error"]["message"]


def _unused(value: Any) -> None:
    del value


def test_an_article_names_its_checkout_form_in_the_admin(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    from comptoir.storefront import checkout_forms
    from comptoir.storefront.models import Article
    from tests.billing.order_world import SET_UP, scope

    with scope(app, world.organization_id) as organization:
        form_id = checkout_forms.create_form(
            organization=organization, actor=SET_UP, name="Camp d'été", fields=[]
        ).id
        db.session.commit()
    sign_in_session(client, world.logins["admin"])
    url = f"/o/{world.org_slug}/admin/articles/{world.articles['cap']}"
    page = client.get(url).get_data(as_text=True)
    assert "Camp d&#39;été" in page
    data = {
        "name_fr": "Bonnet",
        "price": "15.00",
        "tax_category": "standard",
        "stock": "10",
        "active": "y",
        "checkout_form_id": str(form_id),
    }
    assert client.post(url, data=data).status_code == 302
    with database(app):
        article = db.session.get(Article, world.articles["cap"])
        assert article is not None
        assert article.checkout_form_id == form_id
    assert client.post(url, data={**data, "checkout_form_id": "999999"}).status_code == 422
    assert client.post(url, data={**data, "checkout_form_id": ""}).status_code == 302
    with database(app):
        article = db.session.get(Article, world.articles["cap"])
        assert article is not None
        assert article.checkout_form_id is None
