"""Browser tests: Debian's Chromium driven by Playwright, against the app served from a thread.

Without /usr/bin/chromium the tests are skipped with a clear message, unless
``COMPTOIR_REQUIRE_BROWSER=1`` (CI) makes them fail instead. No browser is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from comptoir.billing.stripe_fake import FakeStripe
from comptoir.billing.stripe_gateway import StripeClientGateway
from tests.billing.order_world import OrderWorld, build_order_world
from tests.billing.stripe_world import connect

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        message = f"Browser tests need Chromium at {CHROMIUM} (apt-get install chromium)."
        if os.environ.get("COMPTOIR_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " COMPTOIR_REQUIRE_BROWSER=1 makes this an error.")
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_path), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server, locale="fr-CA")
    # Generous: the suite may share the machine with other test runs.
    context.set_default_timeout(30_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def stripe_world(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    app_gateway: StripeClientGateway,
) -> OrderWorld:
    """A club whose Stripe account takes payments, the app talking to the Stripe fake."""
    world = build_order_world(app)
    connect(app, stripe_gateway, stripe_fake, world.organization_id)
    return world
