"""``POST /webhooks/stripe`` and the event job: signatures, storing once, the organization from
the account, handlers that move payments forward from what Stripe says."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing.models import Order
from comptoir.billing.payments import record_payment
from comptoir.billing.stripe_fake import FakeStripe
from comptoir.billing.stripe_fake.webhooks import WebhookEndpoint, sign
from comptoir.billing.stripe_gateway import StripeClientGateway
from comptoir.billing.stripe_models import StripeEvent
from comptoir.platform.db import db
from comptoir.platform.errors import ConflictError
from tests.billing.order_world import OWNER, build_order_world, database, order_state, place, scope
from tests.billing.stripe_helpers import WEBHOOK_SECRET
from tests.billing.stripe_world import connect, start_card_payment


def _event(event_id: str = "evt_test_1", account: str = "acct_unknown") -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "account": account,
        "created": int(time.time()),
        "livemode": False,
        "api_version": "2024-06-20",
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": {"id": "pi_nobody", "object": "payment_intent"}},
    }


def _post(client: FlaskClient, body: bytes, signature: str) -> Any:
    return client.post(
        "/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )


def _events(app: Flask) -> list[tuple[str, str, str]]:
    with database(app):
        rows = db.session.execute(sa.select(StripeEvent).order_by(StripeEvent.id)).scalars()
        return [(row.id, row.state, row.last_error) for row in rows]


def test_a_forged_or_stale_signature_is_refused_and_nothing_is_stored(
    app: Flask, client: FlaskClient, app_gateway: StripeClientGateway
) -> None:
    body = json.dumps(_event()).encode()
    forged = _post(client, body, sign(body, "whsec_someone_else"))
    stale = _post(client, body, sign(body, WEBHOOK_SECRET, timestamp=int(time.time()) - 3600))
    missing = _post(client, body, "")

    assert [forged.status_code, stale.status_code, missing.status_code] == [400, 400, 400]
    assert forged.get_json()["error"]["code"] == "invalid_signature"
    assert _events(app) == []


def test_a_replayed_event_is_stored_once_and_an_unknown_account_is_ignored(
    app: Flask, client: FlaskClient, app_gateway: StripeClientGateway, jobs: Any
) -> None:
    body = json.dumps(_event()).encode()
    first = _post(client, body, sign(body, WEBHOOK_SECRET))
    again = _post(client, body, sign(body, WEBHOOK_SECRET))

    assert first.status_code == again.status_code == 200
    assert [first.get_json()["duplicate"], again.get_json()["duplicate"]] == [False, True]
    jobs()
    assert _events(app) == [("evt_test_1", "ignored", "no organization owns this account")]


def test_a_card_payment_becomes_succeeded_from_the_webhook_only(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
    jobs: Any,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    order_id, _token = place(app, world)
    started = start_card_payment(app, stripe_gateway, world.organization_id, order_id)

    stripe_gateway.confirm_payment_intent(account, started.intent_id, payment_method="pm_card_visa")
    assert order_state(app, order_id).state == "awaiting_payment"

    assert stripe_fake.webhooks.wait_idle(10)
    jobs()
    after = order_state(app, order_id)
    assert after.state == "paid"
    assert after.payments == [("card", "succeeded", after.total)]
    states = {state for _id, state, _error in _events(app)}
    assert "processed" in states
    assert "failed" not in states


def test_cash_cannot_be_taken_while_a_card_payment_of_the_order_is_under_way(
    app: Flask, stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    world = build_order_world(app)
    connect(app, stripe_gateway, stripe_fake, world.organization_id)
    order_id, _token = place(app, world)
    start_card_payment(app, stripe_gateway, world.organization_id, order_id)

    with scope(app, world.organization_id) as organization:
        order = db.session.get(Order, order_id)
        assert order is not None
        with pytest.raises(ConflictError):
            record_payment(organization=organization, actor=OWNER, order=order, method="cash")
        db.session.rollback()

    assert order_state(app, order_id).payments == [
        ("card", "processing", order_state(app, order_id).total)
    ]
