"""A stateful fake of the parts of Stripe's API that Comptoir uses, served over HTTP on loopback.

The real gateway adapter (``comptoir.billing.stripe_gateway``) talks to it through stripe-python's
``StripeClient`` exactly as it talks to Stripe, so tests and the keyless demo run the production
code path. See docs/STRIPE.md for what it simulates and its switches.
"""

from comptoir.billing.stripe_fake.cards import CARDS, TEST_PAYMENT_METHODS
from comptoir.billing.stripe_fake.fixtures import DEFAULT_FIXTURES_PATH, FixtureError, Fixtures
from comptoir.billing.stripe_fake.server import FakeServer, make_fake_server, serve_in_thread
from comptoir.billing.stripe_fake.state import FakeStripe
from comptoir.billing.stripe_fake.webhooks import (
    DeliveryMode,
    SignedDelivery,
    WebhookEndpoint,
    sign,
)

__all__ = [
    "CARDS",
    "DEFAULT_FIXTURES_PATH",
    "TEST_PAYMENT_METHODS",
    "DeliveryMode",
    "FakeServer",
    "FakeStripe",
    "FixtureError",
    "Fixtures",
    "SignedDelivery",
    "WebhookEndpoint",
    "make_fake_server",
    "serve_in_thread",
    "sign",
]
