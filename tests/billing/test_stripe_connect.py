"""Connect through the admin's Stripe page: the connected account, Stripe's onboarding on the fake,
``account.updated`` webhooks applied only forward in time, disconnecting, who may do it, and the
Payment tab offering card only once Stripe can take payments."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing import payment_methods
from comptoir.billing.payment_methods import Audience, PaymentMethod
from comptoir.billing.stripe_fake import FakeServer, FakeStripe
from comptoir.billing.stripe_fake.accounts import complete_onboarding, update_account_state
from comptoir.billing.stripe_fake.webhooks import WebhookEndpoint
from comptoir.billing.stripe_gateway import StripeClientGateway
from comptoir.billing.stripe_models import StripeAccount, StripeEvent, TerminalReader
from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db
from comptoir.storefront.models import Shop
from tests.billing.order_world import ETRANSFER, OrderWorld, build_order_world, database, place
from tests.billing.stripe_helpers import raw_request
from tests.billing.stripe_world import connect, deliver_events, post_event, start_card_payment


@pytest.fixture
def world(app: Flask) -> OrderWorld:
    return build_order_world(app)


def sign_in(client: FlaskClient, world: OrderWorld, who: str) -> None:
    """Sign in as one of the world's people, reading English whatever their language."""
    with client.session_transaction() as cookie_session:
        cookie_session["_user_id"] = world.logins[who]
        cookie_session["_fresh"] = True
        cookie_session["locale"] = "en"


def stripe_page(world: OrderWorld, path: str = "") -> str:
    return f"/o/{world.org_slug}/admin/stripe/{path}"


def account_row(app: Flask, organization_id: int) -> StripeAccount | None:
    with database(app):
        row = db.session.execute(
            sa.select(StripeAccount).where(StripeAccount.organization_id == organization_id)
        ).scalar_one_or_none()
        if row is not None:
            db.session.expunge(row)
        return row


def connect_as_owner(app: Flask, client: FlaskClient, world: OrderWorld) -> StripeAccount:
    """The owner presses Connect: the organization's account row, before any onboarding."""
    sign_in(client, world, "owner")
    client.post(stripe_page(world, "connect"))
    row = account_row(app, world.organization_id)
    assert row is not None
    return row


def audit_actions(app: Flask, organization_id: int) -> list[str]:
    with database(app):
        return list(
            db.session.execute(
                sa.select(AuditLog.action)
                .where(AuditLog.organization_id == organization_id)
                .where(AuditLog.action.startswith("stripe."))
                .order_by(AuditLog.id)
            ).scalars()
        )


def events(app: Flask) -> dict[str, str]:
    with database(app):
        return dict(db.session.execute(sa.select(StripeEvent.id, StripeEvent.state)).all())


def account_updates(fake: FakeStripe, account_id: str) -> list[dict[str, Any]]:
    return [
        event
        for event in fake.all_events()
        if event["type"] == "account.updated" and event["account"] == account_id
    ]


# --------------------------------------------------------------------------- onboarding


