"""Simulated payments on the embedded default (``make demo``): no Stripe account, no keys, no
other process to start.

- ``comptoir serve`` starts the Stripe fake in a thread on loopback, points the app's gateway at it
  and has it POST its events to the app's own ``/webhooks/stripe`` (:func:`start_embedded_fake`).
- ``comptoir seed-demo`` connects the demo club to a simulated account that has finished
  onboarding (:func:`connect_demo_account`).

The fake keeps its state in memory while our database outlives it, so each start of the fake
first brings back every connected account our rows name, with the state they record
(:func:`restore_accounts`): the simplest way for the accounts to exist whenever the app can ask
for them, whichever process created them. Objects made on an account (payment intents, readers)
do not survive a restart; payments in progress then are left for the operators' stuck list.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Flask

from comptoir.billing import stripe_connect
from comptoir.billing.stripe_fake import FakeServer, FakeStripe, serve_in_thread
from comptoir.billing.stripe_fake.accounts import complete_onboarding, restore_account
from comptoir.billing.stripe_gateway import (
    SIMULATED_PUBLISHABLE_KEY,
    SIMULATED_SECRET_KEY,
    SIMULATED_WEBHOOK_SECRET,
    STRIPE_GATEWAY_EXTENSION,
    StripeClientGateway,
    is_real_key,
)
from comptoir.billing.stripe_models import StripeAccount
from comptoir.billing.stripe_payments import META_ORGANIZATION
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.settings import Settings
from comptoir.platform.tenancy import unscoped
from comptoir.tenants.models import Organization

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/stripe"
# Addresses a server listens on that a client cannot send to: the fake posts to loopback instead.
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - compared with, never bound


def simulated_by_default(settings: Settings) -> bool:
    """No Stripe configured at all (no real key, no API address) outside production: the case
    where Comptoir itself provides simulated payments."""
    return (
        not settings.is_production
        and not settings.stripe_api_base.strip()
        and not is_real_key(settings.stripe_secret_key)
    )


def simulated_gateway(base_url: str, webhook_secret: str = "") -> StripeClientGateway:
    return StripeClientGateway(
        SIMULATED_SECRET_KEY,
        api_base=base_url,
        publishable_key=SIMULATED_PUBLISHABLE_KEY,
        webhook_secret=webhook_secret or SIMULATED_WEBHOOK_SECRET,
        max_network_retries=0,
        simulated=True,
    )


def webhook_url(host: str | None, port: int | None) -> str:
    """Where the app served on ``host:port`` receives Stripe's events, as the fake reaches it."""
    reachable = "127.0.0.1" if (host or "") in _ANY_ADDRESS else str(host)
    if ":" in reachable and not reachable.startswith("["):
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{port or 5000}{WEBHOOK_PATH}"


def restore_accounts(fake: FakeStripe) -> int:
    """Bring back in ``fake`` every connected account our rows name; how many (in an app
    context)."""
    with unscoped():
        rows = db.session.execute(
            sa.select(StripeAccount, Organization).join(
                Organization, Organization.id == StripeAccount.organization_id
            )
        ).all()
        for account, organization in rows:
            restore_account(
                fake,
                account.account_id,
                country=organization.country or "CA",
                email=organization.email or None,
                metadata={
                    META_ORGANIZATION: organization.id,
                    stripe_connect.META_ORGANIZATION_SLUG: organization.slug,
                },
                details_submitted=account.details_submitted,
                charges_enabled=account.charges_enabled,
                payouts_enabled=account.payouts_enabled,
            )
    return len(rows)


def start_embedded_fake(app: Flask, *, webhook_url: str) -> FakeServer:
    """Serve the fake on loopback in a daemon thread and make it the app's Stripe.

    Its events are POSTed to ``webhook_url`` (the app's own endpoint), signed with the secret
    the app's gateway verifies.
    """
    from comptoir.platform.settings import SETTINGS_EXTENSION

    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    running = serve_in_thread()
    gateway = simulated_gateway(running.base_url, settings.stripe_webhook_secret)
    running.fake.add_webhook_endpoint(webhook_url, gateway.webhook_secret)
    app.extensions[STRIPE_GATEWAY_EXTENSION] = gateway
    with app.app_context():
        restored = restore_accounts(running.fake)
    logger.info("Stripe fake on %s; %d connected account(s) restored", running.base_url, restored)
    return running


def connect_demo_account(*, organization: Organization, actor: Actor) -> StripeAccount | None:
    """Connect ``organization`` to a simulated account that finished onboarding, once.

    Only when Comptoir provides simulated payments itself (nothing about Stripe configured): a
    demo never creates accounts at Stripe. A fake started for the occasion plays Stripe; the
    account lives on in our row, and every later start of the fake restores it.
    """
    from comptoir.platform.settings import current_settings

    existing = stripe_connect.connected_account(organization)
    if existing is not None or not simulated_by_default(current_settings()):
        return existing
    with serve_in_thread() as running:
        gateway = simulated_gateway(running.base_url)
        row = stripe_connect.connect_account(
            organization=organization, actor=actor, gateway=gateway
        )
        complete_onboarding(running.fake, row.account_id)
        return stripe_connect.refresh_account(organization=organization, gateway=gateway)
