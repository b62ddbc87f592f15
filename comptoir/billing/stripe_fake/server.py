"""Serving the fake on loopback: from a thread (tests), or in the foreground
(``comptoir stripe-fake``)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from comptoir.billing.stripe_fake.app import FakeStripeApp
from comptoir.billing.stripe_fake.state import FakeStripe

LOOPBACK = "127.0.0.1"


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log: a test run makes thousands of requests."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


@dataclass
class FakeServer:
    """A running fake: its base URL (for ``base_addresses``), its state, and how to stop it."""

    base_url: str
    fake: FakeStripe
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._server.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self.fake.close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def make_fake_server(
    *,
    host: str = LOOPBACK,
    port: int = 0,
    fixtures_path: Path | str | None = None,
    api_keys: Iterable[str] | None = None,
    webhook_max_attempts: int = 3,
    webhook_retry_delay: float = 0.2,
    quiet: bool = False,
) -> FakeServer:
    """Bind the fake (``port=0``: a free port) without serving yet."""
    fake = FakeStripe(
        fixtures_path=fixtures_path,
        api_keys=api_keys,
        webhook_max_attempts=webhook_max_attempts,
        webhook_retry_delay=webhook_retry_delay,
    )
    handler = _QuietRequestHandler if quiet else WSGIRequestHandler
    server = make_server(host, port, FakeStripeApp(fake), threaded=True, request_handler=handler)
    base_url = f"http://{host}:{server.server_port}"
    fake.base_url = base_url
    return FakeServer(base_url, fake, server)


def serve_in_thread(
    *,
    host: str = LOOPBACK,
    port: int = 0,
    fixtures_path: Path | str | None = None,
    api_keys: Iterable[str] | None = None,
    webhook_max_attempts: int = 3,
    webhook_retry_delay: float = 0.2,
) -> FakeServer:
    """Start the fake on ``host`` (a free port by default) in a daemon thread.

    ``server.base_url`` is what ``StripeClient(base_addresses={"api": ...})`` needs; ``server.fake``
    is the state, for switches a test flips directly; ``server.stop()`` shuts it down.
    """
    running = make_fake_server(
        host=host,
        port=port,
        fixtures_path=fixtures_path,
        api_keys=api_keys,
        webhook_max_attempts=webhook_max_attempts,
        webhook_retry_delay=webhook_retry_delay,
        quiet=True,
    )
    thread = threading.Thread(
        target=running._server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name="stripe-fake",
        daemon=True,
    )
    thread.start()
    running._thread = thread
    return running
