"""The app as the oversell test serves it from gunicorn workers: ``tests.storefront.live_app:app``.

The test passes the session's database, Redis and an instance folder in the environment. With
``COMPTOIR_TEST_NAIVE_HOLDS=1`` the workers hold stock the deliberately broken way the test must
catch: read what is left, then write the hold, with no lock on the stock row in between.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from comptoir.app import create_app
from comptoir.storefront import holds
from comptoir.storefront.models import Cart, CartLine
from tests.conftest import make_settings


def _read_then_write(*, cart: Cart, line: CartLine, quantity: int) -> None:
    """The app's general way to hold (check the room, then write), minus the row lock."""
    holds.ensure_room(cart=cart, key=holds.key_of(line), quantity=quantity)
    holds.write_hold(cart=cart, line=line, quantity=quantity, new=True)


if os.environ.get("COMPTOIR_TEST_NAIVE_HOLDS") == "1":
    holds.lock_units = holds.read_units
    holds.hold_new_line = _read_then_write

app = create_app(
    make_settings(
        os.environ["COMPTOIR_TEST_DATABASE_URL"],
        os.environ["COMPTOIR_TEST_REDIS_URL"],
        Path(os.environ["COMPTOIR_TEST_INSTANCE"]),
    )
)
# No log line per request: thousands of them would only slow the test down.
logging.getLogger("comptoir.request").setLevel(logging.WARNING)