def test_connect_onboard_on_stripe_and_the_webhook_enables_charges(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_server: FakeServer,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
    jobs: Any,
) -> None:
    sign_in(client, world, "owner")
    page = client.get(stripe_page(world))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Not connected" in html
    assert "Simulated payments" in html

    connected = client.post(stripe_page(world, "connect"))
    assert connected.status_code == 302
    row = account_row(app, world.organization_id)
    assert row is not None
    assert (row.details_submitted, row.charges_enabled) == (False, False)
    assert row.requirements_due
    account = stripe_fake.platform.objects[row.account_id]
    assert account["type"] == "standard"
    assert account["country"] == "CA"
    assert account["email"] == "info@club.example"
    assert account["metadata"] == {
        "comptoir_organization_id": str(world.organization_id),
        "comptoir_organization_slug": world.org_slug,
    }
    html = client.get(stripe_page(world)).get_data(as_text=True)
    assert "Onboarding incomplete" in html
    assert "a bank account for payouts" in html
    # Connecting twice is refused: one account per organization.
    client.post(stripe_page(world, "connect"))
    assert len(stripe_fake.platform.objects) == 1

    # Off to Stripe's onboarding, with our return and refresh addresses.
    leaving = client.get(stripe_page(world, "onboarding"))
    assert leaving.status_code == 302
    onboarding_url = leaving.headers["Location"]
    assert onboarding_url.startswith(stripe_server.base_url + "/_fake/connect/onboarding/")
    # The owner completes the fake's onboarding form; Stripe sends them back to our return URL.
    completed = raw_request(
        stripe_server.base_url,
        "POST",
        urlsplit(onboarding_url).path,
        [("action", "complete")],
        key=None,
    )
    assert completed.status in {302, 303}
    return_url = completed.headers["Location"]
    assert urlsplit(return_url).path == stripe_page(world, "return")

    # account.updated reached POST /webhooks/stripe over HTTP; the job applies it.
    deliver_events(stripe_fake, jobs)
    row = account_row(app, world.organization_id)
    assert row is not None
    assert (row.details_submitted, row.charges_enabled, row.payouts_enabled) == (True, True, True)
    assert row.requirements_due == []
    assert row.synced_at is not None
    (update,) = account_updates(stripe_fake, row.account_id)
    assert events(app)[update["id"]] == "processed"

    back = client.get(urlsplit(return_url).path, follow_redirects=True)
    assert "Ready: card payments are enabled" in back.get_data(as_text=True)
    assert audit_actions(app, world.organization_id) == [
        "stripe.connected",
        "stripe.account_updated",
    ]


def test_the_return_from_onboarding_reads_the_account_without_waiting_for_the_webhook(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    app_gateway: StripeClientGateway,
) -> None:
    row = connect_as_owner(app, client, world)
    # No webhook endpoint: only the return URL (and the Refresh button) can tell us.
    complete_onboarding(stripe_fake, row.account_id)
    back = client.get(stripe_page(world, "return"), follow_redirects=True)
    assert "Stripe is connected: card payments can be offered." in back.get_data(as_text=True)
    assert account_row(app, world.organization_id).charges_enabled  # type: ignore[union-attr]

    update_account_state(stripe_fake, row.account_id, charges_enabled=False)
    refreshed = client.post(stripe_page(world, "refresh"), follow_redirects=True)
    assert "Card payments are not enabled yet" in refreshed.get_data(as_text=True)
    assert not account_row(app, world.organization_id).charges_enabled  # type: ignore[union-attr]


def test_an_expired_onboarding_link_comes_back_for_a_new_one(
    client: FlaskClient,
    world: OrderWorld,
    stripe_server: FakeServer,
    stripe_fake: FakeStripe,
    app_gateway: StripeClientGateway,
) -> None:
    sign_in(client, world, "owner")
    client.post(stripe_page(world, "connect"))
    first = client.get(stripe_page(world, "onboarding")).headers["Location"]
    left = raw_request(
        stripe_server.base_url, "POST", urlsplit(first).path, [("action", "leave")], key=None
    )
    assert urlsplit(left.headers["Location"]).path == stripe_page(world, "return")
    used = raw_request(stripe_server.base_url, "GET", urlsplit(first).path, key=None)
    assert used.status in {302, 303}
    assert urlsplit(used.headers["Location"]).path == stripe_page(world, "onboarding")
    again = client.get(urlsplit(used.headers["Location"]).path)
    assert again.headers["Location"] != first


# --------------------------------------------------------------------------- events


