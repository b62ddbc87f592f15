"""PaymentIntents on the account of the request: create, confirm online, 3-D Secure, capture,
cancel."""

from __future__ import annotations

import secrets
from typing import Any

from comptoir.billing.stripe_fake import params as p
from comptoir.billing.stripe_fake.cards import (
    TEST_PAYMENT_METHODS,
    Outcome,
    TestCard,
    card_for_number,
)
from comptoir.billing.stripe_fake.charges import decline, new_payment_method, succeed
from comptoir.billing.stripe_fake.errors import DOC_URL, StripeFakeError, missing, unexpected_state
from comptoir.billing.stripe_fake.state import FakeStripe, Store, random_id

PAYMENT_METHOD_TYPES = ("card", "card_present", "interac_present")
CARD_PRESENT_TYPES = ("card_present", "interac_present")
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
CURRENCIES = frozenset({"cad", "usd", "eur", "gbp", "chf", "aud", "jpy"})
ZERO_DECIMAL_CURRENCIES = frozenset({"jpy"})
MINIMUM_AMOUNTS = {"jpy": 50, "gbp": 30}
MAXIMUM_AMOUNT = 99_999_999

CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
AUTHENTICATION_FAILED = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data "
    "or a new PaymentMethod to attempt to fulfill this PaymentIntent again."
)


def format_amount(amount: int, currency: str) -> str:
    if currency in ZERO_DECIMAL_CURRENCIES:
        return f"{amount} {currency}"
    return f"${amount / 100:.2f} {currency}"


def create_payment_intent(fake: FakeStripe, store: Store, params: dict[str, Any]) -> dict[str, Any]:
    p.allow(
        params,
        (
            "amount",
            "currency",
            "application_fee_amount",
            "capture_method",
            "confirm",
            "description",
            "metadata",
            "payment_method",
            "payment_method_data",
            "payment_method_types",
            "receipt_email",
            "return_url",
            "statement_descriptor_suffix",
        ),
    )
    amount = p.integer(params, "amount", required=True)
    currency = (p.string(params, "currency", required=True) or "").lower()
    assert amount is not None
    if currency not in CURRENCIES:
        message = f"Invalid currency: {currency}. The fake knows {', '.join(sorted(CURRENCIES))}."
        raise p.parameter_invalid("currency", message)
    minimum = MINIMUM_AMOUNTS.get(currency, 50)
    if amount < minimum:
        message = f"Amount must be at least {format_amount(minimum, currency)}"
        raise StripeFakeError(400, message, code="amount_too_small", param="amount")
    if amount > MAXIMUM_AMOUNT:
        message = f"Amount must be no more than {format_amount(MAXIMUM_AMOUNT, currency)}"
        raise StripeFakeError(400, message, code="amount_too_large", param="amount")
    fee = p.integer(params, "application_fee_amount", minimum=0)
    if fee is not None and store.account_id is None:
        message = (
            "Can only apply an application_fee_amount when the PaymentIntent is attempting a "
            "direct payment (using an OAuth key or Stripe-Account header) or destination payment "
            "(using `transfer_data[destination]`)."
        )
        raise StripeFakeError(400, message, param="application_fee_amount")
    if fee is not None and fee > amount:
        message = "The application fee cannot be greater than the amount of the payment."
        raise StripeFakeError(400, message, param="application_fee_amount")
    types = p.string_list(params, "payment_method_types") or ["card"]
    for method_type in types:
        if method_type not in PAYMENT_METHOD_TYPES:
            message = f'The payment method type "{method_type}" is invalid.'
            raise p.parameter_invalid("payment_method_types", message)
    if "interac_present" in types and currency != "cad":
        message = (
            f"The currency provided ({currency}) is invalid for one or more payment method types "
            "on this PaymentIntent: interac_present accepts cad only."
        )
        raise p.parameter_invalid("currency", message)
    capture_method = p.choice(params, "capture_method", CAPTURE_METHODS, default="automatic_async")
    intent_id = random_id("pi")
    intent = fake.fixtures.build(
        "payment_intent",
        id=intent_id,
        amount=amount,
        amount_capturable=0,
        amount_details={"tip": {}},
        amount_received=0,
        application=fake.platform_application if store.account_id else None,
        application_fee_amount=fee,
        automatic_payment_methods=None,
        canceled_at=None,
        cancellation_reason=None,
        capture_method=capture_method,
        client_secret=f"{intent_id}_secret_{secrets.token_urlsafe(18).replace('-', 'x')}",
        confirmation_method="automatic",
        created=fake.now(),
        currency=currency,
        customer=None,
        description=p.string(params, "description"),
        last_payment_error=None,
        latest_charge=None,
        livemode=False,
        metadata=p.metadata(params),
        next_action=None,
        on_behalf_of=None,
        payment_method=None,
        payment_method_configuration_details=None,
        payment_method_options=_payment_method_options(types),
        payment_method_types=types,
        processing=None,
        receipt_email=p.string(params, "receipt_email"),
        review=None,
        setup_future_usage=None,
        shipping=None,
        statement_descriptor=None,
        statement_descriptor_suffix=p.string(params, "statement_descriptor_suffix"),
        status="requires_payment_method",
        transfer_data=None,
        transfer_group=None,
        source=None,
        excluded_payment_method_types=None,
        customer_account=None,
        managed_payments={"enabled": False},
    )
    fake.put(store, intent)
    fake.record_event(store, "payment_intent.created", intent)
    if p.boolean(params, "confirm"):
        confirm_params: dict[str, Any] = {
            key: params[key]
            for key in ("payment_method", "payment_method_data", "return_url", "receipt_email")
            if key in params
        }
        return confirm_payment_intent(fake, store, confirm_params, intent_id)
    return intent


