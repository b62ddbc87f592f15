"""What the gateway returns: small frozen dataclasses cut from Stripe's objects.

Each has ``from_stripe(data)`` taking the object as a plain dict, so an event's ``data_object``
parses the same way as an API answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Account:
    id: str
    country: str | None
    email: str | None
    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool
    default_currency: str | None
    requirements_due: tuple[str, ...]
    disabled_reason: str | None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any]) -> Account:
        requirements = data.get("requirements") or {}
        return cls(
            id=data["id"],
            country=data.get("country"),
            email=data.get("email"),
            details_submitted=bool(data.get("details_submitted")),
            charges_enabled=bool(data.get("charges_enabled")),
            payouts_enabled=bool(data.get("payouts_enabled")),
            default_currency=data.get("default_currency"),
            requirements_due=tuple(requirements.get("currently_due") or ()),
            disabled_reason=requirements.get("disabled_reason"),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class AccountLink:
    url: str
    expires_at: int

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any]) -> AccountLink:
        return cls(url=data["url"], expires_at=int(data["expires_at"]))


@dataclass(frozen=True)
class PaymentError:
    """Why the last payment attempt failed (``last_payment_error``)."""

    message: str | None
    code: str | None
    decline_code: str | None
    type: str | None

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any] | None) -> PaymentError | None:
        if not data:
            return None
        return cls(
            message=data.get("message"),
            code=data.get("code"),
            decline_code=data.get("decline_code"),
            type=data.get("type"),
        )


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    account_id: str | None
    status: str
    amount: int
    currency: str
    amount_received: int
    amount_capturable: int
    application_fee_amount: int | None
    capture_method: str
    client_secret: str | None
    latest_charge: str | None
    payment_method_types: tuple[str, ...]
    last_payment_error: PaymentError | None
    next_action_url: str | None
    created: int
    canceled_at: int | None
    cancellation_reason: str | None
    livemode: bool
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def last_payment_error_message(self) -> str | None:
        return self.last_payment_error.message if self.last_payment_error else None

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any], account_id: str | None = None) -> PaymentIntent:
        next_action = data.get("next_action") or {}
        redirect = next_action.get("redirect_to_url") or {}
        latest_charge = data.get("latest_charge")
        if isinstance(latest_charge, Mapping):
            latest_charge = latest_charge.get("id")
        return cls(
            id=data["id"],
            account_id=account_id,
            status=data["status"],
            amount=int(data["amount"]),
            currency=data["currency"],
            amount_received=int(data.get("amount_received") or 0),
            amount_capturable=int(data.get("amount_capturable") or 0),
            application_fee_amount=data.get("application_fee_amount"),
            capture_method=data.get("capture_method") or "automatic",
            client_secret=data.get("client_secret"),
            latest_charge=latest_charge,
            payment_method_types=tuple(data.get("payment_method_types") or ()),
            last_payment_error=PaymentError.from_stripe(data.get("last_payment_error")),
            next_action_url=redirect.get("url"),
            created=int(data.get("created") or 0),
            canceled_at=data.get("canceled_at"),
            cancellation_reason=data.get("cancellation_reason"),
            livemode=bool(data.get("livemode")),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Charge:
    id: str
    account_id: str | None
    status: str
    amount: int
    amount_captured: int
    amount_refunded: int
    currency: str
    captured: bool
    refunded: bool
    payment_intent: str | None
    payment_method_type: str | None
    card_brand: str | None
    card_last4: str | None
    application_fee_amount: int | None
    failure_code: str | None
    failure_message: str | None
    receipt_url: str | None

    @property
    def refundable_amount(self) -> int:
        return max(0, self.amount_captured - self.amount_refunded)

    @property
    def refund_needs_card_present(self) -> bool:
        """Interac debit taken in person is refunded on a reader, with the card."""
        return self.payment_method_type == "interac_present"

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any], account_id: str | None = None) -> Charge:
        details = data.get("payment_method_details") or {}
        method_type = details.get("type")
        card = details.get(method_type) or {} if method_type else {}
        return cls(
            id=data["id"],
            account_id=account_id,
            status=data["status"],
            amount=int(data["amount"]),
            amount_captured=int(data.get("amount_captured") or 0),
            amount_refunded=int(data.get("amount_refunded") or 0),
            currency=data["currency"],
            captured=bool(data.get("captured")),
            refunded=bool(data.get("refunded")),
            payment_intent=data.get("payment_intent"),
            payment_method_type=method_type,
            card_brand=card.get("brand"),
            card_last4=card.get("last4"),
            application_fee_amount=data.get("application_fee_amount"),
            failure_code=data.get("failure_code"),
            failure_message=data.get("failure_message"),
            receipt_url=data.get("receipt_url"),
        )


@dataclass(frozen=True)
class Refund:
    id: str
    account_id: str | None
    status: str
    amount: int
    currency: str
    payment_intent: str | None
    charge: str | None
    reason: str | None
    created: int
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any], account_id: str | None = None) -> Refund:
        return cls(
            id=data["id"],
            account_id=account_id,
            status=data["status"],
            amount=int(data["amount"]),
            currency=data["currency"],
            payment_intent=data.get("payment_intent"),
            charge=data.get("charge"),
            reason=data.get("reason"),
            created=int(data.get("created") or 0),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Address:
    country: str
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    postal_code: str | None = None
    state: str | None = None

    def params(self) -> dict[str, str]:
        values = {
            "country": self.country,
            "line1": self.line1,
            "line2": self.line2,
            "city": self.city,
            "postal_code": self.postal_code,
            "state": self.state,
        }
        return {name: value for name, value in values.items() if value}


@dataclass(frozen=True)
class TerminalLocation:
    id: str
    account_id: str | None
    display_name: str
    address: Address

    @classmethod
    def from_stripe(
        cls, data: Mapping[str, Any], account_id: str | None = None
    ) -> TerminalLocation:
        address = data.get("address") or {}
        return cls(
            id=data["id"],
            account_id=account_id,
            display_name=data.get("display_name") or "",
            address=Address(
                country=address.get("country") or "",
                line1=address.get("line1"),
                line2=address.get("line2"),
                city=address.get("city"),
                postal_code=address.get("postal_code"),
                state=address.get("state"),
            ),
        )


@dataclass(frozen=True)
class ReaderAction:
    type: str
    status: str  # in_progress, succeeded, failed
    failure_code: str | None
    failure_message: str | None
    payment_intent: str | None
    refund: str | None

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any] | None) -> ReaderAction | None:
        if not data:
            return None
        action_type = data.get("type") or ""
        details = data.get(action_type) or {}
        return cls(
            type=action_type,
            status=data.get("status") or "",
            failure_code=data.get("failure_code"),
            failure_message=data.get("failure_message"),
            payment_intent=details.get("payment_intent"),
            refund=details.get("refund"),
        )


@dataclass(frozen=True)
class Reader:
    id: str
    account_id: str | None
    label: str
    location: str | None
    status: str | None  # online, offline
    device_type: str
    serial_number: str
    action: ReaderAction | None

    @property
    def busy(self) -> bool:
        return self.action is not None and self.action.status == "in_progress"

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any], account_id: str | None = None) -> Reader:
        location = data.get("location")
        if isinstance(location, Mapping):
            location = location.get("id")
        return cls(
            id=data["id"],
            account_id=account_id,
            label=data.get("label") or "",
            location=location,
            status=data.get("status"),
            device_type=data.get("device_type") or "",
            serial_number=data.get("serial_number") or "",
            action=ReaderAction.from_stripe(data.get("action")),
        )


@dataclass(frozen=True)
class Event:
    """A Stripe event; ``data_object`` is the object's snapshot as a plain dict (parse it with
    ``PaymentIntent.from_stripe(event.data_object, event.account)`` and the like)."""

    id: str
    type: str
    account: str | None
    created: int
    livemode: bool
    api_version: str | None
    pending_webhooks: int
    request_id: str | None
    request_idempotency_key: str | None
    data_object: Mapping[str, Any] = field(hash=False)
    previous_attributes: Mapping[str, Any] | None = field(default=None, hash=False)

    @property
    def object_id(self) -> str | None:
        return self.data_object.get("id")

    @property
    def object_type(self) -> str | None:
        return self.data_object.get("object")

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any]) -> Event:
        body = data.get("data") or {}
        request = data.get("request") or {}
        if not isinstance(request, Mapping):  # API versions before 2017 sent the id alone
            request = {"id": request, "idempotency_key": None}
        return cls(
            id=data["id"],
            type=data["type"],
            account=data.get("account"),
            created=int(data.get("created") or 0),
            livemode=bool(data.get("livemode")),
            api_version=data.get("api_version"),
            pending_webhooks=int(data.get("pending_webhooks") or 0),
            request_id=request.get("id"),
            request_idempotency_key=request.get("idempotency_key"),
            data_object=dict(body.get("object") or {}),
            previous_attributes=body.get("previous_attributes"),
        )
