"""The fake's memory: the platform, each connected account's objects, events and idempotency keys.

One re-entrant lock guards everything; the WSGI layer holds it for the whole of a request, so each
request sees and leaves a consistent state. Objects are stored as the JSON-ready dicts the API
returns; what Stripe keeps but does not show (a card's number, a pending 3-D Secure page) lives in
``Store.hidden`` beside them.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comptoir.billing.stripe_fake.errors import StripeFakeError, missing
from comptoir.billing.stripe_fake.fixtures import Fixtures
from comptoir.billing.stripe_fake.webhooks import WebhookEndpoint, WebhookSender

API_VERSION = "2026-10-28.endive"
_ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass
class SavedResponse:
    fingerprint: str
    endpoint: str
    status: int
    body: dict[str, Any]
    request_id: str


@dataclass
class HostedLink:
    """A browser page of the fake (onboarding, 3-D Secure) reached through an unguessable URL."""

    kind: str
    account_id: str | None
    object_id: str
    data: dict[str, Any] = field(default_factory=dict)
    used: bool = False


class Store:
    """What one account sees: the platform (``account_id`` None) or a connected account."""

    def __init__(self, account_id: str | None) -> None:
        self.account_id = account_id
        self.objects: dict[str, dict[str, Any]] = {}
        self.hidden: dict[str, dict[str, Any]] = {}
        self.order: dict[str, int] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, SavedResponse] = {}


@dataclass
class RequestInfo:
    request_id: str | None = None
    idempotency_key: str | None = None


class FakeStripe:
    """A stateful stand-in for the parts of Stripe's API Comptoir uses."""

    def __init__(
        self,
        fixtures: Fixtures | None = None,
        *,
        fixtures_path: Path | str | None = None,
        api_keys: Iterable[str] | None = None,
        base_url: str = "",
        webhook_max_attempts: int = 3,
        webhook_retry_delay: float = 0.2,
        webhook_timeout: float = 5.0,
    ) -> None:
        self.fixtures = fixtures or Fixtures.load(fixtures_path)
        # None accepts any test secret key, like a Stripe test-mode account would accept its own.
        self.api_keys = frozenset(api_keys) if api_keys else None
        self.base_url = base_url.rstrip("/")
        self.lock = threading.RLock()
        self.platform_application = "ca_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))
        self.webhooks = WebhookSender(
            self,
            max_attempts=webhook_max_attempts,
            retry_delay=webhook_retry_delay,
            timeout=webhook_timeout,
        )
        self.request = RequestInfo()
        self._sequence = 0
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every account, object, event, key and webhook endpoint; deliver normally again."""
        with self.lock:
            self.platform = Store(None)
            self.connected: dict[str, Store] = {}
            self.owner: dict[str, str | None] = {}
            self.links: dict[str, HostedLink] = {}
            self.webhooks.reset()

    def close(self) -> None:
        self.webhooks.stop()

    # -- ids, time, stores -----------------------------------------------------------------------

    def now(self) -> int:
        return int(time.time())

    def next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def store_for(self, account_id: str | None) -> Store:
        """The store a ``Stripe-Account`` header names (the platform's when there is none)."""
        if not account_id:
            return self.platform
        store = self.connected.get(account_id)
        if store is None:
            message = (
                "The provided key does not have access to account "
                f"'{account_id}' (or that account does not exist). Application access may "
                "have been revoked."
            )
            raise StripeFakeError(
                403, message, type="invalid_request_error", code="account_invalid"
            )
        return store

    def put(self, store: Store, obj: dict[str, Any], **hidden: Any) -> dict[str, Any]:
        object_id = obj["id"]
        if object_id not in store.objects:
            store.order[object_id] = self.next_sequence()
        store.objects[object_id] = obj
        self.owner[object_id] = store.account_id
        if hidden:
            store.hidden.setdefault(object_id, {}).update(hidden)
        return obj

    def get(
        self, store: Store, object_id: str, object_type: str, label: str, param: str = "id"
    ) -> dict[str, Any]:
        """The object of this type and id in this store, else Stripe's 404 ``resource_missing``."""
        obj = store.objects.get(object_id)
        if obj is None or obj.get("object") != object_type:
            raise missing(label, object_id, param)
        return obj

    def hidden(self, store: Store, object_id: str) -> dict[str, Any]:
        return store.hidden.setdefault(object_id, {})

    def locate(self, object_id: str) -> tuple[Store, dict[str, Any]] | None:
        """Find an object whatever its account (browser pages and admin switches only)."""
        if object_id not in self.owner:
            return None
        account_id = self.owner[object_id]
        store = self.platform if account_id is None else self.connected.get(account_id)
        if store is None or object_id not in store.objects:
            return None
        return store, store.objects[object_id]

    def objects_of(self, store: Store, object_type: str) -> list[dict[str, Any]]:
        """This store's objects of one type, newest first (Stripe's list order)."""
        found = [obj for obj in store.objects.values() if obj.get("object") == object_type]
        return sorted(found, key=lambda obj: store.order[obj["id"]], reverse=True)

    # -- events ----------------------------------------------------------------------------------

    def record_event(
        self,
        store: Store,
        event_type: str,
        obj: Mapping[str, Any],
        previous_attributes: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record an event of ``store``'s account with a snapshot of ``obj`` and send it out."""
        data: dict[str, Any] = {"object": copy.deepcopy(dict(obj))}
        if previous_attributes:
            data["previous_attributes"] = copy.deepcopy(dict(previous_attributes))
        fields: dict[str, Any] = {
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "id": random_id("evt"),
            "livemode": False,
            "object": "event",
            "pending_webhooks": 0,
            "request": {
                "id": self.request.request_id,
                "idempotency_key": self.request.idempotency_key,
            },
            "type": event_type,
        }
        if store.account_id is not None:
            fields["account"] = store.account_id
        event = self.fixtures.build("event", **fields)
        store.events[event["id"]] = event
        store.order[event["id"]] = self.next_sequence()
        self.webhooks.submit(event)
        return event

    def find_event(self, event_id: str) -> dict[str, Any] | None:
        for store in (self.platform, *self.connected.values()):
            if event_id in store.events:
                return store.events[event_id]
        return None

    def all_events(self) -> list[dict[str, Any]]:
        """Every event of every account, oldest first (tests and the admin view)."""
        with self.lock:
            pairs = [
                (store.order[event_id], event)
                for store in (self.platform, *self.connected.values())
                for event_id, event in store.events.items()
            ]
            return [copy.deepcopy(event) for _, event in sorted(pairs, key=lambda pair: pair[0])]

    # -- hosted pages ----------------------------------------------------------------------------

    def new_link(self, kind: str, account_id: str | None, object_id: str, **data: Any) -> str:
        token = secrets.token_urlsafe(24)
        self.links[token] = HostedLink(kind, account_id, object_id, dict(data))
        return token

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # -- webhook endpoints -----------------------------------------------------------------------

    def add_webhook_endpoint(self, url: str, secret: str | None = None) -> WebhookEndpoint:
        """Deliver every event to ``url``, signed with ``secret`` (made up when not given)."""
        with self.lock:
            return self.webhooks.add_endpoint(url, secret or random_id("whsec", 32))

    def remove_webhook_endpoint(self, endpoint_id: str) -> None:
        with self.lock:
            self.webhooks.remove_endpoint(endpoint_id)


def fingerprint(method: str, path: str, params: Mapping[str, Any]) -> str:
    return json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
