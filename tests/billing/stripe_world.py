"""An order world whose organization has connected Stripe: accounts on the fake, our rows for
them, and card payments started through the real services."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing.models import Method, Order
from comptoir.billing.stripe_fake import FakeStripe
from comptoir.billing.stripe_fake.webhooks import sign
from comptoir.billing.stripe_gateway import StripeClientGateway
from comptoir.billing.stripe_models import StripeAccount
from comptoir.billing.stripe_payments import start_intent
from comptoir.platform.db import db
from tests.billing.order_world import OWNER, scope
from tests.billing.stripe_helpers import WEBHOOK_SECRET, connected_account


def deliver_events(fake: FakeStripe, jobs: Any) -> None:
    """Wait until the fake has delivered the webhooks it owes, then run the jobs they queued."""
    assert fake.webhooks.wait_idle(10)
    jobs()


def post_event(client: FlaskClient, event: dict[str, Any]) -> None:
    """Send ``event`` to the webhook endpoint, signed as Stripe signs; it must be taken."""
    body = json.dumps(event).encode()
    answer = client.post(
        "/webhooks/stripe",
        data=body,
        headers={
            "Stripe-Signature": sign(body, WEBHOOK_SECRET),
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)


def connect(
    app: Flask,
    gateway: StripeClientGateway,
    fake: FakeStripe,
    organization_id: int,
    *,
    onboarded: bool = True,
) -> str:
    """Give the organization a connected account on the fake (onboarded: can take payments)."""
    account = connected_account(gateway, fake, onboarded=onboarded)
    with scope(app, organization_id):
        db.session.add(
            StripeAccount(
                organization_id=organization_id,
                account_id=account.id,
                details_submitted=account.details_submitted,
                charges_enabled=account.charges_enabled,
                payouts_enabled=account.payouts_enabled,
            )
        )
        db.session.commit()
    return account.id


@dataclass(frozen=True)
class StartedCard:
    payment_id: int
    intent_id: str
    client_secret: str | None


def start_card_payment(
    app: Flask,
    gateway: StripeClientGateway,
    organization_id: int,
    order_id: int,
    *,
    amount: int | None = None,
    method: Method = Method.CARD,
) -> StartedCard:
    """A processing card payment for the order's total (or ``amount``) and its intent."""
    with scope(app, organization_id) as organization:
        order = db.session.get(Order, order_id)
        assert order is not None
        started = start_intent(
            organization=organization,
            order=order,
            actor=OWNER,
            gateway=gateway,
            method=method,
            amount=order.total if amount is None else amount,
            payment_method_types=("card",)
            if method is Method.CARD
            else ("card_present", "interac_present"),
            capture_method="automatic",
        )
        db.session.commit()
        return StartedCard(started.payment.id, started.intent.id, started.intent.client_secret)
