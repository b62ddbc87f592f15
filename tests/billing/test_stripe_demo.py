"""Simulated payments on the embedded default: seed-demo connects the club to an onboarded
simulated account and offers card payments; the fake started with the server brings the
account back (it forgets everything when it stops) and sends its events to the app."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from comptoir.billing import payment_methods
from comptoir.billing.stripe_demo import (
    simulated_by_default,
    start_embedded_fake,
    webhook_url,
)
from comptoir.billing.stripe_fake.accounts import update_account_state
from comptoir.billing.stripe_gateway import STRIPE_GATEWAY_EXTENSION, current_gateway
from comptoir.billing.stripe_models import StripeAccount
from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db
from comptoir.platform.settings import Environment, Settings
from comptoir.storefront.models import Shop
from tests.billing.order_world import database


def seed(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["seed-demo", "--base-url", "http://demo.example"])
    assert result.exit_code == 0, result.output
    return result.output


def demo_account(app: Flask) -> StripeAccount:
    with database(app):
        account = db.session.execute(sa.select(StripeAccount)).scalar_one()
        db.session.expunge(account)
        return account


def test_seed_demo_connects_the_club_to_an_onboarded_simulated_account_once(
    app: Flask,
) -> None:
    first = seed(app)
    account = demo_account(app)
    assert account.account_id.startswith("acct_")
    assert (account.details_submitted, account.charges_enabled) == (True, True)
    with database(app):
        actions = list(
            db.session.execute(
                sa.select(AuditLog.action).where(AuditLog.action.startswith("stripe."))
            ).scalars()
        )
        methods = [
            list(shop.payment_methods) for shop in db.session.execute(sa.select(Shop)).scalars()
        ]
        audit_count = db.session.execute(sa.select(sa.func.count()).select_from(AuditLog)).scalar()
    assert actions == ["stripe.connected", "stripe.account_updated"]
    if payment_methods.get("card") is not None:
        assert all("card" in offered for offered in methods)

    again = seed(app)
    assert again == first
    assert demo_account(app).account_id == account.account_id
    with database(app):
        assert db.session.execute(sa.select(sa.func.count()).select_from(AuditLog)).scalar() == (
            audit_count
        )


def test_the_embedded_fake_restores_the_accounts_and_sends_its_events_to_the_app(
    app: Flask, live_server: str, jobs: Any
) -> None:
    # seed-demo connects with a fake of its own, stopped since: the server's fake, started
    # afterwards as `comptoir serve` starts it, never saw the account and restores it.
    seed(app)
    account_id = demo_account(app).account_id
    port = int(live_server.rsplit(":", 1)[1])
    running = start_embedded_fake(app, webhook_url=webhook_url("0.0.0.0", port))  # noqa: S104
    try:
        with app.app_context():
            gateway = current_gateway()
            assert gateway.simulated
            restored = gateway.retrieve_account(account_id)
        assert (restored.details_submitted, restored.charges_enabled) == (True, True)

        # Stripe's news reaches the app's own webhook endpoint, and its job applies it.
        update_account_state(running.fake, account_id, charges_enabled=False)
        assert running.fake.webhooks.wait_idle(10)
        jobs()
        assert not demo_account(app).charges_enabled
    finally:
        app.extensions.pop(STRIPE_GATEWAY_EXTENSION, None)
        running.stop()


@pytest.mark.parametrize(
    ("changes", "simulated"),
    [
        ({}, True),
        ({"env": Environment.TEST}, True),
        ({"stripe_secret_key": "sk_test_123"}, False),
        ({"stripe_secret_key": "rk_live_123"}, False),
        ({"stripe_api_base": "http://127.0.0.1:12111"}, False),
        ({"env": Environment.PRODUCTION}, False),
    ],
)
def test_comptoir_provides_simulated_payments_only_when_no_stripe_is_configured(
    changes: dict[str, Any], simulated: bool
) -> None:
    settings = Settings(**{"env": Environment.DEVELOPMENT, **changes})
    assert simulated_by_default(settings) is simulated


def test_the_fake_posts_to_an_address_it_can_reach() -> None:
    assert webhook_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/webhooks/stripe"  # noqa: S104
    assert webhook_url("", None) == "http://127.0.0.1:5000/webhooks/stripe"
    assert webhook_url("localhost", 5001) == "http://localhost:5001/webhooks/stripe"
    assert webhook_url("::1", 5000) == "http://[::1]:5000/webhooks/stripe"
