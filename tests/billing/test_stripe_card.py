"""Card payments online, through the HTTP app and the Stripe fake over HTTP: step 3 places the
order and its PaymentIntent, the customer pays on the fake's test card form (or a test token),
the browser's return never marks the order paid, Stripe's webhook does; declines, new attempts,
3-D Secure, figures that disagree, and organizations kept apart."""

from __future__ import annotations

import html
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing.models import Order, Payment
from comptoir.billing.stripe_fake import FakeStripe
from comptoir.billing.stripe_fake.webhooks import WebhookEndpoint
from comptoir.billing.stripe_gateway import STRIPE_GATEWAY_EXTENSION, StripeClientGateway
from comptoir.billing.stripe_payments import application_fee
from comptoir.platform.db import db
from comptoir.platform.security import token_hash
from comptoir.storefront.models import Shop
from comptoir.storefront.views.cart import cookie_name
from comptoir.tenants.models import Organization
from tests.billing.order_world import (
    OWNER_ANSWERS,
    OrderWorld,
    build_order_world,
    database,
    new_cart,
    order_state,
    place,
)
from tests.billing.stripe_helpers import SECRET_KEY, WEBHOOK_SECRET
from tests.billing.stripe_world import connect, deliver_events
from tests.tenants.api_helpers import bearer

OWNER_FORM = {
    "answers-first_name": "Camille",
    "answers-last_name": "Tremblay",
    "answers-email": "camille@example.org",
}
FEE_BASIS_POINTS = 290
FEE_FIXED = 30


@dataclass
class CardWorld:
    world: OrderWorld
    account: str


def offer_card(app: Flask, world: OrderWorld, methods: tuple[str, ...] | None = None) -> None:
    with database(app):
        db.session.execute(
            sa.update(Shop)
            .where(Shop.id == world.shop_id)
            .values(payment_methods=list(methods or ("offline", "etransfer", "card")))
        )
        db.session.execute(
            sa.update(Organization)
            .where(Organization.id == world.organization_id)
            .values(application_fee_basis_points=FEE_BASIS_POINTS, application_fee_fixed=FEE_FIXED)
        )
        db.session.commit()


@pytest.fixture
def card_world(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    app_gateway: StripeClientGateway,
) -> CardWorld:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    offer_card(app, world)
    return CardWorld(world, account)


@dataclass(frozen=True)
class Paying:
    """A club that takes cards, with the Stripe fake, its webhooks delivered, and the jobs."""

    world: OrderWorld
    account: str
    gateway: StripeClientGateway
    fake: FakeStripe
    jobs: Any

    def deliver_events(self) -> None:
        deliver_events(self.fake, self.jobs)


@pytest.fixture
def paying(
    card_world: CardWorld,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
    jobs: Any,
) -> Paying:
    return Paying(card_world.world, card_world.account, stripe_gateway, stripe_fake, jobs)


# --------------------------------------------------------------------------- helpers


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def checkout_by_card_in_pages(app: Flask, client: FlaskClient, world: OrderWorld) -> Any:
    """Steps 2 and 3 in the pages with ``card``; the answer to confirming step 3."""
    cart_id, cart_token = new_cart(app, world, [("cap", 2)])
    client.set_cookie(cookie_name(world.shop_id), cart_token, domain="localhost")
    base = f"{world.shop_url}/carts/{cart_id}/checkout"
    assert client.post(f"{base}/information", data=OWNER_FORM).status_code == 302
    page = client.get(f"{base}/payment").get_data(as_text=True)
    assert 'value="card"' in page
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    assert nonce is not None
    return client.post(f"{base}/payment", data={"payment_method": "card", "nonce": nonce.group(1)})


def checkout_by_card_through_api(
    app: Flask, client: FlaskClient, world: OrderWorld, article: str = "course"
) -> Any:
    """A customer's checkout of one ``article`` by card through the API; the response."""
    cart_id, cart_token = new_cart(app, world, [(article, 1)])
    return client.post(
        f"{world.api}/carts/{cart_id}/checkout",
        json={"payment_method": "card", "answers": OWNER_ANSWERS},
        headers={"X-Cart-Token": cart_token},
    )


@dataclass(frozen=True)
class PlacedByCard:
    card_page_url: str
    token: str
    order: Order
    attempt: CardRow