def _payment_method_options(types: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if "card" in types:
        options["card"] = {
            "installments": None,
            "mandate_options": None,
            "network": None,
            "request_three_d_secure": "automatic",
        }
    if "card_present" in types:
        options["card_present"] = {
            "request_extended_authorization": False,
            "request_incremental_authorization_support": False,
        }
    if "interac_present" in types:
        options["interac_present"] = {}
    return options


def get_intent(fake: FakeStripe, store: Store, intent_id: str, param: str = "id") -> dict[str, Any]:
    return fake.get(store, intent_id, "payment_intent", "payment_intent", param)


def retrieve_payment_intent(
    fake: FakeStripe, store: Store, params: dict[str, Any], intent_id: str
) -> dict[str, Any]:
    p.allow(params, ("client_secret",))
    return get_intent(fake, store, intent_id)


def confirm_payment_intent(
    fake: FakeStripe, store: Store, params: dict[str, Any], intent_id: str
) -> dict[str, Any]:
    p.allow(
        params,
        ("payment_method", "payment_method_data", "return_url", "receipt_email", "use_stripe_sdk"),
    )
    intent = get_intent(fake, store, intent_id)
    if intent["status"] not in CONFIRMABLE:
        message = (
            f"You cannot confirm this PaymentIntent because it has a status of {intent['status']}. "
            "Only a PaymentIntent with one of the following statuses may be confirmed: "
            "requires_confirmation, requires_payment_method, requires_action."
        )
        raise unexpected_state(message)
    if "card" not in intent["payment_method_types"]:
        message = (
            "The PaymentMethod provided (card) is not allowed for this PaymentIntent. Present a "
            "card on a reader instead (POST /v1/terminal/readers/:id/process_payment_intent)."
        )
        raise StripeFakeError(
            400, message, code="payment_intent_incompatible_payment_method", param="payment_method"
        )
    receipt_email = p.string(params, "receipt_email")
    if receipt_email:
        intent["receipt_email"] = receipt_email
    card, payment_method = resolve_card(fake, store, params)
    return pay_online(
        fake,
        store,
        intent,
        card=card,
        payment_method=payment_method,
        return_url=p.string(params, "return_url"),
    )


def resolve_card(
    fake: FakeStripe, store: Store, params: dict[str, Any]
) -> tuple[TestCard, dict[str, Any]]:
    """The test card a confirmation names (``pm_card_…``, a PaymentMethod id or card data)."""
    reference = p.string(params, "payment_method")
    data = p.mapping(params, "payment_method_data")
    number: str | None = None
    existing: dict[str, Any] | None = None
    if reference:
        if reference in TEST_PAYMENT_METHODS:
            number = TEST_PAYMENT_METHODS[reference]
        else:
            existing = store.objects.get(reference)
            if existing is None or existing.get("object") != "payment_method":
                raise missing("PaymentMethod", reference, "payment_method")
            number = fake.hidden(store, reference)["number"]
    elif data:
        if data.get("type") != "card":
            raise p.parameter_invalid("payment_method_data[type]", "Only card data is simulated.")
        card_data = data.get("card")
        number = card_data.get("number") if isinstance(card_data, dict) else None
        if not number:
            raise p.parameter_missing("payment_method_data[card][number]")
    else:
        message = (
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "Specify a payment method (payment_method or payment_method_data)."
        )
        raise unexpected_state(message)
    card = card_for_number(number)
    if card is None:
        raise StripeFakeError(
            402,
            "Your card number is incorrect.",
            type="card_error",
            code="incorrect_number",
            param="number",
        )
    payment_method = existing or new_payment_method(fake, store, card, "card")
    return card, payment_method


def pay_online(
    fake: FakeStripe,
    store: Store,
    intent: dict[str, Any],
    *,
    card: TestCard,
    payment_method: dict[str, Any],
    return_url: str | None,
) -> dict[str, Any]:
    intent["payment_method"] = payment_method["id"]
    if card.outcome is Outcome.AUTHENTICATE:
        token = fake.new_link(
            "3ds", store.account_id, intent["id"], return_url=return_url, number=card.number
        )
        intent.update(
            status="requires_action",
            last_payment_error=None,
            next_action={
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "return_url": return_url,
                    "url": fake.url(f"/_fake/3ds/{token}"),
                },
            },
        )
        fake.record_event(store, "payment_intent.requires_action", intent)
        return intent
    if card.outcome is Outcome.DECLINE:
        raise decline(
            fake, store, intent, card=card, payment_method=payment_method, method_type="card"
        )
    return succeed(
        fake, store, intent, card=card, payment_method=payment_method, method_type="card"
    )


