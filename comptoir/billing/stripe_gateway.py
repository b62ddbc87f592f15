"""The narrow gateway to Stripe: the only module that talks to Stripe.

Callers pass plain arguments (ids, integer amounts in minor units, ISO currencies) and get small
frozen dataclasses back, never stripe-python objects; Stripe's refusals arrive as the few
exceptions below, each with a message for people and Stripe's code for programs.

Every call made for an organization names its connected account (``account_id``), which
stripe-python sends as the ``Stripe-Account`` header: charges are direct charges on the
organization's own account. The one implementation, :class:`StripeClientGateway`, uses
stripe-python's ``StripeClient``. With real keys it talks to api.stripe.com; otherwise its
``base_addresses`` point at the Stripe fake (``comptoir.billing.stripe_fake``) over HTTP, so tests
and the keyless demo ("simulated payments") run this same code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast
from urllib.parse import urlencode, urlsplit

import stripe
from flask import current_app

from comptoir.billing.stripe_errors import (
    CardDeclinedError,
    GatewayConfigurationError,
    IdempotencyConflictError,
    InvalidRequestError,
    ReaderUnavailableError,
    StripeAuthenticationError,
    StripeGatewayError,
    StripeNotFoundError,
    StripeUnavailableError,
    WebhookSignatureError,
    translate_error,
)
from comptoir.billing.stripe_objects import (
    Account,
    AccountLink,
    Address,
    Charge,
    Event,
    PaymentError,
    PaymentIntent,
    Reader,
    ReaderAction,
    Refund,
    TerminalLocation,
)
from comptoir.platform.settings import Settings, current_settings

__all__ = [
    "Account",
    "AccountLink",
    "Address",
    "CardDeclinedError",
    "Charge",
    "Event",
    "GatewayConfigurationError",
    "IdempotencyConflictError",
    "InvalidRequestError",
    "PaymentError",
    "PaymentIntent",
    "Reader",
    "ReaderAction",
    "ReaderUnavailableError",
    "Refund",
    "StripeAuthenticationError",
    "StripeClientGateway",
    "StripeGateway",
    "StripeGatewayError",
    "StripeNotFoundError",
    "StripeUnavailableError",
    "TerminalLocation",
    "WebhookSignatureError",
    "construct_event",
    "current_gateway",
    "gateway_for",
]

STRIPE_API_BASE = "https://api.stripe.com"
# Where ``comptoir stripe-fake`` listens by default (the port stripe-mock made customary).
DEFAULT_FAKE_API_BASE = "http://127.0.0.1:12111"
SIMULATED_SECRET_KEY = "sk_test_comptoir_simulated"  # noqa: S105 - the fake's, not a secret
SIMULATED_PUBLISHABLE_KEY = "pk_test_comptoir_simulated"
SIMULATED_WEBHOOK_SECRET = "whsec_comptoir_simulated"  # noqa: S105 - the fake's
# Stripe's own default: a signature older than five minutes is refused.
WEBHOOK_TOLERANCE_SECONDS = 300
STRIPE_GATEWAY_EXTENSION = "comptoir_stripe_gateway"

_REAL_KEY_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_")


# -- the interface --------------------------------------------------------------------------------


class StripeGateway(Protocol):
    """Everything Comptoir asks of Stripe. Amounts are integers in minor units."""

    simulated: bool
    publishable_key: str

    # Connect
    def create_connected_account(
        self,
        *,
        country: str,
        email: str | None,
        metadata: Mapping[str, str | int] | None = None,
        idempotency_key: str | None = None,
    ) -> Account: ...
    def retrieve_account(self, account_id: str) -> Account: ...
    def delete_account(self, account_id: str) -> None: ...
    def create_account_link(
        self, account_id: str, *, refresh_url: str, return_url: str
    ) -> AccountLink: ...

    # Payments
    def create_payment_intent(
        self,
        account_id: str,
        *,
        amount: int,
        currency: str,
        application_fee_amount: int | None,
        metadata: Mapping[str, str | int],
        idempotency_key: str,
        payment_method_types: Sequence[str] = ("card",),
        capture_method: str = "automatic",
        description: str | None = None,
        receipt_email: str | None = None,
    ) -> PaymentIntent: ...
    def retrieve_payment_intent(self, account_id: str, payment_intent_id: str) -> PaymentIntent: ...
    def confirm_payment_intent(
        self,
        account_id: str,
        payment_intent_id: str,
        *,
        payment_method: str,
        return_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentIntent: ...
    def capture_payment_intent(
        self,
        account_id: str,
        payment_intent_id: str,
        *,
        amount_to_capture: int | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentIntent: ...
    def cancel_payment_intent(
        self,
        account_id: str,
        payment_intent_id: str,
        *,
        cancellation_reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentIntent: ...
    def retrieve_charge(self, account_id: str, charge_id: str) -> Charge: ...
    def hosted_test_payment_url(self, intent: PaymentIntent, *, return_url: str) -> str | None: ...

    # Refunds
    def create_refund(
        self,
        account_id: str,
        *,
        payment_intent: str,
        amount: int | None,
        refund_application_fee: bool,
        idempotency_key: str,
        metadata: Mapping[str, str | int] | None = None,
        reason: str | None = None,
    ) -> Refund: ...
    def retrieve_refund(self, account_id: str, refund_id: str) -> Refund: ...

    # Terminal
    def create_terminal_location(
        self,
        account_id: str,
        *,
        display_name: str,
        address: Address,
        idempotency_key: str | None = None,
    ) -> TerminalLocation: ...
    def list_terminal_locations(self, account_id: str) -> list[TerminalLocation]: ...
    def register_reader(
        self, account_id: str, *, registration_code: str, label: str, location: str
    ) -> Reader: ...
    def list_readers(self, account_id: str, *, location: str | None = None) -> list[Reader]: ...
    def retrieve_reader(self, account_id: str, reader_id: str) -> Reader: ...
    def update_reader(self, account_id: str, reader_id: str, *, label: str) -> Reader: ...
    def delete_reader(self, account_id: str, reader_id: str) -> None: ...
    def process_payment_intent_on_reader(
        self,
        account_id: str,
        reader_id: str,
        payment_intent_id: str,
        *,
        idempotency_key: str | None = None,
    ) -> Reader: ...
    def refund_payment_on_reader(
        self,
        account_id: str,
        reader_id: str,
        *,
        payment_intent_id: str,
        amount: int | None,
        refund_application_fee: bool,
        metadata: Mapping[str, str | int] | None = None,
        idempotency_key: str | None = None,
    ) -> Reader: ...
    def cancel_reader_action(self, account_id: str, reader_id: str) -> Reader: ...
    def simulate_present_payment_method(
        self,
        account_id: str,
        reader_id: str,
        *,
        type: str = "card_present",  # noqa: A002 - Stripe's parameter name
        card_number: str | None = None,
    ) -> Reader: ...

    # Events
    def list_events(
        self,
        account_id: str | None = None,
        *,
        created_gte: int | None = None,
        types: Sequence[str] | None = None,
        delivery_success: bool | None = None,
        limit: int | None = None,
    ) -> list[Event]: ...
    def retrieve_event(self, account_id: str | None, event_id: str) -> Event: ...
    def construct_event(
        self,
        payload: bytes | str,
        signature_header: str | None,
        secret: str | None = None,
        *,
        tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
    ) -> Event: ...


# -- the real adapter ------------------------------------------------------------------------------


class StripeClientGateway:
    """The gateway over stripe-python's ``StripeClient``, against Stripe or the fake."""

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str = STRIPE_API_BASE,
        publishable_key: str = "",
        webhook_secret: str = "",
        max_network_retries: int = 2,
        simulated: bool | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        if simulated is None:
            simulated = urlsplit(self.api_base).hostname != "api.stripe.com"
        self.simulated = simulated
        self.publishable_key = publishable_key
        self.webhook_secret = webhook_secret
        # Items per request when following a list's pages (Stripe allows up to 100).
        self.page_size = 100
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": self.api_base},
            max_network_retries=max_network_retries,
        )

    def __repr__(self) -> str:
        mode = "simulated" if self.simulated else "live"
        return f"<StripeClientGateway {self.api_base} ({mode})>"

    @property
    def v1(self) -> Any:
        return self._client.v1

    # -- Connect ---------------------------------------------------------------------------------

    def create_connected_account(
        self,
        *,
        country: str,
        email: str | None,
        metadata: Mapping[str, str | int] | None = None,
        idempotency_key: str | None = None,
    ) -> Account:
        params: dict[str, Any] = {"type": "standard", "country": country.upper()}
        if email:
            params["email"] = email
        if metadata:
            params["metadata"] = _metadata(metadata)
        account = self._call(
            lambda: self.v1.accounts.create(params, _options(None, idempotency_key)), None
        )
        return Account.from_stripe(account)

    def retrieve_account(self, account_id: str) -> Account:
        return Account.from_stripe(
            self._call(lambda: self.v1.accounts.retrieve(account_id), account_id)
        )

    def delete_account(self, account_id: str) -> None:
        self._call(lambda: self.v1.accounts.delete(account_id), account_id)

    def create_account_link(
        self, account_id: str, *, refresh_url: str, return_url: str
    ) -> AccountLink:
        params = {
            "account": account_id,
            "refresh_url": refresh_url,
            "return_url": return_url,
            "type": "account_onboarding",
        }
        link = self._call(lambda: self.v1.account_links.create(params), account_id)
        return AccountLink.from_stripe(link)

    # -- payments --------------------------------------------------------------------------------

    def create_payment_intent(
        self,
        account_id: str,
        *,
        amount: int,
        currency: str,
        application_fee_amount: int | None,
        metadata: Mapping[str, str | int],
        idempotency_key: str,
        payment_method_types: Sequence[str] = ("card",),
        capture_method: str = "automatic",
        description: str | None = None,
        receipt_email: str | None = None,
    ) -> PaymentIntent:
        params: dict[str, Any] = {
            "amount": _amount(amount),
            "currency": currency.lower(),
            "metadata": _metadata(metadata),
            "payment_method_types": list(payment_method_types),
            "capture_method": capture_method,
        }
        if application_fee_amount:
            params["application_fee_amount"] = _amount(application_fee_amount)
        if description:
            params["description"] = description
        if receipt_email:
            params["receipt_email"] = receipt_email
        intent = self._call(
            lambda: self.v1.payment_intents.create(params, _options(account_id, idempotency_key)),
            account_id,
        )
        return PaymentIntent.from_stripe(intent, account_id)

    def retrieve_payment_intent(self, account_id: str, payment_intent_id: str) -> PaymentIntent:
        intent = self._call(
            lambda: self.v1.payment_intents.retrieve(payment_intent_id, None, _options(account_id)),
            account_id,
        )
        return PaymentIntent.from_stripe(intent, account_id)

    def confirm_payment_intent(
        self,
        account_id: str,
        payment_intent_id: str,
        *,
        payment_method: str,
        return_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentIntent:
        params: dict[str, Any] = {"payment_method": payment_method}
        if return_url:
            params["return_url"] = return_url
        intent = self._call(
            lambda: self.v1.payment_intents.confirm(
                payment_intent_id, params, _options(account_id, idempotency_key)
            ),
            account_id,
        )
        return PaymentIntent.from_stripe(intent, account_id)

    def capture_payment_intent(
        self,
        account_id: str,
        payment_intent_id: str,
        *,
        amount_to_capture: int | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentIntent:
        params: dict[str, Any] = {}
        if amount_to_capture is not None:
            params["amount_to_capture"] = _amount(amount_to_capture)
        intent = self._call(
            lambda: self.v1.payment_intents.capture(
                payment_intent_id, params, _options(account_id, idempotency_key)
            ),
            account_id,
        )
        return PaymentIntent.from_stripe(intent, account_id)

    def cancel_payment_intent(
        self,
        account_id: str,
        payment_intent_id: str,
        *,
        cancellation_reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentIntent:
        params: dict[str, Any] = {}
        if cancellation_reason:
            params["cancellation_reason"] = cancellation_reason
        intent = self._call(
            lambda: self.v1.payment_intents.cancel(
                payment_intent_id, params, _options(account_id, idempotency_key)
            ),
            account_id,
        )
        return PaymentIntent.from_stripe(intent, account_id)

    def retrieve_charge(self, account_id: str, charge_id: str) -> Charge:
        charge = self._call(
            lambda: self.v1.charges.retrieve(charge_id, None, _options(account_id)), account_id
        )
        return Charge.from_stripe(charge, account_id)

    def hosted_test_payment_url(self, intent: PaymentIntent, *, return_url: str) -> str | None:
        """The fake's card form standing in for Stripe's Payment Element (None with Stripe)."""
        if not self.simulated or not intent.client_secret:
            return None
        query = urlencode({"client_secret": intent.client_secret, "return_url": return_url})
        return f"{self.api_base}/_fake/checkout/{intent.id}?{query}"

    # -- refunds ---------------------------------------------------------------------------------

    def create_refund(
        self,
        account_id: str,
        *,
        payment_intent: str,
        amount: int | None,
        refund_application_fee: bool,
        idempotency_key: str,
        metadata: Mapping[str, str | int] | None = None,
        reason: str | None = None,
    ) -> Refund:
        params: dict[str, Any] = {
            "payment_intent": payment_intent,
            "refund_application_fee": refund_application_fee,
        }
        if amount is not None:
            params["amount"] = _amount(amount)
        if metadata:
            params["metadata"] = _metadata(metadata)
        if reason:
            params["reason"] = reason
        refund = self._call(
            lambda: self.v1.refunds.create(params, _options(account_id, idempotency_key)),
            account_id,
        )
        return Refund.from_stripe(refund, account_id)

    def retrieve_refund(self, account_id: str, refund_id: str) -> Refund:
        refund = self._call(
            lambda: self.v1.refunds.retrieve(refund_id, None, _options(account_id)), account_id
        )
        return Refund.from_stripe(refund, account_id)

    # -- Terminal --------------------------------------------------------------------------------

    def create_terminal_location(
        self,
        account_id: str,
        *,
        display_name: str,
        address: Address,
        idempotency_key: str | None = None,
    ) -> TerminalLocation:
        params = {"display_name": display_name, "address": address.params()}
        location = self._call(
            lambda: self.v1.terminal.locations.create(
                params, _options(account_id, idempotency_key)
            ),
            account_id,
        )
        return TerminalLocation.from_stripe(location, account_id)

    def list_terminal_locations(self, account_id: str) -> list[TerminalLocation]:
        items = self._list_all(
            lambda: self.v1.terminal.locations.list(
                {"limit": self.page_size}, _options(account_id)
            ),
            account_id,
        )
        return [TerminalLocation.from_stripe(item, account_id) for item in items]

    def register_reader(
        self, account_id: str, *, registration_code: str, label: str, location: str
    ) -> Reader:
        params = {"registration_code": registration_code, "label": label, "location": location}
        reader = self._call(
            lambda: self.v1.terminal.readers.create(params, _options(account_id)), account_id
        )
        return Reader.from_stripe(reader, account_id)

    def list_readers(self, account_id: str, *, location: str | None = None) -> list[Reader]:
        params: dict[str, Any] = {"limit": self.page_size}
        if location:
            params["location"] = location
        items = self._list_all(
            lambda: self.v1.terminal.readers.list(params, _options(account_id)), account_id
        )
        return [Reader.from_stripe(item, account_id) for item in items]

    def retrieve_reader(self, account_id: str, reader_id: str) -> Reader:
        reader = self._call(
            lambda: self.v1.terminal.readers.retrieve(reader_id, None, _options(account_id)),
            account_id,
        )
        if reader.get("deleted"):
            raise StripeNotFoundError(
                f"No such terminal.reader: '{reader_id}'", code="resource_missing"
            )
        return Reader.from_stripe(reader, account_id)

    def update_reader(self, account_id: str, reader_id: str, *, label: str) -> Reader:
        reader = self._call(
            lambda: self.v1.terminal.readers.update(
                reader_id, {"label": label}, _options(account_id)
            ),
            account_id,
        )
        return Reader.from_stripe(reader, account_id)

    def delete_reader(self, account_id: str, reader_id: str) -> None:
        self._call(
            lambda: self.v1.terminal.readers.delete(reader_id, None, _options(account_id)),
            account_id,
        )

    def process_payment_intent_on_reader(
        self,
        account_id: str,
        reader_id: str,
        payment_intent_id: str,
        *,
        idempotency_key: str | None = None,
    ) -> Reader:
        reader = self._call(
            lambda: self.v1.terminal.readers.process_payment_intent(
                reader_id,
                {"payment_intent": payment_intent_id},
                _options(account_id, idempotency_key),
            ),
            account_id,
        )
        return Reader.from_stripe(reader, account_id)

    def refund_payment_on_reader(
        self,
        account_id: str,
        reader_id: str,
        *,
        payment_intent_id: str,
        amount: int | None,
        refund_application_fee: bool,
        metadata: Mapping[str, str | int] | None = None,
        idempotency_key: str | None = None,
    ) -> Reader:
        params: dict[str, Any] = {
            "payment_intent": payment_intent_id,
            "refund_application_fee": refund_application_fee,
        }
        if amount is not None:
            params["amount"] = _amount(amount)
        if metadata:
            params["metadata"] = _metadata(metadata)
        reader = self._call(
            lambda: self.v1.terminal.readers.refund_payment(
                reader_id, params, _options(account_id, idempotency_key)
            ),
            account_id,
        )
        return Reader.from_stripe(reader, account_id)

    def cancel_reader_action(self, account_id: str, reader_id: str) -> Reader:
        reader = self._call(
            lambda: self.v1.terminal.readers.cancel_action(reader_id, None, _options(account_id)),
            account_id,
        )
        return Reader.from_stripe(reader, account_id)

    def simulate_present_payment_method(
        self,
        account_id: str,
        reader_id: str,
        *,
        type: str = "card_present",  # noqa: A002 - Stripe's parameter name
        card_number: str | None = None,
    ) -> Reader:
        """Test mode only: play the customer's card on a simulated reader."""
        params: dict[str, Any] = {"type": type}
        if card_number:
            params[type] = {"number": card_number}
        reader = self._call(
            lambda: self.v1.test_helpers.terminal.readers.present_payment_method(
                reader_id, params, _options(account_id)
            ),
            account_id,
        )
        return Reader.from_stripe(reader, account_id)

    # -- events ----------------------------------------------------------------------------------

    def list_events(
        self,
        account_id: str | None = None,
        *,
        created_gte: int | None = None,
        types: Sequence[str] | None = None,
        delivery_success: bool | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events of ``account_id`` (the platform's own when None), newest first, every page."""
        params: dict[str, Any] = {"limit": min(limit or self.page_size, self.page_size)}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        if types:
            params["types"] = list(types)
        if delivery_success is not None:
            params["delivery_success"] = delivery_success
        items = self._list_all(
            lambda: self.v1.events.list(params, _options(account_id)), account_id, limit=limit
        )
        return [Event.from_stripe(item) for item in items]

    def retrieve_event(self, account_id: str | None, event_id: str) -> Event:
        event = self._call(
            lambda: self.v1.events.retrieve(event_id, None, _options(account_id)), account_id
        )
        return Event.from_stripe(_plain(event))

    def construct_event(
        self,
        payload: bytes | str,
        signature_header: str | None,
        secret: str | None = None,
        *,
        tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
    ) -> Event:
        return construct_event(
            payload, signature_header, secret or self.webhook_secret, tolerance=tolerance
        )

    # -- plumbing --------------------------------------------------------------------------------

    def _call(self, operation: Callable[[], Any], account_id: str | None) -> Any:
        """Run one stripe-python call; its object comes back as a plain dict."""
        try:
            return _plain(operation())
        except stripe.StripeError as error:
            raise translate_error(error, account_id) from error

    def _list_all(
        self, first_page: Callable[[], Any], account_id: str | None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a list, following Stripe's pages (up to ``limit`` items)."""

        def collect() -> list[dict[str, Any]]:
            found = []
            for item in first_page().auto_paging_iter():
                found.append(_plain(item))
                if limit is not None and len(found) >= limit:
                    break
            return found

        return cast(list[dict[str, Any]], self._call(collect, account_id))


def construct_event(
    payload: bytes | str,
    signature_header: str | None,
    secret: str,
    *,
    tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
) -> Event:
    """Verify a webhook's ``Stripe-Signature`` against the raw body, then parse the event.

    stripe-python's own verification is used (HMAC-SHA256, constant-time comparison, timestamps
    older than ``tolerance`` seconds refused).
    """
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, tolerance)
    except stripe.SignatureVerificationError as error:
        message = str(error.user_message or error)
        raise WebhookSignatureError(message, code="signature_invalid") from error
    try:
        data = json.loads(payload)
        return Event.from_stripe(data)
    except (ValueError, KeyError, TypeError) as error:
        message = "The webhook body is not a Stripe event."
        raise WebhookSignatureError(message, code="payload_invalid") from error


def _options(account_id: str | None, idempotency_key: str | None = None) -> stripe.RequestOptions:
    options: dict[str, Any] = {}
    if account_id:
        options["stripe_account"] = account_id
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return cast(stripe.RequestOptions, options)


def _plain(value: Any) -> Any:
    if isinstance(value, stripe.StripeObject):
        return value.to_dict(recursive=True)
    return value


def _metadata(metadata: Mapping[str, str | int]) -> dict[str, str]:
    return {str(key): str(value) for key, value in metadata.items()}


def _amount(amount: int) -> int:
    # Money is integers in minor units everywhere; a float here is a bug upstream.
    if isinstance(amount, bool) or not isinstance(amount, int):
        message = f"Amounts are integers in minor units, not {amount!r}."
        raise TypeError(message)
    return amount


# -- choosing the gateway --------------------------------------------------------------------------


def is_real_key(key: str) -> bool:
    return key.startswith(_REAL_KEY_PREFIXES) and key != SIMULATED_SECRET_KEY


def gateway_for(settings: Settings) -> StripeClientGateway:
    """Stripe itself when a real secret key is set; otherwise the fake ("simulated payments").

    ``COMPTOIR_STRIPE_API_BASE``, when set, wins: tests and the demo point it at the fake.
    Simulated payments are refused in production.
    """
    base = settings.stripe_api_base.strip().rstrip("/")
    key = settings.stripe_secret_key
    if not base:
        base = STRIPE_API_BASE if is_real_key(key) else DEFAULT_FAKE_API_BASE
    simulated = urlsplit(base).hostname != "api.stripe.com"
    if simulated and settings.is_production:
        message = (
            "Simulated payments are refused in production: set COMPTOIR_STRIPE_SECRET_KEY to the "
            "platform's Stripe secret key and leave COMPTOIR_STRIPE_API_BASE unset."
        )
        raise GatewayConfigurationError(message)
    if not simulated and not is_real_key(key):
        message = "COMPTOIR_STRIPE_SECRET_KEY must be the platform's Stripe secret key (sk_...)."
        raise GatewayConfigurationError(message)
    return StripeClientGateway(
        key or SIMULATED_SECRET_KEY,
        api_base=base,
        publishable_key=settings.stripe_publishable_key
        or (SIMULATED_PUBLISHABLE_KEY if simulated else ""),
        webhook_secret=settings.stripe_webhook_secret
        or (SIMULATED_WEBHOOK_SECRET if simulated else ""),
        # The fake answers at once; waiting to retry would only slow tests down.
        max_network_retries=0 if simulated else 2,
        simulated=simulated,
    )


def current_gateway() -> StripeGateway:
    """The app's gateway, built from its settings on first use (tests may install another)."""
    gateway = current_app.extensions.get(STRIPE_GATEWAY_EXTENSION)
    if gateway is None:
        gateway = gateway_for(current_settings())
        current_app.extensions[STRIPE_GATEWAY_EXTENSION] = gateway
    return cast(StripeGateway, gateway)