def place_by_card_in_pages(app: Flask, client: FlaskClient, world: OrderWorld) -> PlacedByCard:
    """Steps 2 and 3 in the pages with ``card``: the card page, the order and its first attempt."""
    placed = checkout_by_card_in_pages(app, client, world)
    assert placed.status_code == 303
    card_page_url = path_of(placed.headers["Location"])
    token = card_page_url.split("/orders/")[1].split("/")[0]
    order = order_of_token(app, token)
    [attempt] = card_rows(app, order.id)
    return PlacedByCard(card_page_url, token, order, attempt)


def order_of_token(app: Flask, token: str) -> Order:
    with database(app):
        order = db.session.execute(
            sa.select(Order).where(Order.token_hash == token_hash(token))
        ).scalar_one()
        db.session.expunge(order)
        return order


@dataclass(frozen=True)
class CardRow:
    state: str
    intent: str
    failure: str
    review: str
    attempt: int


def card_rows(app: Flask, order_id: int) -> list[CardRow]:
    with database(app):
        rows = db.session.execute(
            sa.select(Payment).where(Payment.order_id == order_id).order_by(Payment.id)
        ).scalars()
        return [
            CardRow(
                row.state.value,
                row.provider_reference,
                row.failure_message,
                row.review_reason,
                int(row.details.get("attempt", 0)),
            )
            for row in rows
            if row.method.value == "card"
        ]


