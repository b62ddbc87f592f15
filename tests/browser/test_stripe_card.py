"""Paying by card in a real browser with simulated payments: step 3, the card page, the fake's
test card form (a decline, then "Try again"), and the confirmation page that follows the payment
until Stripe's webhook has been processed."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from comptoir.billing.models import Order
from comptoir.billing.stripe_fake import FakeStripe
from comptoir.billing.stripe_fake.webhooks import WebhookEndpoint
from comptoir.platform.db import db
from comptoir.storefront.models import Shop
from tests.billing.order_world import OrderWorld, database, order_state
from tests.browser.test_checkout import add_to_cart, continue_from_cart, fill_owner

pytestmark = pytest.mark.browser


@pytest.fixture
def world(app: Flask, stripe_world: OrderWorld) -> OrderWorld:
    world = stripe_world
    with database(app):
        db.session.execute(
            sa.update(Shop)
            .where(Shop.id == world.shop_id)
            .values(payment_methods=["offline", "etransfer", "card"])
        )
        db.session.commit()
    return world


def test_a_customer_is_declined_tries_again_and_the_page_shows_the_order_paid(
    app: Flask,
    page: Any,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
    jobs: Any,
) -> None:
    add_to_cart(page, world, "cap", 1, lang="en")
    continue_from_cart(page)
    fill_owner(page)
    page.click("#to-payment")
    page.wait_for_url("**/checkout/payment")
    page.check("#method-card")
    page.click("#place-order")
    page.wait_for_url(re.compile(r".*/orders/[^/]+/card$"))
    expect(page.locator("#simulated-payments")).to_contain_text("Simulated payments")
    card_page = page.url

    # With the keyboard, to the fake's test card form; a declined card first.
    page.locator("#simulated-card-form").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/_fake/checkout/.*"))
    page.fill("#card_number", "4000 0000 0000 0002")
    page.click("button[type=submit]")
    expect(page.locator("[role=alert]")).to_contain_text("declined")

    # Back in the shop: the decline is shown with a way to try again.
    page.goto(card_page)
    expect(page.locator("#card-failed-title")).to_be_visible()
    expect(page.locator("#card-failed-title")).to_be_focused()
    page.click("#card-retry")
    page.wait_for_url(re.compile(r".*/orders/[^/]+/card$"))
    page.click("#simulated-card-form")
    page.wait_for_url(re.compile(r".*/_fake/checkout/.*"))
    page.fill("#card_number", "4242 4242 4242 4242")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/orders/[^/]+$"))
    expect(page.locator("[data-card-message]")).to_have_text("Confirming your payment…")
    with database(app):
        order = db.session.execute(sa.select(Order)).scalar_one()
        order_id = order.id
    assert order_state(app, order_id).state == "awaiting_payment"

    # Stripe's webhook reaches the app and its job runs: the page notices by itself.
    assert stripe_fake.webhooks.wait_idle(10)
    jobs()
    expect(page.locator("h1")).to_contain_text("is paid")
    after = order_state(app, order_id)
    assert after.state == "paid"
    assert [(method, state) for method, state, _amount in after.payments] == [
        ("card", "failed"),
        ("card", "succeeded"),
    ]