def authenticate(
    fake: FakeStripe, token: str, *, approve: bool
) -> tuple[dict[str, Any], str | None]:
    """Complete the 3-D Secure page behind ``token``; returns the intent and where to go next."""
    with fake.lock:
        link = fake.links.get(token)
        if link is None or link.kind != "3ds":
            raise missing("3-D Secure session", token)
        store = fake.store_for(link.account_id)
        intent = get_intent(fake, store, link.object_id)
        return_url = link.data.get("return_url")
        if link.used or intent["status"] != "requires_action":
            return intent, return_url
        link.used = True
        card = card_for_number(link.data["number"])
        payment_method = store.objects[intent["payment_method"]]
        assert card is not None
        if approve:
            succeed(
                fake,
                store,
                intent,
                card=card,
                payment_method=payment_method,
                method_type="card",
                three_d_secure=True,
            )
        else:
            intent.update(
                status="requires_payment_method",
                payment_method=None,
                next_action=None,
                last_payment_error={
                    "code": "payment_intent_authentication_failure",
                    "doc_url": DOC_URL + "payment-intent-authentication-failure",
                    "message": AUTHENTICATION_FAILED,
                    "payment_method": payment_method,
                    "type": "invalid_request_error",
                },
            )
            fake.record_event(store, "payment_intent.payment_failed", intent)
        return intent, return_url


def capture_payment_intent(
    fake: FakeStripe, store: Store, params: dict[str, Any], intent_id: str
) -> dict[str, Any]:
    p.allow(params, ("amount_to_capture", "application_fee_amount", "metadata"))
    intent = get_intent(fake, store, intent_id)
    if intent["status"] != "requires_capture":
        message = (
            f"This PaymentIntent could not be captured because it has a status of "
            f"{intent['status']}. Only a PaymentIntent with one of the following statuses may be "
            "captured: requires_capture."
        )
        raise unexpected_state(message)
    amount = p.integer(params, "amount_to_capture", minimum=1) or intent["amount_capturable"]
    if amount > intent["amount_capturable"]:
        message = "The amount to capture cannot be greater than the amount capturable."
        raise StripeFakeError(400, message, code="amount_too_large", param="amount_to_capture")
    charge = store.objects[intent["latest_charge"]]
    charge.update(
        captured=True,
        amount_captured=amount,
        amount_refunded=intent["amount"] - amount,
        refunded=amount == 0,
        balance_transaction=random_id("txn"),
    )
    intent.update(
        status="succeeded",
        amount_received=amount,
        amount_capturable=0,
        metadata=p.metadata(params, intent["metadata"]),
    )
    fake.record_event(store, "charge.captured", charge)
    fake.record_event(store, "payment_intent.succeeded", intent)
    return intent


def cancel_payment_intent(
    fake: FakeStripe, store: Store, params: dict[str, Any], intent_id: str
) -> dict[str, Any]:
    p.allow(params, ("cancellation_reason",))
    intent = get_intent(fake, store, intent_id)
    reason = p.choice(
        params,
        "cancellation_reason",
        ("duplicate", "fraudulent", "requested_by_customer", "abandoned"),
    )
    if intent["status"] not in CANCELABLE:
        message = (
            f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. "
            "Only a PaymentIntent with one of the following statuses may be canceled: "
            f"{', '.join(CANCELABLE)}."
        )
        raise unexpected_state(message)
    if intent["status"] == "requires_capture":
        charge = store.objects[intent["latest_charge"]]
        charge.update(amount_refunded=charge["amount"], refunded=True)
    intent.update(
        status="canceled",
        canceled_at=fake.now(),
        cancellation_reason=reason,
        amount_capturable=0,
        next_action=None,
    )
    for reader in fake.objects_of(store, "terminal.reader"):
        action = reader.get("action") or {}
        running = action.get("process_payment_intent") or {}
        if action.get("status") == "in_progress" and running.get("payment_intent") == intent_id:
            reader["action"] = None
    fake.record_event(store, "payment_intent.canceled", intent)
    return intent
