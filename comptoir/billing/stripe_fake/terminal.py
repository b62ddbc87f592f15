"""Terminal: locations, simulated readers, server-driven actions and the present_payment_method
test helper that plays the customer's card."""

from __future__ import annotations

from typing import Any

from comptoir.billing.stripe_fake import params as p
from comptoir.billing.stripe_fake.cards import (
    DEFAULT_CARD_PRESENT_NUMBER,
    DEFAULT_INTERAC_NUMBER,
    Outcome,
    TestCard,
    card_for_number,
)
from comptoir.billing.stripe_fake.charges import decline, new_payment_method, succeed
from comptoir.billing.stripe_fake.errors import StripeFakeError, missing, unexpected_state
from comptoir.billing.stripe_fake.payments import CARD_PRESENT_TYPES, get_intent
from comptoir.billing.stripe_fake.refunds import charge_to_refund, refund_charge, refundable_amount
from comptoir.billing.stripe_fake.state import FakeStripe, Store, random_id

# Stripe's registration codes for simulated readers, and the device each one registers.
SIMULATED_DEVICES = {
    "simulated-wpe": "simulated_wisepos_e",
    "simulated-s700": "simulated_stripe_s700",
    "simulated-s710": "simulated_stripe_s710",
}

BUSY_MESSAGE = (
    "Reader is currently busy processing another request. Wait for the current action to finish, "
    "or cancel it with POST /v1/terminal/readers/:id/cancel_action."
)
OFFLINE_MESSAGE = (
    "Reader is currently offline, please ensure the reader is powered on and connected to the "
    "internet before retrying your request."
)


# -- locations -----------------------------------------------------------------------------------


def create_location(fake: FakeStripe, store: Store, params: dict[str, Any]) -> dict[str, Any]:
    p.allow(params, ("display_name", "address", "metadata", "configuration_overrides"))
    display_name = p.string(params, "display_name", required=True)
    address = p.mapping(params, "address")
    if not address:
        raise p.parameter_missing("address")
    if not address.get("country"):
        raise p.parameter_missing("address[country]")
    fields = ("city", "country", "line1", "line2", "postal_code", "state")
    location = fake.fixtures.build(
        "terminal.location",
        id=random_id("tml", 14),
        address={name: address.get(name) or None for name in fields},
        display_name=display_name,
        livemode=False,
        metadata=p.metadata(params),
    )
    fake.put(store, location)
    return location


def retrieve_location(
    fake: FakeStripe, store: Store, params: dict[str, Any], location_id: str
) -> dict[str, Any]:
    p.allow(params, ())
    return fake.get(store, location_id, "terminal.location", "terminal.location")


def delete_location(
    fake: FakeStripe, store: Store, params: dict[str, Any], location_id: str
) -> dict[str, Any]:
    p.allow(params, ())
    location = retrieve_location(fake, store, {}, location_id)
    del store.objects[location["id"]]
    return fake.fixtures.build("deleted_terminal.location", id=location["id"], deleted=True)


# -- readers -------------------------------------------------------------------------------------


def register_reader(fake: FakeStripe, store: Store, params: dict[str, Any]) -> dict[str, Any]:
    p.allow(params, ("registration_code", "label", "location", "metadata"))
    code = p.string(params, "registration_code", required=True)
    location_id = p.string(params, "location", required=True)
    assert code is not None
    assert location_id is not None
    fake.get(store, location_id, "terminal.location", "terminal.location", "location")
    if not code.startswith("simulated-"):
        message = (
            f"The registration code '{code}' is invalid or has expired. Generate a new one on "
            "the reader (a test account registers simulated readers: simulated-wpe)."
        )
        raise StripeFakeError(400, message, param="registration_code")
    serial = f"{code}-{random_id('x', 8)[2:]}"
    reader = fake.fixtures.build(
        "terminal.reader",
        id=random_id("tmr", 14),
        action=None,
        device_sw_version="",
        device_type=SIMULATED_DEVICES.get(code, "simulated_wisepos_e"),
        ip_address="0.0.0.0",  # noqa: S104 - what Stripe reports for a simulated reader
        label=p.string(params, "label") or serial,
        livemode=False,
        location=location_id,
        metadata=p.metadata(params),
        serial_number=serial,
        status="online",
        last_seen_at=fake.now() * 1000,
    )
    fake.put(store, reader)
    return reader


