"""A counter sale paid on a simulated Stripe Terminal reader, in a real browser: step 3 sends the
total to the reader, the reader page follows it by itself (a declined card, another attempt, a
Visa card approved) and leads back to the order's confirmation."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from comptoir.billing import stripe_terminal
from comptoir.billing.stripe_gateway import StripeClientGateway
from comptoir.platform.db import db
from tests.billing.order_world import SET_UP, OrderWorld, order_state, scope
from tests.browser.test_checkout import add_to_cart, continue_from_cart, sign_in, the_order

pytestmark = pytest.mark.browser


@pytest.fixture
def world(app: Flask, stripe_world: OrderWorld, stripe_gateway: StripeClientGateway) -> OrderWorld:
    world = stripe_world
    with scope(app, world.organization_id) as organization:
        stripe_terminal.register_reader(
            organization=organization,
            actor=SET_UP,
            gateway=stripe_gateway,
            registration_code="simulated-wpe",
            label="Front desk",
        )
        db.session.commit()
    return world


def test_a_cashier_takes_a_counter_sale_on_the_reader(
    app: Flask, page: Any, world: OrderWorld
) -> None:
    sign_in(page, world, "attendant")
    add_to_cart(page, world, "course", 1, lang="en")
    continue_from_cart(page)
    page.click("#customer-switch")
    page.wait_for_load_state()
    page.click("#to-payment")
    page.wait_for_url("**/checkout/payment")
    page.check("#method-terminal")
    expect(page.locator("#reader_id")).to_be_visible()
    page.click("#place-order")
    page.wait_for_url(re.compile(r".*/admin/orders/\d+/reader\?next=.*"))
    state = page.locator("#reader-state")
    expect(state).to_contain_text("Waiting for the card on “Front desk”")
    expect(page.locator("h1")).to_contain_text("Simulated payments")

    # A declined card: the page learns it by itself (no webhook job runs in this test, so the
    # status answer asks Stripe) and offers another attempt.
    page.click("[data-simulate=declined]")
    expect(state).to_contain_text("Declined:")
    expect(page.locator("#cancel-reader-payment")).to_be_hidden()
    expect(page.locator("#reader_id")).to_be_visible()
    page.click("section[data-when=retry] button[type=submit]")
    expect(state).to_contain_text("Waiting for the card")

    page.click("[data-simulate=visa]")
    expect(state).to_contain_text("Approved")
    order = the_order(app)
    assert order_state(app, order.id).state == "paid"
    page.click("[data-when=approved] a")
    page.wait_for_url(re.compile(r".*/boutique/orders/[^/]+$"))
    assert [(m, s) for m, s, _amount in order_state(app, order.id).payments] == [
        ("terminal", "failed"),
        ("terminal", "succeeded"),
    ]
