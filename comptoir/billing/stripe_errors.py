"""The gateway's exceptions: what Stripe refused, with a message for people and Stripe's code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import stripe
from flask_babel import gettext as _

from comptoir.billing.stripe_objects import PaymentIntent
from comptoir.platform.settings import SettingsError

_READER_CODES = frozenset(
    {"terminal_reader_busy", "terminal_reader_offline", "terminal_reader_timeout"}
)


class StripeGatewayError(Exception):
    """Stripe refused or could not be reached. ``message`` is Stripe's (English, for logs);
    ``user_message`` is for people, in their language; ``code`` is Stripe's error code."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.param = param
        self.decline_code = decline_code
        self.request_id = request_id

    @property
    def user_message(self) -> str:
        for key in (self.decline_code, self.code):
            if key and key in _USER_MESSAGES:
                return _USER_MESSAGES[key]()
        return self._default_user_message()

    def _default_user_message(self) -> str:
        return _("Stripe refused the request: %(reason)s", reason=self.message)

    def __str__(self) -> str:
        return f"{self.message} (code: {self.code})" if self.code else self.message


class CardDeclinedError(StripeGatewayError):
    """The card was declined; ``payment_intent`` is the intent as Stripe left it, when known."""

    def __init__(
        self, message: str, *, payment_intent: PaymentIntent | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.payment_intent = payment_intent

    def _default_user_message(self) -> str:
        return _("Your card was declined.")


class InvalidRequestError(StripeGatewayError):
    """Stripe refused the request as made (a bad amount, a state that does not allow it...)."""


class StripeNotFoundError(InvalidRequestError):
    """No such object on this account (or the account itself is unknown or disconnected)."""


class ReaderUnavailableError(InvalidRequestError):
    """The Terminal reader is busy with another action, offline, or timed out."""

    def _default_user_message(self) -> str:
        return _("The reader is not available right now.")


class IdempotencyConflictError(StripeGatewayError):
    """The idempotency key was already used with different parameters."""


class StripeUnavailableError(StripeGatewayError):
    """Network trouble, rate limits or an error on Stripe's side: try again later."""

    retryable = True

    def _default_user_message(self) -> str:
        return _("Stripe cannot be reached right now. Try again in a moment.")


class StripeAuthenticationError(StripeGatewayError):
    """The platform's API key is wrong or lacks a permission: a configuration problem."""

    def _default_user_message(self) -> str:
        return _("Payments are not configured correctly. Contact the platform's operators.")


class WebhookSignatureError(StripeGatewayError):
    """A webhook's ``Stripe-Signature`` is missing, forged, or older than the tolerance."""

    def _default_user_message(self) -> str:
        return _("The webhook signature is not valid.")


class GatewayConfigurationError(SettingsError):
    """Simulated payments were about to run in production."""


_USER_MESSAGES = {
    "card_declined": lambda: _("Your card was declined."),
    "generic_decline": lambda: _("Your card was declined."),
    "insufficient_funds": lambda: _("Your card has insufficient funds."),
    "lost_card": lambda: _("Your card was declined."),
    "stolen_card": lambda: _("Your card was declined."),
    "expired_card": lambda: _("Your card has expired."),
    "incorrect_cvc": lambda: _("Your card's security code is incorrect."),
    "incorrect_number": lambda: _("Your card number is incorrect."),
    "processing_error": lambda: _(
        "An error occurred while processing your card. Try again in a little bit."
    ),
    "payment_intent_authentication_failure": lambda: _(
        "Your bank could not authenticate the payment. Try again or use another card."
    ),
    "terminal_reader_busy": lambda: _(
        "The reader is busy with another action. Wait for it to finish or cancel it."
    ),
    "terminal_reader_offline": lambda: _(
        "The reader is offline. Check that it is switched on and connected to the internet."
    ),
    "terminal_reader_timeout": lambda: _("The reader did not answer in time. Try again."),
    "charge_already_refunded": lambda: _("This payment has already been refunded in full."),
    "amount_too_large": lambda: _("The amount is larger than what this payment allows."),
    "amount_too_small": lambda: _("The amount is below the minimum a card payment allows."),
    "charge_not_refundable": lambda: _(
        "This payment cannot be refunded this way. An Interac debit is refunded with the card "
        "present on a reader."
    ),
    "account_invalid": lambda: _("The Stripe account is no longer connected to the platform."),
    "resource_missing": lambda: _("Stripe has no such object for this account."),
}


def translate_error(error: stripe.StripeError, account_id: str | None = None) -> StripeGatewayError:
    """One of the gateway's exceptions for a stripe-python error."""
    body: Mapping[str, Any] = {}
    if isinstance(error.json_body, Mapping):
        candidate = error.json_body.get("error")
        if isinstance(candidate, Mapping):
            body = candidate
    code = body.get("code") or error.code
    message = body.get("message") or error.user_message or str(error) or type(error).__name__
    details: dict[str, Any] = {
        "code": code,
        "http_status": error.http_status,
        "param": body.get("param"),
        "decline_code": body.get("decline_code"),
        "request_id": error.request_id,
    }
    if isinstance(error, stripe.CardError):
        raw_intent = body.get("payment_intent")
        intent = PaymentIntent.from_stripe(raw_intent, account_id) if raw_intent else None
        return CardDeclinedError(message, payment_intent=intent, **details)
    status = error.http_status or 0
    # The first rule that holds names the class; anything else is trouble on Stripe's side.
    rules: tuple[tuple[bool, type[StripeGatewayError]], ...] = (
        (isinstance(error, stripe.IdempotencyError), IdempotencyConflictError),
        (
            isinstance(error, stripe.RateLimitError | stripe.APIConnectionError),
            StripeUnavailableError,
        ),
        (code in _READER_CODES, ReaderUnavailableError),
        (code == "account_invalid" or status == 404, StripeNotFoundError),
        (
            isinstance(error, stripe.AuthenticationError | stripe.PermissionError),
            StripeAuthenticationError,
        ),
        (400 <= status < 500, InvalidRequestError),
    )
    chosen = next((kind for holds, kind in rules if holds), StripeUnavailableError)
    return chosen(message, **details)