def test_an_older_account_updated_after_a_newer_one_changes_nothing(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
    stripe_webhooks: WebhookEndpoint,
    jobs: Any,
) -> None:
    row = connect_as_owner(app, client, world)
    complete_onboarding(stripe_fake, row.account_id)
    deliver_events(stripe_fake, jobs)
    newest = account_row(app, world.organization_id)
    assert newest is not None
    assert newest.charges_enabled
    (onboarded,) = account_updates(stripe_fake, row.account_id)

    # Stripe disables charges; its event is held back, so ours still says "enabled"...
    stripe_fake.webhooks.set_mode("hold")
    update_account_state(stripe_fake, row.account_id, charges_enabled=False)
    # ...when an account.updated older than the one applied arrives: it must not re-read the
    # account and apply what Stripe says now under the colours of old news.
    older = {**onboarded, "id": "evt_older_news", "created": onboarded["created"] - 60}
    post_event(client, older)
    jobs()
    after = account_row(app, world.organization_id)
    assert after is not None
    assert after.charges_enabled
    assert after.synced_at == newest.synced_at
    assert events(app)["evt_older_news"] == "processed"

    # The held event (not older than what we hold), delivered three times, shuffled, is applied.
    stripe_fake.webhooks.flush(shuffle=True, copies=3, seed=7)
    deliver_events(stripe_fake, jobs)
    latest = account_row(app, world.organization_id)
    assert latest is not None
    assert not latest.charges_enabled
    assert latest.details_submitted
    assert audit_actions(app, world.organization_id).count("stripe.account_updated") == 2


def test_a_deauthorized_account_is_disconnected_once_stripe_confirms_it(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
    app_gateway: StripeClientGateway,
    jobs: Any,
) -> None:
    account_id = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    event = {
        "id": "evt_deauthorized_1",
        "object": "event",
        "type": "account.application.deauthorized",
        "account": account_id,
        "created": stripe_fake.now(),
        "livemode": False,
        "api_version": "2024-06-20",
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": {"id": "ca_platform", "object": "application", "name": "Comptoir"}},
    }
    # While the account still answers us, the event is not believed.
    post_event(client, event)
    jobs()
    assert account_row(app, world.organization_id) is not None

    stripe_gateway.delete_account(account_id)
    post_event(client, {**event, "id": "evt_deauthorized_2"})
    jobs()
    assert account_row(app, world.organization_id) is None
    assert events(app) == {"evt_deauthorized_1": "processed", "evt_deauthorized_2": "processed"}
    with database(app):
        entry = db.session.execute(
            sa.select(AuditLog).where(AuditLog.action == "stripe.disconnected")
        ).scalar_one()
        assert entry.after == {"reason": "deauthorized", "readers_removed": 0}
        assert entry.actor_label == "Stripe"


# --------------------------------------------------------------------------- disconnect


def test_disconnect_asks_for_confirmation_and_forgets_the_account_and_its_readers(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
    app_gateway: StripeClientGateway,
) -> None:
    account_id = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    with database(app):
        db.session.add(
            TerminalReader(
                organization_id=world.organization_id,
                reader_id="tmr_front_desk",
                label="Front desk",
            )
        )
        db.session.commit()
    sign_in(client, world, "owner")
    confirmation = client.get(stripe_page(world, "disconnect"))
    assert confirmation.status_code == 200
    html = confirmation.get_data(as_text=True)
    assert "Disconnect Stripe?" in html
    assert account_id in html

    done = client.post(stripe_page(world, "disconnect"), follow_redirects=True)
    assert "Stripe is disconnected." in done.get_data(as_text=True)
    assert account_row(app, world.organization_id) is None
    with database(app):
        assert db.session.execute(sa.select(TerminalReader)).first() is None
        entry = db.session.execute(
            sa.select(AuditLog).where(AuditLog.action == "stripe.disconnected")
        ).scalar_one()
        assert entry.before["account_id"] == account_id  # type: ignore[index]
        assert entry.after == {"reason": "disconnected", "readers_removed": 1}
        assert entry.actor_label == world.emails["owner"]
    # The account stays the organization's at Stripe; connecting again makes a new one.
    assert account_id in stripe_fake.platform.objects
    client.post(stripe_page(world, "connect"))
    again = account_row(app, world.organization_id)
    assert again is not None
    assert again.account_id != account_id


