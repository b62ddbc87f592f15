"""Webhook delivery: events POSTed to endpoints, signed like Stripe, from a background thread.

Each event goes to every endpoint with ``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" under the endpoint's whsec_ secret>``, signed again at each attempt. A non-2xx answer
or a network error is retried a bounded number of times. Tests can switch delivery off (events are
recorded but never sent, as when Stripe gives up) or hold deliveries and flush them later,
shuffled and repeated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comptoir.billing.stripe_fake.state import FakeStripe

logger = logging.getLogger(__name__)

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``payload`` under ``secret``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{stamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


class DeliveryMode(StrEnum):
    DELIVER = "deliver"
    DROP = "drop"  # record events but never send them (a webhook Stripe gave up on)
    HOLD = "hold"  # keep deliveries until flush() or take_held()


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    secret: str


@dataclass(frozen=True)
class SignedDelivery:
    """A delivery ready to POST: the raw body and the headers Stripe would send with it."""

    event_id: str
    endpoint_id: str
    url: str
    payload: bytes
    headers: dict[str, str] = field(hash=False)


@dataclass(frozen=True)
class DeliveryAttempt:
    event_id: str
    endpoint_id: str
    attempt: int
    status: int | None
    error: str | None
    at: float


@dataclass(frozen=True)
class _Job:
    event_id: str
    endpoint_id: str
    attempt: int
    generation: int


class WebhookSender:
    def __init__(
        self, fake: FakeStripe, *, max_attempts: int, retry_delay: float, timeout: float
    ) -> None:
        self._fake = fake
        self.max_attempts = max(1, max_attempts)
        self.retry_delay = retry_delay
        self.timeout = timeout
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._idle = threading.Condition()
        self._outstanding = 0
        self._thread: threading.Thread | None = None
        self._generation = 0
        self.endpoints: dict[str, WebhookEndpoint] = {}
        self.mode = DeliveryMode.DELIVER
        self.held: list[tuple[str, str]] = []
        self.attempts: list[DeliveryAttempt] = []
        self.pending: dict[str, set[str]] = {}

    # -- configuration (callers hold the fake's lock) --------------------------------------------

    def reset(self) -> None:
        self._generation += 1
        self.endpoints = {}
        self.mode = DeliveryMode.DELIVER
        self.held = []
        self.attempts = []
        self.pending = {}

    def add_endpoint(self, url: str, secret: str) -> WebhookEndpoint:
        from comptoir.billing.stripe_fake.state import random_id

        if not url.startswith(("http://", "https://")):
            message = f"A webhook endpoint must be an http(s) URL, not {url!r}."
            raise ValueError(message)
        endpoint = WebhookEndpoint(random_id("we"), url, secret)
        self.endpoints[endpoint.id] = endpoint
        return endpoint

    def remove_endpoint(self, endpoint_id: str) -> None:
        self.endpoints.pop(endpoint_id, None)

    def set_mode(self, mode: DeliveryMode | str) -> None:
        with self._fake.lock:
            self.mode = DeliveryMode(mode)

    # -- events in -------------------------------------------------------------------------------

    def submit(self, event: dict[str, Any]) -> None:
        targets = list(self.endpoints)
        self.pending[event["id"]] = set(targets)
        event["pending_webhooks"] = len(targets)
        if self.mode is DeliveryMode.DROP:
            return
        if self.mode is DeliveryMode.HOLD:
            self.held.extend((event["id"], endpoint_id) for endpoint_id in targets)
            return
        for endpoint_id in targets:
            self._enqueue(_Job(event["id"], endpoint_id, 1, self._generation))

    def flush(self, *, shuffle: bool = False, copies: int = 1, seed: int | None = None) -> int:
        """Send the held deliveries (each ``copies`` times, shuffled if asked); returns how many."""
        with self._fake.lock:
            jobs = [
                _Job(event_id, endpoint_id, 1, self._generation)
                for event_id, endpoint_id in self.held
                for _ in range(max(1, copies))
            ]
            self.held = []
            if shuffle:
                random.Random(seed).shuffle(jobs)  # noqa: S311 - test ordering, not secrets
            for job in jobs:
                self._enqueue(job)
            return len(jobs)

    def take_held(
        self, *, shuffle: bool = False, copies: int = 1, seed: int | None = None
    ) -> list[SignedDelivery]:
        """Hand the held deliveries to the caller, signed now, instead of sending them."""
        with self._fake.lock:
            pairs = [pair for pair in self.held for _ in range(max(1, copies))]
            self.held = []
            if shuffle:
                random.Random(seed).shuffle(pairs)  # noqa: S311 - test ordering, not secrets
            deliveries = []
            for event_id, endpoint_id in pairs:
                delivery = self._signed(event_id, endpoint_id)
                if delivery is not None:
                    deliveries.append(delivery)
            return deliveries

    def signed_delivery(self, event_id: str, endpoint_id: str | None = None) -> SignedDelivery:
        """A signed delivery of any recorded event (to replay one by hand)."""
        with self._fake.lock:
            chosen = endpoint_id or next(iter(self.endpoints), None)
            if chosen is None:
                message = "No webhook endpoint is configured."
                raise LookupError(message)
            delivery = self._signed(event_id, chosen)
            if delivery is None:
                message = f"No event {event_id} for endpoint {chosen}."
                raise LookupError(message)
            return delivery

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every queued delivery (retries included) is done; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def stop(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=5)
        self._thread = None

    # -- the delivery thread ---------------------------------------------------------------------

    def _enqueue(self, job: _Job) -> None:
        with self._idle:
            self._outstanding += 1
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="stripe-fake-webhooks", daemon=True
            )
            self._thread.start()
        self._queue.put(job)

    def _done(self) -> None:
        with self._idle:
            self._outstanding -= 1
            if not self._outstanding:
                self._idle.notify_all()

    def _signed(self, event_id: str, endpoint_id: str) -> SignedDelivery | None:
        event = self._fake.find_event(event_id)
        endpoint = self.endpoints.get(endpoint_id)
        if event is None or endpoint is None:
            return None
        payload = json.dumps(event, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": sign(payload, endpoint.secret),
        }
        return SignedDelivery(event_id, endpoint_id, endpoint.url, payload, headers)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._deliver(job)
            except Exception:
                logger.exception("stripe fake: webhook delivery crashed")
            finally:
                self._done()

    def _deliver(self, job: _Job) -> None:
        with self._fake.lock:
            if job.generation != self._generation:
                return
            delivery = self._signed(job.event_id, job.endpoint_id)
        if delivery is None:
            return
        status, error = _post(delivery, self.timeout)
        with self._fake.lock:
            if job.generation != self._generation:
                return
            self.attempts.append(
                DeliveryAttempt(
                    job.event_id, job.endpoint_id, job.attempt, status, error, time.time()
                )
            )
            if status is not None and 200 <= status < 300:
                waiting = self.pending.get(job.event_id, set())
                waiting.discard(job.endpoint_id)
                event = self._fake.find_event(job.event_id)
                if event is not None:
                    event["pending_webhooks"] = len(waiting)
                return
            if job.attempt >= self.max_attempts:
                return
            retry = _Job(job.event_id, job.endpoint_id, job.attempt + 1, job.generation)
        # Later attempts wait longer, like Stripe's back-off (scaled down to test speed).
        with self._idle:
            self._outstanding += 1
        timer = threading.Timer(self.retry_delay * job.attempt, self._requeue, [retry])
        timer.daemon = True
        timer.start()

    def _requeue(self, job: _Job) -> None:
        self._queue.put(job)


def _post(delivery: SignedDelivery, timeout: float) -> tuple[int | None, str | None]:
    if not delivery.url.startswith(("http://", "https://")):
        return None, "not an http(s) URL"
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        delivery.url, data=delivery.payload, headers=delivery.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return int(response.status), None
    except urllib.error.HTTPError as error:
        return int(error.code), None
    except (OSError, ValueError) as error:
        return None, str(error)