def get_reader(fake: FakeStripe, store: Store, reader_id: str) -> dict[str, Any]:
    return fake.get(store, reader_id, "terminal.reader", "terminal.reader")


def retrieve_reader(
    fake: FakeStripe, store: Store, params: dict[str, Any], reader_id: str
) -> dict[str, Any]:
    p.allow(params, ())
    return get_reader(fake, store, reader_id)


def update_reader(
    fake: FakeStripe, store: Store, params: dict[str, Any], reader_id: str
) -> dict[str, Any]:
    p.allow(params, ("label", "metadata"))
    reader = get_reader(fake, store, reader_id)
    label = p.string(params, "label")
    if label is not None:
        reader["label"] = label
    reader["metadata"] = p.metadata(params, reader["metadata"])
    return reader


def delete_reader(
    fake: FakeStripe, store: Store, params: dict[str, Any], reader_id: str
) -> dict[str, Any]:
    p.allow(params, ())
    reader = get_reader(fake, store, reader_id)
    del store.objects[reader["id"]]
    return fake.fixtures.build(
        "deleted_terminal.reader",
        id=reader["id"],
        deleted=True,
        device_type=reader["device_type"],
        serial_number=reader["serial_number"],
    )


def _ready(reader: dict[str, Any]) -> None:
    if reader["status"] != "online":
        raise StripeFakeError(
            400, OFFLINE_MESSAGE, code="terminal_reader_offline", should_retry=False
        )
    action = reader.get("action")
    if action and action.get("status") == "in_progress":
        raise StripeFakeError(409, BUSY_MESSAGE, code="terminal_reader_busy", should_retry=False)


def process_payment_intent(
    fake: FakeStripe, store: Store, params: dict[str, Any], reader_id: str
) -> dict[str, Any]:
    p.allow(params, ("payment_intent", "process_config"))
    reader = get_reader(fake, store, reader_id)
    intent_id = p.string(params, "payment_intent", required=True)
    assert intent_id is not None
    intent = get_intent(fake, store, intent_id, "payment_intent")
    _ready(reader)
    if not set(intent["payment_method_types"]) & set(CARD_PRESENT_TYPES):
        message = (
            "This PaymentIntent cannot be processed on a reader: its payment_method_types must "
            "include card_present or interac_present."
        )
        raise StripeFakeError(400, message, param="payment_intent")
    if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
        message = (
            f"This PaymentIntent cannot be processed because it has a status of "
            f"{intent['status']}; only requires_payment_method or requires_confirmation can."
        )
        raise unexpected_state(message)
    reader["action"] = {
        "failure_code": None,
        "failure_message": None,
        "process_payment_intent": {"payment_intent": intent_id, "process_config": {}},
        "status": "in_progress",
        "type": "process_payment_intent",
    }
    return reader


def refund_payment(
    fake: FakeStripe, store: Store, params: dict[str, Any], reader_id: str
) -> dict[str, Any]:
    p.allow(
        params,
        (
            "payment_intent",
            "charge",
            "amount",
            "refund_application_fee",
            "reverse_transfer",
            "metadata",
        ),
    )
    reader = get_reader(fake, store, reader_id)
    charge = charge_to_refund(
        fake,
        store,
        intent_id=p.string(params, "payment_intent"),
        charge_id=p.string(params, "charge"),
    )
    amount = refundable_amount(charge, p.integer(params, "amount", minimum=1))
    _ready(reader)
    reader["action"] = {
        "failure_code": None,
        "failure_message": None,
        "refund_payment": {
            "amount": amount,
            "charge": charge["id"],
            "metadata": p.metadata(params),
            "payment_intent": charge["payment_intent"],
            "reason": None,
            "refund": None,
            "refund_application_fee": p.boolean(params, "refund_application_fee"),
            "reverse_transfer": None,
        },
        "status": "in_progress",
        "type": "refund_payment",
    }
    return reader


