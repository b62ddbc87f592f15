"""The four checkout steps in a real browser (Chromium through Playwright).

Customers: offline (French, with a double click on the last button) and e-Transfer (English,
signing the consent on the pad). Staff: a counter sale in cash with change, a sale on behalf of a
customer paid later then marked received, and a split tender.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from comptoir.billing.models import Order, Payment
from comptoir.platform.db import db
from comptoir.storefront import checkout_forms
from comptoir.storefront.models import Article
from tests.billing.order_world import (
    SET_UP,
    OrderWorld,
    build_order_world,
    count,
    database,
    order_state,
    scope,
    sold,
)
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def world(app: Flask) -> OrderWorld:
    return build_order_world(app)


def add_to_cart(page: Any, world: OrderWorld, key: str, quantity: int = 1, lang: str = "") -> None:
    suffix = f"?lang={lang}" if lang else ""
    page.goto(f"{world.shop_url}/articles/{world.articles[key]}{suffix}")
    page.fill("#add-quantity", str(quantity))
    page.click("form.add-to-cart button[type=submit]")
    page.wait_for_url("**/cart**")


def continue_from_cart(page: Any) -> None:
    page.click("a.button[href*='/checkout/information']")
    page.wait_for_url("**/checkout/information")


def fill_owner(
    page: Any, first: str = "Camille", last: str = "Tremblay", email: str = "camille@example.org"
) -> None:
    page.fill("#answers-first_name", first)
    page.fill("#answers-last_name", last)
    page.fill("#answers-email", email)


def sign_in(page: Any, world: OrderWorld, who: str) -> None:
    page.goto("/login")
    page.fill("#email", world.emails[who])
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_load_state()


def the_order(app: Flask) -> Order:
    with database(app):
        order = db.session.execute(sa.select(Order)).scalar_one()
        db.session.expunge(order)
        return order


# --------------------------------------------------------------------------- customers


def test_a_customer_pays_offline_in_french(app: Flask, page: Any, world: OrderWorld) -> None:
    add_to_cart(page, world, "cap", 2, lang="fr")
    continue_from_cart(page)
    assert (
        page.locator("h1").inner_text() == "Your information"
        or page.locator("#answers-email").is_visible()
    )
    # A mistake first: the page says what to fix, nothing is kept.
    fill_owner(page, email="pas-une-adresse")
    page.click("#to-payment")
    assert page.locator("#answers-email-error").is_visible()
    fill_owner(page)
    page.click("#to-payment")
    page.wait_for_url("**/checkout/payment")
    assert page.locator("#method-cash").count() == 0
    page.check("#method-offline")
    page.dblclick("#place-order")
    # The second click aborts the first navigation; the page ends on the order either way.
    expect(page).to_have_url(re.compile(r".*/orders/[^/]+$"))
    page.wait_for_load_state()
    assert "C-1001" in page.locator("#order-code").inner_text()
    assert page.locator("#instructions-title").is_visible()
    assert count(app, Order) == 1
    assert sold(app, world, "cap") == 2
    invoice = page.request.get(page.locator("#invoice-link").get_attribute("href"))
    assert invoice.ok
    assert invoice.body().startswith(b"%PDF")


def test_a_customer_pays_by_e_transfer_in_english_and_signs(
    app: Flask, page: Any, world: OrderWorld
) -> None:
    with scope(app, world.organization_id) as organization:
        form = checkout_forms.create_form(
            organization=organization,
            actor=SET_UP,
            name="Registration",
            priority=1,
            fields=[
                {
                    "key": "waiver",
                    "type": "consent",
                    "label": {"fr": "Décharge", "en": "Waiver"},
                    "help": {"fr": "J'accepte les risques.", "en": "I accept the risks."},
                    "required": True,
                }
            ],
        )
        db.session.flush()
        db.session.execute(
            sa.update(Article)
            .where(Article.id == world.articles["course"])
            .values(checkout_form_id=form.id)
        )
        db.session.commit()
    add_to_cart(page, world, "course", 1, lang="en")
    continue_from_cart(page)
    assert "Registration" in page.locator(".checkout-form-reason").inner_text()
    fill_owner(page, first="Alex", last="Smith", email="alex@example.org")
    page.click("#to-payment")
    assert page.locator("#answers-waiver-error").is_visible()
    page.check("#answers-waiver-accepted")
    canvas = page.locator("[data-signature-canvas]")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 30)
    page.mouse.down()
    page.mouse.move(box["x"] + 120, box["y"] + 90, steps=8)
    page.mouse.move(box["x"] + 220, box["y"] + 40, steps=8)
    page.mouse.up()
    page.click("#to-payment")
    page.wait_for_url("**/checkout/payment")
    page.check("#method-etransfer")
    page.click("#place-order")
    page.wait_for_url("**/orders/**")
    assert page.locator("#etransfer-email").inner_text() == "paiements@club.example"
    assert "$114.98" in page.locator("#etransfer-amount").inner_text()
    order = the_order(app)
    assert order.locale == "en"
    assert order.consents[0]["signature_png"].startswith("data:image/png;base64,")
    assert order.checkout_method.value == "etransfer"


# --------------------------------------------------------------------------- staff


def test_staff_counter_sale_in_cash_with_change(app: Flask, page: Any, world: OrderWorld) -> None:
    sign_in(page, world, "attendant")
    add_to_cart(page, world, "course", 1)
    continue_from_cart(page)
    page.click("#customer-switch")
    page.wait_for_load_state()
    assert page.locator("#customer-switch").get_attribute("aria-pressed") == "false"
    page.click("#to-payment")
    page.wait_for_url("**/checkout/payment")
    page.check("#method-cash")
    page.fill("#cash_tendered", "120")
    assert "5,02" in page.locator("#change-due").inner_text()
    page.click("#place-order")
    page.wait_for_url("**/orders/**")
    assert "5,02" in page.locator(".flash").inner_text()
    order = the_order(app)
    assert order.counter_sale
    assert order_state(app, order.id).state == "paid"
    with database(app):
        assert db.session.execute(sa.select(Payment.change_due)).scalar_one() == 502


def test_staff_sell_on_behalf_pay_later_then_mark_received(
    app: Flask, page: Any, world: OrderWorld
) -> None:
    sign_in(page, world, "owner")
    add_to_cart(page, world, "cap", 1)
    continue_from_cart(page)
    page.fill("#customer-q", "Tremblay")
    page.click("form[role=search] button")
    page.click(".checkout-staff__customers a")
    page.wait_for_load_state()
    assert page.input_value("#answers-email") == "camille@example.org"
    page.fill("#answers-first_name", "Camille-Anne")
    page.click("#to-payment")
    page.wait_for_url("**/checkout/payment")
    page.check("#method-later")
    page.click("#place-order")
    page.wait_for_url("**/orders/**")
    order = the_order(app)
    assert order.customer_id == world.customers["camille"]
    assert order.customer_first_name == "Camille-Anne"
    page.click("#open-admin-order")
    page.wait_for_url("**/admin/orders/**")
    page.click("#take-payment summary")
    page.select_option("#pay-method", "etransfer")
    page.fill("#pay-received_on", "2026-01-15")
    page.fill("#pay-reference", "CA-REF-77")
    page.click("#take-payment button[type=submit]")
    page.wait_for_load_state()
    state = order_state(app, order.id)
    assert state.state == "paid"
    assert state.payments == [("etransfer", "succeeded", order.total)]


def test_staff_split_tender(app: Flask, page: Any, world: OrderWorld) -> None:
    sign_in(page, world, "attendant")
    add_to_cart(page, world, "course", 1)
    continue_from_cart(page)
    page.click("#customer-switch")
    page.wait_for_load_state()
    page.click("#to-payment")
    page.wait_for_url("**/checkout/payment")
    page.check("#method-cash")
    page.fill("#cash_tendered", "50")
    page.click("#place-order")
    page.wait_for_url("**/orders/**")
    assert "64,98" in page.locator("#order-balance").inner_text()
    page.select_option("#pay-method", "other")
    page.fill("#pay-reference", "Chèque 104")
    page.click("#take-payment")
    page.wait_for_load_state()
    order = the_order(app)
    state = order_state(app, order.id)
    assert state.state == "paid"
    assert state.payments == [("cash", "succeeded", 5000), ("other", "succeeded", 6498)]
    assert "0,00" in page.locator("#order-balance").inner_text()