def test_disconnect_is_refused_while_a_card_payment_waits_for_stripe(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
    app_gateway: StripeClientGateway,
) -> None:
    connect(app, stripe_gateway, stripe_fake, world.organization_id)
    order_id, _token = place(app, world)
    start_card_payment(app, stripe_gateway, world.organization_id, order_id)
    sign_in(client, world, "owner")
    warning = client.get(stripe_page(world, "disconnect")).get_data(as_text=True)
    assert "1 card payment or refund is still waiting for Stripe" in warning

    refused = client.post(stripe_page(world, "disconnect"), follow_redirects=True)
    assert "still waiting for Stripe" in refused.get_data(as_text=True)
    assert account_row(app, world.organization_id) is not None
    assert "stripe.disconnected" not in audit_actions(app, world.organization_id)


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("post", "connect"),
        ("get", "onboarding"),
        ("get", "return"),
        ("post", "refresh"),
        ("get", "disconnect"),
        ("post", "disconnect"),
    ],
)
def test_only_the_owner_manages_stripe(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    app_gateway: StripeClientGateway,
    method: str,
    path: str,
) -> None:
    # Administrators do everything but Stripe (where the money goes): the permission table's rule.
    for who in ("attendant", "admin"):
        sign_in(client, world, who)
        assert getattr(client, method)(stripe_page(world, path)).status_code == 403, who
    sign_in(client, world, "other")
    assert getattr(client, method)(stripe_page(world, path)).status_code == 404
    with client.session_transaction() as cookie_session:
        cookie_session.clear()
    anonymous = getattr(client, method)(stripe_page(world, path))
    assert anonymous.status_code == 302
    assert "/login" in anonymous.headers["Location"]
    assert account_row(app, world.organization_id) is None
    assert stripe_fake.platform.objects == {}


def test_the_sidebar_shows_stripe_to_the_owner_only(client: FlaskClient, world: OrderWorld) -> None:
    link = f'href="{stripe_page(world)}"'
    sign_in(client, world, "owner")
    assert link in client.get(f"/o/{world.org_slug}/admin/").get_data(as_text=True)
    sign_in(client, world, "attendant")
    assert link not in client.get(f"/o/{world.org_slug}/admin/").get_data(as_text=True)


# --------------------------------------------------------------------------- the Payment tab


@pytest.fixture
def card_offerable() -> Iterator[None]:
    """Card in the registry, as the card payment module registers it (a stand-in until then)."""
    if payment_methods.get("card") is not None:
        yield
        return
    stand_in = PaymentMethod(
        name="card",
        label="Card",
        audiences=frozenset({Audience.CUSTOMER, Audience.STAFF}),
        immediate=False,
        recordable=False,
    )
    payment_methods.register(stand_in)
    try:
        yield
    finally:
        payment_methods.unregister("card")


@pytest.fixture
def card_unknown() -> Iterator[None]:
    """No card in the registry, as before the card payment module registers it."""
    registered = payment_methods.get("card")
    payment_methods.unregister("card")
    try:
        yield
    finally:
        if registered is not None:
            payment_methods.register(registered)


def payment_tab(world: OrderWorld) -> str:
    return f"/o/{world.org_slug}/admin/shops/{world.shop_slug}/settings/payment"


def payment_form(*methods: str) -> dict[str, str]:
    values = {key: str(value) for key, value in ETRANSFER.items() if key != "auto_deposit"}
    return {**values, **{f"method-{name}": "1" for name in methods}}


def shop_methods(app: Flask, world: OrderWorld) -> list[str]:
    with database(app):
        shop = db.session.get(Shop, world.shop_id)
        assert shop is not None
        return list(shop.payment_methods)