def cancel_action(
    fake: FakeStripe, store: Store, params: dict[str, Any], reader_id: str
) -> dict[str, Any]:
    p.allow(params, ())
    reader = get_reader(fake, store, reader_id)
    action = reader.get("action")
    if not action or action.get("status") != "in_progress":
        message = f"Reader {reader_id} has no action in progress to cancel."
        raise StripeFakeError(400, message)
    reader["action"] = None
    return reader


def present_payment_method(
    fake: FakeStripe, store: Store, params: dict[str, Any], reader_id: str
) -> dict[str, Any]:
    p.allow(params, ("type", "card_present", "interac_present", "amount_tip", "card"))
    reader = get_reader(fake, store, reader_id)
    action = reader.get("action")
    if not action or action.get("status") != "in_progress":
        message = f"Reader {reader_id} has no action in progress waiting for a card."
        raise StripeFakeError(400, message)
    method_type = p.choice(params, "type", CARD_PRESENT_TYPES, default="card_present")
    assert method_type is not None
    details = p.mapping(params, method_type) or {}
    default = (
        DEFAULT_INTERAC_NUMBER if method_type == "interac_present" else DEFAULT_CARD_PRESENT_NUMBER
    )
    number = str(details.get("number") or default)
    card = card_for_number(number)
    if card is None:
        raise p.parameter_invalid(f"{method_type}[number]", "Your card number is incorrect.")
    if action["type"] == "refund_payment":
        return _present_for_refund(fake, store, reader, action, card=card)
    intent = get_intent(fake, store, action["process_payment_intent"]["payment_intent"])
    if method_type not in intent["payment_method_types"]:
        message = f"This PaymentIntent does not accept {method_type}."
        raise p.parameter_invalid("type", message)
    tip = p.integer(params, "amount_tip", minimum=0) or 0
    if tip:
        intent["amount"] += tip
        intent["amount_details"] = {"tip": {"amount": tip}}
    payment_method = new_payment_method(fake, store, card, method_type)
    if card.outcome is Outcome.DECLINE:
        error = decline(
            fake,
            store,
            intent,
            card=card,
            payment_method=payment_method,
            method_type=method_type,
        )
        action.update(status="failed", failure_code=error.code, failure_message=error.message)
        fake.record_event(store, "terminal.reader.action_failed", reader)
        return reader
    succeed(fake, store, intent, card=card, payment_method=payment_method, method_type=method_type)
    action["status"] = "succeeded"
    fake.record_event(store, "terminal.reader.action_succeeded", reader)
    return reader


def _present_for_refund(
    fake: FakeStripe,
    store: Store,
    reader: dict[str, Any],
    action: dict[str, Any],
    *,
    card: TestCard,
) -> dict[str, Any]:
    request = action["refund_payment"]
    charge = fake.get(store, request["charge"], "charge", "charge", "charge")
    if card.outcome is Outcome.DECLINE:
        action.update(
            status="failed",
            failure_code=card.code or "card_declined",
            failure_message=card.message or "Your card was declined.",
        )
        fake.record_event(store, "terminal.reader.action_failed", reader)
        return reader
    try:
        amount = refundable_amount(charge, request["amount"])
    except StripeFakeError as error:
        action.update(status="failed", failure_code=error.code, failure_message=error.message)
        fake.record_event(store, "terminal.reader.action_failed", reader)
        return reader
    refund = refund_charge(
        fake,
        store,
        charge,
        amount,
        refund_application_fee=request["refund_application_fee"],
        reason=request["reason"],
        metadata=request["metadata"],
    )
    request["refund"] = refund["id"]
    action["status"] = "succeeded"
    fake.record_event(store, "terminal.reader.action_succeeded", reader)
    return reader


def set_reader_status(fake: FakeStripe, reader_id: str, status: str) -> dict[str, Any]:
    """Switch a simulated reader ``online`` or ``offline`` (unplugged, out of network)."""
    if status not in ("online", "offline"):
        raise p.parameter_invalid("status", "status must be online or offline")
    with fake.lock:
        found = fake.locate(reader_id)
        if found is None or found[1].get("object") != "terminal.reader":
            raise missing("terminal.reader", reader_id)
        reader = found[1]
        reader["status"] = status
        return reader
