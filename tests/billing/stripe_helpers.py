"""Fixtures for code that talks to Stripe: the Stripe fake served on loopback for the whole test
session, a gateway pointed at it, and a loopback receiver for the webhooks it sends.

tests/conftest.py loads this module as a plugin, so the fixtures are available to every test.

- ``stripe_server``: the running fake (session-wide); ``stripe_server.base_url`` goes into
  ``COMPTOIR_STRIPE_API_BASE`` / ``Settings(stripe_api_base=...)``.
- ``stripe_fake``: its state, emptied before and after each test; flip its switches directly
  (``stripe_fake.webhooks.set_mode("hold")``, ``set_reader_status(...)``...).
- ``stripe_gateway``: the real adapter (``StripeClientGateway``) talking to the fake over HTTP.
- ``webhook_receiver``: a loopback HTTP server that records what the fake POSTs to it.
- ``app_gateway``: the same adapter installed as the app's gateway for one test.
- ``stripe_webhooks``: the fake's webhook endpoint pointed at the app served on loopback
  (``live_server``), signed with the app's secret: events reach ``POST /webhooks/stripe`` over HTTP.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask

from comptoir.billing.stripe_fake import FakeServer, FakeStripe, serve_in_thread
from comptoir.billing.stripe_fake.webhooks import WebhookEndpoint
from comptoir.billing.stripe_gateway import (
    STRIPE_GATEWAY_EXTENSION,
    Account,
    Address,
    Reader,
    StripeClientGateway,
)

# Read-only shared data beside the repository (Stripe's own example objects).
FIXTURES_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "stripe" / "fixtures3.json"
SECRET_KEY = "sk_test_comptoir_tests"
WEBHOOK_SECRET = "whsec_comptoir_tests"


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[FakeServer]:
    server = serve_in_thread(fixtures_path=FIXTURES_PATH, webhook_retry_delay=0.02)
    yield server
    server.stop()


@pytest.fixture
def stripe_fake(stripe_server: FakeServer) -> Iterator[FakeStripe]:
    stripe_server.fake.reset()
    yield stripe_server.fake
    stripe_server.fake.reset()


@pytest.fixture
def stripe_gateway(stripe_server: FakeServer, stripe_fake: FakeStripe) -> StripeClientGateway:
    return StripeClientGateway(
        SECRET_KEY,
        api_base=stripe_server.base_url,
        webhook_secret=WEBHOOK_SECRET,
        max_network_retries=0,
    )


@pytest.fixture
def app_gateway(app: Flask, stripe_gateway: StripeClientGateway) -> Iterator[StripeClientGateway]:
    app.extensions[STRIPE_GATEWAY_EXTENSION] = stripe_gateway
    yield stripe_gateway
    app.extensions.pop(STRIPE_GATEWAY_EXTENSION, None)


@pytest.fixture
def stripe_webhooks(
    app_gateway: StripeClientGateway, stripe_fake: FakeStripe, live_server: str
) -> WebhookEndpoint:
    return stripe_fake.add_webhook_endpoint(live_server + "/webhooks/stripe", WEBHOOK_SECRET)


# -- building blocks ------------------------------------------------------------------------------


def connected_account(
    gateway: StripeClientGateway,
    fake: FakeStripe,
    *,
    country: str = "CA",
    onboarded: bool = True,
) -> Account:
    """A connected account; ``onboarded`` ones can take payments (as after Stripe's onboarding)."""
    from comptoir.billing.stripe_fake.accounts import complete_onboarding

    account = gateway.create_connected_account(country=country, email="club@example.org")
    if onboarded:
        complete_onboarding(fake, account.id)
        account = gateway.retrieve_account(account.id)
    return account


def simulated_reader(
    gateway: StripeClientGateway, account_id: str, *, label: str = "Front desk"
) -> Reader:
    location = gateway.create_terminal_location(
        account_id,
        display_name="Pool",
        address=Address(
            country="CA", line1="1 rue du Bassin", city="Montréal", postal_code="H2X 1Y4"
        ),
    )
    return gateway.register_reader(
        account_id, registration_code="simulated-wpe", label=label, location=location.id
    )


@dataclass
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: Any
    text: str


def raw_request(
    base_url: str,
    method: str,
    path: str,
    params: list[tuple[str, str]] | None = None,
    *,
    account: str | None = None,
    key: str | None = SECRET_KEY,
    idempotency_key: str | None = None,
) -> RawResponse:
    """One HTTP request to the fake as any Stripe client would make it (no redirects followed)."""
    data = None
    url = base_url + path
    encoded = urlencode(params or [])
    if method in {"GET", "DELETE"} and encoded:
        url += "?" + encoded
    elif encoded or method == "POST":
        data = encoded.encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if account:
        headers["Stripe-Account"] = account
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=5) as response:
            status, reply_headers, text = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, reply_headers, text = error.code, dict(error.headers), error.read()
    decoded = text.decode()
    try:
        body = json.loads(decoded)
    except ValueError:
        body = None
    return RawResponse(status, reply_headers, body, decoded)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# -- a webhook endpoint ---------------------------------------------------------------------------


@dataclass
class ReceivedWebhook:
    payload: bytes
    headers: Mapping[str, str]


@dataclass
class WebhookReceiver:
    """Records the POSTs it receives; answers ``failures`` 500s first, then 200s."""

    url: str = ""
    received: list[ReceivedWebhook] = field(default_factory=list)
    failures: int = 0
    _condition: threading.Condition = field(default_factory=threading.Condition)

    def record(self, payload: bytes, headers: Mapping[str, str]) -> int:
        with self._condition:
            self.received.append(ReceivedWebhook(payload, headers))
            self._condition.notify_all()
            if self.failures > 0:
                self.failures -= 1
                return 500
            return 200

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedWebhook]:
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    message = f"{len(self.received)} webhooks arrived, {count} expected."
                    raise AssertionError(message)
                self._condition.wait(remaining)
            return list(self.received)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status = receiver.record(self.rfile.read(length), dict(self.headers))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}/webhooks/stripe"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