@pytest.mark.usefixtures("card_offerable")
def test_card_is_refused_in_the_payment_tab_until_stripe_can_take_payments(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
    app_gateway: StripeClientGateway,
) -> None:
    sign_in(client, world, "owner")
    tab = client.get(payment_tab(world)).get_data(as_text=True)
    assert 'id="method-card"' in tab
    assert 'aria-describedby="card-stripe-note"' in tab
    assert "once the organization's Stripe account is connected" in tab
    assert f'href="{stripe_page(world)}"' in tab

    refused = client.post(payment_tab(world), data=payment_form("offline", "etransfer", "card"))
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'id="payment_methods-error"' in html
    assert "connect Stripe and finish its onboarding first" in html
    assert 'id="method-card" name="method-card" value="1" checked' in html  # nothing lost
    assert shop_methods(app, world) == ["offline", "etransfer"]

    # An administrator manages shops but not Stripe: the note says who connects it.
    sign_in(client, world, "admin")
    tab = client.get(payment_tab(world)).get_data(as_text=True)
    assert "The organization's owner connects Stripe on the Stripe page." in tab

    # Connected but onboarding unfinished: still refused.
    connect(app, stripe_gateway, stripe_fake, world.organization_id, onboarded=False)
    again = client.post(payment_tab(world), data=payment_form("offline", "card"))
    assert again.status_code == 422

    with database(app):
        db.session.execute(sa.update(StripeAccount).values(charges_enabled=True))
        db.session.commit()
    tab = client.get(payment_tab(world)).get_data(as_text=True)
    assert "card-stripe-note" not in tab
    saved = client.post(payment_tab(world), data=payment_form("offline", "card"))
    assert saved.status_code == 302
    assert shop_methods(app, world) == ["offline", "card"]

    # Charges disabled later: the shop keeps card (and its other settings stay editable)...
    with database(app):
        db.session.execute(sa.update(StripeAccount).values(charges_enabled=False))
        db.session.commit()
    kept = client.post(payment_tab(world), data=payment_form("offline", "etransfer", "card"))
    assert kept.status_code == 302
    assert shop_methods(app, world) == ["offline", "etransfer", "card"]
    tab = client.get(payment_tab(world)).get_data(as_text=True)
    assert "Card payments are offered but refused for now" in tab


@pytest.mark.usefixtures("card_offerable")
def test_the_shop_api_refuses_card_until_stripe_can_take_payments(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
    app_gateway: StripeClientGateway,
) -> None:
    url = f"{world.api}/shops/{world.shop_slug}?lang=en"
    headers = {"Authorization": f"Bearer {world.keys['owner']}"}
    refused = client.patch(url, json={"payment_methods": ["offline", "card"]}, headers=headers)
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert "connect Stripe" in " ".join(error["fields"]["payment_methods"])
    assert shop_methods(app, world) == ["offline", "etransfer"]

    connect(app, stripe_gateway, stripe_fake, world.organization_id)
    saved = client.patch(url, json={"payment_methods": ["offline", "card"]}, headers=headers)
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["payment_methods"] == ["offline", "card"]


@pytest.mark.usefixtures("card_unknown")
def test_card_is_not_offered_while_no_card_method_is_registered(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
) -> None:
    connect(app, stripe_gateway, stripe_fake, world.organization_id)
    sign_in(client, world, "owner")
    tab = client.get(payment_tab(world)).get_data(as_text=True)
    assert 'id="method-card"' not in tab
    assert "card-stripe-note" not in tab
    url = f"{world.api}/shops/{world.shop_slug}?lang=en"
    headers = {"Authorization": f"Bearer {world.keys['owner']}"}
    refused = client.patch(url, json={"payment_methods": ["card"]}, headers=headers)
    assert refused.status_code == 422
    assert shop_methods(app, world) == ["offline", "etransfer"]


def test_synced_at_keeps_the_newest_event_time(
    app: Flask,
    client: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
    app_gateway: StripeClientGateway,
    jobs: Any,
) -> None:
    account_id = connect(app, stripe_gateway, stripe_fake, world.organization_id, onboarded=False)
    base = {
        "object": "event",
        "type": "account.updated",
        "account": account_id,
        "livemode": False,
        "api_version": "2024-06-20",
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": {"id": account_id, "object": "account"}},
    }
    now = stripe_fake.now()
    post_event(client, {**base, "id": "evt_now", "created": now})
    jobs()
    first = account_row(app, world.organization_id)
    assert first is not None
    assert first.synced_at is not None
    complete_onboarding(stripe_fake, account_id)
    post_event(client, {**base, "id": "evt_before", "created": now - 1})
    jobs()
    unchanged = account_row(app, world.organization_id)
    assert unchanged is not None
    assert not unchanged.charges_enabled
    post_event(client, {**base, "id": "evt_same_second", "created": now})
    jobs()
    applied = account_row(app, world.organization_id)
    assert applied is not None
    assert applied.charges_enabled
    assert applied.synced_at == first.synced_at
    assert first.synced_at.timestamp() == now
    assert timedelta(0) <= applied.synced_at - first.synced_at
