"""Stripe in the operator console: each organization's Connect state, last webhook, failed events
and stuck payments; the events list with its filters and retry; the application fee per
organization. Operators only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing.models import Payment
from comptoir.billing.stripe_fake import FakeStripe
from comptoir.billing.stripe_fake.accounts import restore_account
from comptoir.billing.stripe_fake.webhooks import WebhookEndpoint
from comptoir.billing.stripe_gateway import StripeClientGateway
from comptoir.billing.stripe_models import StripeAccount, StripeEvent
from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db, utcnow
from comptoir.platform.outbox import OutboxMessage
from comptoir.tenants.models import Organization
from tests.billing.order_world import OrderWorld, build_order_world, database, place
from tests.billing.stripe_world import connect, deliver_events, post_event, start_card_payment
from tests.factories import UserFactory

INDEX = "/operators/billing/"
WEBHOOKS = "/operators/billing/webhooks"


@pytest.fixture
def world(app: Flask) -> OrderWorld:
    return build_order_world(app)


def sign_in(client: FlaskClient, login: str) -> None:
    with client.session_transaction() as cookie_session:
        cookie_session["_user_id"] = login
        cookie_session["_fresh"] = True
        cookie_session["locale"] = "en"


@pytest.fixture
def operator(app: Flask, client: FlaskClient) -> FlaskClient:
    with database(app):
        login = UserFactory(is_operator=True).get_id()
    sign_in(client, login)
    return client


def fee_url(world: OrderWorld) -> str:
    return f"/operators/organizations/{world.org_slug}/application-fee"


# --------------------------------------------------------------------------- who may see


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", INDEX),
        ("get", WEBHOOKS),
        ("post", WEBHOOKS + "/evt_anything/retry"),
        ("post", "/operators/organizations/club-orders/application-fee"),
    ],
)
def test_the_stripe_operator_pages_are_for_operators_only(
    client: FlaskClient, world: OrderWorld, method: str, path: str
) -> None:
    anonymous = getattr(client, method)(path)
    assert anonymous.status_code == 302
    assert "/login" in anonymous.headers["Location"]
    for who in ("owner", "admin", "attendant"):
        sign_in(client, world.logins[who])
        assert getattr(client, method)(path).status_code == 404, who


def test_the_sidebar_links_payments_and_webhooks(operator: FlaskClient) -> None:
    html = operator.get("/operators/").get_data(as_text=True)
    assert f'href="{INDEX}"' in html
    assert f'href="{WEBHOOKS}"' in html


# --------------------------------------------------------------------------- per organization


def test_each_organization_shows_its_connect_state_webhooks_failures_and_stuck_payments(
    app: Flask,
    operator: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
    stripe_webhooks: WebhookEndpoint,
    jobs: Any,
) -> None:
    account_id = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    order_id, _token = place(app, world)
    started = start_card_payment(app, stripe_gateway, world.organization_id, order_id)
    deliver_events(stripe_fake, jobs)
    # The intent's events reached us; the card was never presented: the payment waits.
    with database(app):
        payment = db.session.get(Payment, started.payment_id)
        assert payment is not None
        assert payment.state == "processing"

    page = operator.get(INDEX)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Charges enabled" in html
    assert account_id in html
    assert "payment_intent.created" in html
    assert "Not connected" in html  # the other organization
    row = organization_row(html, world.org_slug)
    assert "state=failed" not in row  # nothing failed or stuck yet
    assert '<span class="badge badge--danger">' not in row

    # Twenty minutes later the payment is still processing; an event fails to be processed.
    with database(app):
        db.session.execute(
            sa.update(Payment)
            .where(Payment.id == started.payment_id)
            .values(created_at=utcnow() - timedelta(minutes=20))
        )
        db.session.commit()
    stripe_gateway.delete_account(account_id)
    update_failure(app, operator, account_id, jobs)

    row = organization_row(operator.get(INDEX).get_data(as_text=True), world.org_slug)
    assert "account.updated" in row
    failed = f'href="{WEBHOOKS}?state=failed&amp;organization={world.org_slug}">1</a>'
    assert failed in row
    assert '<span class="badge badge--danger">1</span>' in row
    problems = operator.get(INDEX + "?problems=1").get_data(as_text=True)
    assert world.org_slug in problems
    assert world.other_org_slug not in problems


def organization_row(html: str, slug: str) -> str:
    row = html[html.index(f"({slug})") :]
    return row[: row.index("</tr>")]


def update_failure(app: Flask, client: FlaskClient, account_id: str, jobs: Any) -> str:
    """An account.updated whose processing fails (the account no longer answers at Stripe),
    received through the webhook endpoint; its error."""
    created = int(utcnow().timestamp())
    event = {
        "id": "evt_fails_1",
        "object": "event",
        "type": "account.updated",
        "account": account_id,
        "created": created,
        "livemode": False,
        "api_version": "2024-06-20",
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": {"id": account_id, "object": "account"}},
    }
    post_event(client, event)
    jobs()
    with database(app):
        stored = db.session.get(StripeEvent, "evt_fails_1")
        assert stored is not None
        assert stored.state == "failed", stored.last_error
        return stored.last_error


# --------------------------------------------------------------------------- events


def test_failed_events_are_listed_filtered_and_retried(
    app: Flask,
    operator: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
    app_gateway: StripeClientGateway,
    jobs: Any,
) -> None:
    account_id = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    with database(app):
        organization = db.session.get(Organization, world.organization_id)
        assert organization is not None
        country, email = organization.country, organization.email
    stripe_gateway.delete_account(account_id)
    error = update_failure(app, operator, account_id, jobs)
    assert "StripeNotFoundError" in error

    listed = operator.get(WEBHOOKS).get_data(as_text=True)
    assert "evt_fails_1" in listed
    assert "StripeNotFoundError" in listed
    assert "Retry event evt_fails_1" in listed
    assert "evt_fails_1" in operator.get(WEBHOOKS + "?state=failed").get_data(as_text=True)
    assert "evt_fails_1" in operator.get(WEBHOOKS + "?errors=1").get_data(as_text=True)
    assert "evt_fails_1" not in operator.get(WEBHOOKS + "?state=processed").get_data(as_text=True)
    assert "evt_fails_1" not in operator.get(WEBHOOKS + "?type=payment_intent.").get_data(
        as_text=True
    )
    by_org = operator.get(f"{WEBHOOKS}?organization={world.other_org_slug}")
    assert "evt_fails_1" not in by_org.get_data(as_text=True)

    # The cause is fixed (the account answers again, onboarding undone); retry from the list.
    restore_account(stripe_fake, account_id, country=country, email=email)
    retried = operator.post(
        f"{WEBHOOKS}/evt_fails_1/retry", data={"next": f"{WEBHOOKS}?state=failed"}
    )
    assert retried.status_code == 302
    assert retried.headers["Location"] == f"{WEBHOOKS}?state=failed"
    jobs()
    with database(app):
        event = db.session.get(StripeEvent, "evt_fails_1")
        assert event is not None
        assert (event.state, event.attempts) == ("processed", 2)
    # A processed event is not retried; nor is a redirect elsewhere followed.
    again = operator.post(
        f"{WEBHOOKS}/evt_fails_1/retry", data={"next": "https://elsewhere.example/"}
    )
    assert again.headers["Location"] == WEBHOOKS
    with database(app):
        queued = db.session.execute(
            sa.select(sa.func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.job == "billing.stripe_event")
        ).scalar_one()
    assert queued == 2  # the first processing and the one retry
    assert "has not failed" in operator.get(WEBHOOKS).get_data(as_text=True)
    assert operator.post(f"{WEBHOOKS}/evt_unknown/retry").status_code == 404


def test_state_changes_after_a_retry_are_what_stripe_says_now(
    app: Flask,
    operator: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
    app_gateway: StripeClientGateway,
    jobs: Any,
) -> None:
    account_id = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    stripe_gateway.delete_account(account_id)
    update_failure(app, operator, account_id, jobs)
    restore_account(stripe_fake, account_id, details_submitted=True)
    operator.post(f"{WEBHOOKS}/evt_fails_1/retry")
    jobs()
    with database(app):
        row = db.session.execute(sa.select(StripeAccount)).scalar_one()
        assert (row.details_submitted, row.charges_enabled) == (True, False)


# --------------------------------------------------------------------------- application fee


@pytest.mark.parametrize(
    ("basis_points", "fixed", "field"),
    [
        ("10001", "0", "application_fee_basis_points"),
        ("-1", "0", "application_fee_basis_points"),
        ("1.5", "0", "application_fee_basis_points"),
        ("", "0", "application_fee_basis_points"),
        ("150", "-5", "application_fee_fixed"),
        ("150", "abc", "application_fee_fixed"),
        ("150", "--5", "application_fee_fixed"),
        ("150", "²", "application_fee_fixed"),
        ("150", "1000001", "application_fee_fixed"),
    ],
)
def test_the_application_fee_is_validated(
    app: Flask, operator: FlaskClient, world: OrderWorld, basis_points: str, fixed: str, field: str
) -> None:
    refused = operator.post(
        fee_url(world),
        data={"application_fee_basis_points": basis_points, "application_fee_fixed": fixed},
    )
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert f'id="{field}-error"' in html
    assert f'value="{basis_points}"' in html  # what was typed is kept
    with database(app):
        organization = db.session.get(Organization, world.organization_id)
        assert organization is not None
        assert (organization.application_fee_basis_points, organization.application_fee_fixed) == (
            0,
            0,
        )
        assert (
            db.session.execute(
                sa.select(AuditLog).where(AuditLog.action.startswith("organization.application"))
            ).first()
            is None
        )


def test_operators_set_the_fee_and_card_payments_carry_it(
    app: Flask,
    operator: FlaskClient,
    world: OrderWorld,
    stripe_fake: FakeStripe,
    stripe_gateway: StripeClientGateway,
) -> None:
    page = operator.get(f"/operators/organizations/{world.org_slug}").get_data(as_text=True)
    assert 'id="application_fee_basis_points"' in page
    saved = operator.post(
        fee_url(world),
        data={
            "application_fee_basis_points": "150",
            "application_fee_fixed": "30",
            "refund_application_fee": "y",
        },
        follow_redirects=True,
    )
    assert saved.status_code == 200
    assert "The application fee of Club aquatique is saved." in saved.get_data(as_text=True)
    with database(app):
        organization = db.session.get(Organization, world.organization_id)
        assert organization is not None
        assert organization.application_fee_basis_points == 150
        assert organization.application_fee_fixed == 30
        assert organization.refund_application_fee is True
        entry = db.session.execute(
            sa.select(AuditLog).where(AuditLog.action == "organization.application_fee_changed")
        ).scalar_one()
        assert entry.before == {
            "application_fee_basis_points": 0,
            "application_fee_fixed": 0,
            "refund_application_fee": False,
        }
        assert entry.after == {
            "application_fee_basis_points": 150,
            "application_fee_fixed": 30,
            "refund_application_fee": True,
        }
    # Saving the same values again records nothing new.
    operator.post(
        fee_url(world),
        data={
            "application_fee_basis_points": "150",
            "application_fee_fixed": "30",
            "refund_application_fee": "y",
        },
    )
    with database(app):
        assert (
            db.session.execute(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "organization.application_fee_changed")
            ).scalar_one()
            == 1
        )

    connect(app, stripe_gateway, stripe_fake, world.organization_id)
    order_id, _token = place(app, world)
    started = start_card_payment(app, stripe_gateway, world.organization_id, order_id)
    with database(app):
        payment = db.session.get(Payment, started.payment_id)
        assert payment is not None
        expected = (payment.amount * 150 + 5_000) // 10_000 + 30
        assert payment.details["application_fee_amount"] == expected
    intent = stripe_fake.connected[payment.details["account"]].objects[started.intent_id]
    assert intent["application_fee_amount"] == expected