def fake_request(url: str, data: dict[str, str] | None = None) -> tuple[int, str, str]:
    """A browser's request to the fake's pages (no redirect followed): status, Location, body."""
    body = urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method="POST" if data else "GET")  # noqa: S310

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.headers.get("Location", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location", ""), error.read().decode()


def hosted_form_of(page: str) -> str:
    match = re.search(r'id="simulated-card-form" href="([^"]+)"', page)
    assert match is not None, page
    return html.unescape(match.group(1))


def pay_on_hosted_form(hosted_url: str, number: str) -> tuple[int, str, str]:
    """Type a card number on the fake's test card form and submit it."""
    query = dict(parse_qsl(urlsplit(hosted_url).query))
    return fake_request(
        hosted_url,
        {
            "client_secret": query["client_secret"],
            "return_url": query.get("return_url", ""),
            "card_number": number,
        },
    )


def intents_of(stripe_fake: FakeStripe, account: str) -> int:
    with stripe_fake.lock:
        return len(stripe_fake.objects_of(stripe_fake.store_for(account), "payment_intent"))


def status_of(client: FlaskClient, world: OrderWorld, token: str) -> dict[str, Any]:
    response = client.get(f"{world.shop_url}/orders/{token}/card/status")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    body: dict[str, Any] = response.get_json()
    return body


# --------------------------------------------------------------------------- paying


def test_a_customer_pays_by_card_in_the_pages_and_the_webhook_marks_the_order_paid(
    app: Flask, client: FlaskClient, paying: Paying
) -> None:
    world = paying.world
    placed = place_by_card_in_pages(app, client, world)
    card_page_url, token, order, attempt = (
        placed.card_page_url,
        placed.token,
        placed.order,
        placed.attempt,
    )
    assert card_page_url == f"{world.shop_url}/orders/{token}/card"
    assert order.state.value == "awaiting_payment"
    assert (attempt.state, attempt.attempt) == ("processing", 1)

    # The PaymentIntent: on the organization's account, for the server's amount, with the fee.
    intent = paying.gateway.retrieve_payment_intent(paying.account, attempt.intent)
    assert intent.amount == order.total == 2 * 1500 + 150 + 299
    assert intent.currency == "cad"
    with database(app):
        organization = db.session.get(Organization, world.organization_id)
        assert organization is not None
        fee = application_fee(organization, order.total)
    assert intent.application_fee_amount == fee == (3449 * 290 + 5000) // 10000 + 30
    assert intent.metadata["comptoir_order_id"] == str(order.id)
    assert intent.payment_method_types == ("card",)
    assert f"order-{order.id}-attempt-1" in paying.fake.store_for(paying.account).idempotency

    page = client.get(card_page_url + "?lang=en")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "private, no-store"
    text = page.get_data(as_text=True)
    assert "Simulated payments" in text
    assert "js.stripe.com" not in text
    hosted_url = hosted_form_of(text)

    # The customer pays on the fake's form while webhooks are held: the browser comes back first.
    paying.fake.webhooks.set_mode("hold")
    status, location, _body = pay_on_hosted_form(hosted_url, "4242 4242 4242 4242")
    assert status == 303
    assert "redirect_status=succeeded" in location
    back = client.get(path_of(location))
    assert back.status_code == 303
    assert path_of(back.headers["Location"]) == f"{world.shop_url}/orders/{token}"
    paying.jobs()
    assert order_state(app, order.id).state == "awaiting_payment"
    assert [row.state for row in card_rows(app, order.id)] == ["processing"]
    confirmation = client.get(f"{world.shop_url}/orders/{token}?lang=en").get_data(as_text=True)
    assert "Confirming your payment…" in confirmation
    assert 'aria-live="polite"' in confirmation
    assert f"{world.shop_url}/orders/{token}/card/status" in confirmation
    assert status_of(client, world, token)["phase"] == "confirming"

    # Stripe's webhook, then the job: paid, with its invoice.
    paying.fake.webhooks.set_mode("deliver")
    assert paying.fake.webhooks.flush() > 0
    paying.deliver_events()
    after = order_state(app, order.id)
    assert after.state == "paid"
    assert after.payments == [("card", "succeeded", order.total)]
    assert after.invoice_number is not None
    status_now = status_of(client, world, token)
    assert status_now["phase"] == "paid"
    assert status_now["order"] == {"state": "paid", "balance": 0}
    paid_page = client.get(f"{world.shop_url}/orders/{token}?lang=en").get_data(as_text=True)
    assert "is paid" in paid_page
    # Paid: the card page only leads back to the order.
    assert client.get(card_page_url).status_code == 303


def test_a_forged_return_changes_nothing(app: Flask, client: FlaskClient, paying: Paying) -> None:
    world = paying.world
    placed = place_by_card_in_pages(app, client, world)
    token, order, attempt = placed.token, placed.order, placed.attempt
    forged = client.get(
        f"{world.shop_url}/orders/{token}/card/return?"
        + urlencode(
            {
                "payment_intent": attempt.intent,
                "payment_intent_client_secret": "pi_secret_forged",
                "redirect_status": "succeeded",
            }
        )
    )
    assert forged.status_code == 303
    paying.deliver_events()
    assert order_state(app, order.id).state == "awaiting_payment"
    assert [row.state for row in card_rows(app, order.id)] == ["processing"]


def test_the_api_checkout_answers_a_next_action_and_the_webhook_pays(
    app: Flask, client: FlaskClient, paying: Paying
) -> None:
    world = paying.world
    response = checkout_by_card_through_api(app, client, world)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["state"] == "awaiting_payment"
    action = body["next_action"]
    assert action["type"] == "stripe_payment"
    assert action["stripe_account"] == paying.account
    assert action["client_secret"].startswith(action["payment_intent"])
    assert action["amount"] == body["total"]
    assert action["simulated"] is True
    assert action["hosted_url"].startswith(paying.gateway.api_base + "/_fake/checkout/")
    assert body["payments"][0]["method"] == "card"
    assert body["payments"][0]["state"] == "processing"

    paying.gateway.confirm_payment_intent(
        paying.account, action["payment_intent"], payment_method="pm_card_visa"
    )
    paying.deliver_events()
    order = client.get(
        f"{world.api}/orders/{body['id']}", headers={"X-Order-Token": body["token"]}
    ).get_json()
    assert order["state"] == "paid"
    assert order["balance"] == 0
    assert [(p["method"], p["state"]) for p in order["payments"]] == [("card", "succeeded")]


def test_a_declined_card_leaves_the_order_awaiting_payment_and_try_again_starts_attempt_2(
    app: Flask, client: FlaskClient, paying: Paying
) -> None:
    world = paying.world
    placed = place_by_card_in_pages(app, client, world)
    token, order = placed.token, placed.order
    [first] = card_rows(app, order.id)
    page = client.get(f"{world.shop_url}/orders/{token}/card").get_data(as_text=True)

    status, _location, form = pay_on_hosted_form(hosted_form_of(page), "4000000000000002")
    assert status == 402
    assert "Your card was declined." in form
    # The customer comes back to the shop: the decline is shown at once, from Stripe's word.
    back = client.get(f"{world.shop_url}/orders/{token}/card/return")
    assert back.status_code == 303
    [declined] = card_rows(app, order.id)
    assert declined.state == "failed"
    assert declined.failure == "Your card was declined."
    assert order_state(app, order.id).state == "awaiting_payment"
    confirmation = client.get(f"{world.shop_url}/orders/{token}?lang=en").get_data(as_text=True)
    assert "Your card was declined." in confirmation
    assert 'id="card-retry"' in confirmation
    assert 'role="alert"' in confirmation
    french = client.get(f"{world.shop_url}/orders/{token}?lang=fr").get_data(as_text=True)
    assert "Votre carte a été refusée." in french
    status_now = status_of(client, world, token)
    assert status_now["phase"] == "failed"
    assert status_now["can_retry"] is True
    assert status_now["payment"]["state"] == "failed"

    # The webhooks of the decline change nothing more.
    paying.deliver_events()
    assert [row.state for row in card_rows(app, order.id)] == ["failed"]

    retried = client.post(f"{world.shop_url}/orders/{token}/card/attempts")
    assert retried.status_code == 303
    assert path_of(retried.headers["Location"]) == f"{world.shop_url}/orders/{token}/card"
    rows = card_rows(app, order.id)
    assert [(row.state, row.attempt) for row in rows] == [("failed", 1), ("processing", 2)]
    assert rows[1].intent != first.intent
    assert f"order-{order.id}-attempt-2" in paying.fake.store_for(paying.account).idempotency
    # The declined intent is closed at Stripe: the old form cannot take money any more.
    old = paying.gateway.retrieve_payment_intent(paying.account, first.intent)
    assert old.status == "canceled"

    page = client.get(f"{world.shop_url}/orders/{token}/card").get_data(as_text=True)
    status, location, _body = pay_on_hosted_form(hosted_form_of(page), "4242424242424242")
    assert status == 303
    client.get(path_of(location))
    paying.deliver_events()
    after = order_state(app, order.id)
    assert after.state == "paid"
    assert after.payments == [
        ("card", "failed", order.total),
        ("card", "succeeded", order.total),
    ]


def test_3d_secure_asks_for_action_then_completes_and_the_order_is_paid(
    app: Flask, client: FlaskClient, paying: Paying
) -> None:
    world = paying.world
    placed = place_by_card_in_pages(app, client, world)
    token, order = placed.token, placed.order
    page = client.get(f"{world.shop_url}/orders/{token}/card").get_data(as_text=True)

    status, challenge, _body = pay_on_hosted_form(hosted_form_of(page), "4000002760003184")
    assert status == 303
    assert "/_fake/3ds/" in challenge
    # Still in the customer's hands: the card page offers the form again, nothing is paid.
    paying.deliver_events()
    assert order_state(app, order.id).state == "awaiting_payment"
    assert [row.state for row in card_rows(app, order.id)] == ["processing"]
    assert client.get(f"{world.shop_url}/orders/{token}/card").status_code == 200

    status, location, _body = fake_request(challenge + "?action=approve")
    assert status == 303
    assert "redirect_status=succeeded" in location
    client.get(path_of(location))
    paying.deliver_events()
    after = order_state(app, order.id)
    assert after.state == "paid"
    assert after.payments == [("card", "succeeded", order.total)]


def test_a_failed_3d_secure_is_a_decline_with_a_message_in_both_languages(
    app: Flask, client: FlaskClient, paying: Paying
) -> None:
    world = paying.world
    placed = place_by_card_in_pages(app, client, world)
    token, order, attempt = placed.token, placed.order, placed.attempt
    intent = paying.gateway.confirm_payment_intent(
        paying.account, attempt.intent, payment_method="pm_card_authenticationRequired"
    )
    assert intent.status == "requires_action"
    assert intent.next_action_url is not None
    fake_request(intent.next_action_url + "?action=deny")
    client.get(f"{world.shop_url}/orders/{token}/card/return")
    paying.deliver_events()
    assert [row.state for row in card_rows(app, order.id)] == ["failed"]
    english = client.get(f"{world.shop_url}/orders/{token}?lang=en").get_data(as_text=True)
    assert "Your bank could not authenticate the payment." in english
    assert order_state(app, order.id).state == "awaiting_payment"


# --------------------------------------------------------------------------- bad input


def test_an_amount_that_differs_at_stripe_is_flagged_and_the_order_is_not_paid(
    app: Flask, client: FlaskClient, paying: Paying
) -> None:
    world = paying.world
    placed = place_by_card_in_pages(app, client, world)
    token, order, attempt = placed.token, placed.order, placed.attempt
    with paying.fake.lock:
        found = paying.fake.locate(attempt.intent)
        assert found is not None
        found[1]["amount"] = 100  # someone changed the intent at Stripe
    paying.gateway.confirm_payment_intent(
        paying.account, attempt.intent, payment_method="pm_card_visa"
    )
    paying.deliver_events()
    [flagged] = card_rows(app, order.id)
    assert flagged.state == "processing"
    assert "amount" in flagged.review
    assert order_state(app, order.id).state == "awaiting_payment"
    assert status_of(client, world, token)["phase"] == "review"
    # Nobody starts another attempt on a payment under review.
    refused = client.post(f"{world.shop_url}/orders/{token}/card/attempts")
    assert refused.status_code == 303
    assert len(card_rows(app, order.id)) == 1


def test_an_intent_of_organization_a_never_pays_an_order_of_organization_b(
    app: Flask, client: FlaskClient, paying: Paying
) -> None:
    club_a = paying
    world_b = build_order_world(app, slug="club-b")
    account_b = connect(app, paying.gateway, paying.fake, world_b.organization_id)
    offer_card(app, world_b)
    placed_b = checkout_by_card_through_api(app, client, world_b).get_json()
    [payment_b] = card_rows(app, placed_b["id"])

    # On A's account, an intent whose metadata names B's order and payment, paid in full.
    intent_a = paying.gateway.create_payment_intent(
        club_a.account,
        amount=placed_b["total"],
        currency="cad",
        application_fee_amount=None,
        metadata={
            "comptoir_organization_id": world_b.organization_id,
            "comptoir_order_id": placed_b["id"],
            "comptoir_payment_id": placed_b["payments"][0]["id"],
        },
        idempotency_key="forged-intent",
    )
    # Even B's row naming A's intent (as if its reference were forged) does not let it through.
    with database(app):
        db.session.execute(
            sa.update(Payment)
            .where(Payment.provider_reference == payment_b.intent)
            .values(provider_reference=intent_a.id)
        )
        db.session.commit()
    paying.gateway.confirm_payment_intent(
        club_a.account, intent_a.id, payment_method="pm_card_visa"
    )
    paying.deliver_events()

    after_b = order_state(app, placed_b["id"])
    assert after_b.state == "awaiting_payment"
    assert after_b.payments == [("card", "processing", placed_b["total"])]
    with database(app):
        a_payments = db.session.execute(
            sa.select(sa.func.count())
            .select_from(Payment)
            .where(Payment.organization_id == club_a.world.organization_id)
        ).scalar_one()
    assert a_payments == 0
    # B's own intent is untouched on B's account.
    assert paying.gateway.retrieve_payment_intent(account_b, payment_b.intent).status == (
        "requires_payment_method"
    )


def test_a_second_card_payment_on_a_paid_order_is_refused(
    app: Flask, client: FlaskClient, paying: Paying
) -> None:
    world = paying.world
    placed = place_by_card_in_pages(app, client, world)
    token, order, attempt = placed.token, placed.order, placed.attempt
    paying.gateway.confirm_payment_intent(
        paying.account, attempt.intent, payment_method="pm_card_visa"
    )
    paying.deliver_events()
    assert order_state(app, order.id).state == "paid"
    intents_before = intents_of(paying.fake, paying.account)

    api = client.post(
        f"{world.api}/orders/{order.id}/payments",
        json={"method": "card"},
        headers=bearer(world.keys["attendant"]),
    )
    assert api.status_code == 409
    assert api.get_json()["error"]["code"] == "conflict"
    page = client.post(f"{world.shop_url}/orders/{token}/card/attempts")
    assert page.status_code == 303
    assert len(card_rows(app, order.id)) == 1
    assert intents_of(paying.fake, paying.account) == intents_before


def test_staff_start_a_card_attempt_through_the_api(
    app: Flask, client: FlaskClient, paying: Paying
) -> None:
    world = paying.world
    order_id, _token = place(app, world)  # an offline order, awaiting payment
    url = f"{world.api}/orders/{order_id}/payments"
    customer = client.post(url, json={"method": "card"})
    assert customer.status_code in (401, 403, 404)
    response = client.post(
        url,
        json={"method": "card"},
        headers={**bearer(world.keys["attendant"]), "Idempotency-Key": "card-1"},
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["method"] == "card"
    assert body["state"] == "processing"
    action = body["next_action"]
    assert action["type"] == "stripe_payment"
    assert action["stripe_account"] == paying.account
    replay = client.post(
        url,
        json={"method": "card"},
        headers={**bearer(world.keys["attendant"]), "Idempotency-Key": "card-1"},
    )
    assert replay.get_json()["next_action"]["payment_intent"] == action["payment_intent"]
    assert len(card_rows(app, order_id)) == 1
    paying.gateway.confirm_payment_intent(
        paying.account, action["payment_intent"], payment_method="pm_card_mastercard"
    )
    paying.deliver_events()
    assert order_state(app, order_id).state == "paid"


def test_card_is_refused_when_the_shop_does_not_offer_it_or_charges_are_not_enabled(
    app: Flask,
    client: FlaskClient,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    app_gateway: StripeClientGateway,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id, onboarded=False)

    not_offered = checkout_by_card_through_api(app, client, world, "cap")
    assert not_offered.status_code == 422
    assert "payment_method" in not_offered.get_json()["error"]["fields"]

    offer_card(app, world)
    not_enabled = checkout_by_card_through_api(app, client, world, "cap")
    assert not_enabled.status_code == 422, not_enabled.get_json()
    # The club speaks French.
    not_connected = "Stripe n'est pas encore connecté"
    assert not_connected in not_enabled.get_json()["error"]["fields"]["payment_method"][0]
    # The page says so beside the method, and nothing is placed.
    refused_page = checkout_by_card_in_pages(app, client, world)
    assert refused_page.status_code == 422
    assert not_connected in html.unescape(refused_page.get_data(as_text=True))
    with database(app):
        assert db.session.execute(sa.select(sa.func.count()).select_from(Order)).scalar_one() == 0
    assert stripe_fake.objects_of(stripe_fake.store_for(account), "payment_intent") == []
    # Staff through the API: the same refusal, on the method.
    order_id, _token = place(app, world)
    staff = client.post(
        f"{world.api}/orders/{order_id}/payments",
        json={"method": "card"},
        headers=bearer(world.keys["attendant"]),
    )
    assert staff.status_code == 422
    assert "method" in staff.get_json()["error"]["fields"]


# --------------------------------------------------------------------------- with real keys


def test_with_real_keys_the_card_page_mounts_the_payment_element_on_the_connected_account(
    app: Flask,
    client: FlaskClient,
    card_world: CardWorld,
    stripe_server: Any,
) -> None:
    world = card_world.world
    # The same adapter as with Stripe itself, minus the simulation: the page's Stripe.js mode.
    app.extensions[STRIPE_GATEWAY_EXTENSION] = StripeClientGateway(
        SECRET_KEY,
        api_base=stripe_server.base_url,
        publishable_key="pk_test_platform",
        webhook_secret=WEBHOOK_SECRET,
        max_network_retries=0,
        simulated=False,
    )
    placed = place_by_card_in_pages(app, client, world)
    card_page, token, attempt = placed.card_page_url, placed.token, placed.attempt
    page = client.get(card_page + "?lang=fr")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<script src="https://js.stripe.com/v3/"></script>' in text
    assert 'data-publishable-key="pk_test_platform"' in text
    assert f'data-stripe-account="{card_world.account}"' in text
    assert f'data-client-secret="{attempt.intent}_secret' in text
    assert f'data-return-url="http://localhost{world.shop_url}/orders/{token}/card/return"' in text
    assert 'data-locale="fr-CA"' in text
    assert "Simulated payments" not in text
    policy = page.headers["Content-Security-Policy"]
    directives = {
        name: value
        for name, _space, value in (part.strip().partition(" ") for part in policy.split(";"))
    }
    assert directives["script-src"] == "'self' https://js.stripe.com"
    assert directives["frame-src"] == "https://js.stripe.com https://hooks.stripe.com"
    assert directives["connect-src"] == "'self' https://api.stripe.com"
    assert directives["frame-ancestors"] == "'none'"
