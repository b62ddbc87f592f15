"""Refunds of captured charges: through the API, or with the card present on a reader."""

from __future__ import annotations

import copy
from typing import Any

from comptoir.billing.stripe_fake import params as p
from comptoir.billing.stripe_fake.errors import StripeFakeError
from comptoir.billing.stripe_fake.payments import format_amount, get_intent
from comptoir.billing.stripe_fake.state import FakeStripe, Store, random_id


def charge_to_refund(
    fake: FakeStripe, store: Store, *, intent_id: str | None, charge_id: str | None
) -> dict[str, Any]:
    if intent_id:
        intent = get_intent(fake, store, intent_id, "payment_intent")
        charge = store.objects.get(intent["latest_charge"] or "")
        if intent["status"] != "succeeded" or charge is None:
            message = (
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund."
            )
            raise StripeFakeError(400, message, param="payment_intent")
        return charge
    if charge_id:
        charge = fake.get(store, charge_id, "charge", "charge", "charge")
        if charge["status"] != "succeeded" or not charge["captured"]:
            message = f"Charge {charge_id} has not been captured and cannot be refunded."
            raise StripeFakeError(400, message, param="charge")
        return charge
    message = (
        "One of the following params should be provided for this request: payment_intent or charge."
    )
    raise StripeFakeError(400, message, code="parameter_missing")


def refundable_amount(charge: dict[str, Any], requested: int | None) -> int:
    remaining = int(charge["amount_captured"]) - int(charge["amount_refunded"])
    if remaining <= 0:
        message = f"Charge {charge['id']} has already been refunded."
        raise StripeFakeError(400, message, code="charge_already_refunded")
    amount = remaining if requested is None else requested
    if amount > remaining:
        message = (
            f"Refund amount ({format_amount(amount, charge['currency'])}) is greater than "
            f"unrefunded amount on charge ({format_amount(remaining, charge['currency'])})"
        )
        raise StripeFakeError(400, message, code="amount_too_large", param="amount")
    return amount


def create_refund(fake: FakeStripe, store: Store, params: dict[str, Any]) -> dict[str, Any]:
    p.allow(
        params,
        (
            "payment_intent",
            "charge",
            "amount",
            "reason",
            "refund_application_fee",
            "reverse_transfer",
            "metadata",
        ),
    )
    charge = charge_to_refund(
        fake,
        store,
        intent_id=p.string(params, "payment_intent"),
        charge_id=p.string(params, "charge"),
    )
    if fake.hidden(store, charge["id"]).get("method_type") == "interac_present":
        message = (
            "Interac payments taken in person can only be refunded with the card present: "
            "use POST /v1/terminal/readers/:id/refund_payment."
        )
        raise StripeFakeError(400, message, code="charge_not_refundable")
    amount = refundable_amount(charge, p.integer(params, "amount", minimum=1))
    return refund_charge(
        fake,
        store,
        charge,
        amount,
        refund_application_fee=p.boolean(params, "refund_application_fee"),
        reason=p.choice(params, "reason", ("duplicate", "fraudulent", "requested_by_customer")),
        metadata=p.metadata(params),
    )


def refund_charge(
    fake: FakeStripe,
    store: Store,
    charge: dict[str, Any],
    amount: int,
    *,
    refund_application_fee: bool,
    reason: str | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    """Refund ``amount`` of a captured charge (the caller checked it is refundable)."""
    hidden = fake.hidden(store, charge["id"])
    method_type = hidden.get("method_type", "card")
    refund = fake.fixtures.build(
        "refund",
        id=random_id("re"),
        amount=amount,
        balance_transaction=random_id("txn"),
        charge=charge["id"],
        created=fake.now(),
        currency=charge["currency"],
        destination_details={"type": method_type, method_type: {"type": "refund"}},
        metadata=metadata,
        payment_intent=charge["payment_intent"],
        reason=reason,
        receipt_number=None,
        source_transfer_reversal=None,
        status="succeeded",
        transfer_reversal=None,
        customer=None,
        customer_account=None,
        payment_method=charge["payment_method"],
    )
    fee = charge["application_fee_amount"] or 0
    fee_refund = fee * amount // charge["amount_captured"] if refund_application_fee and fee else 0
    fake.put(store, refund, fee_refunded=fee_refund)
    hidden["fee_refunded"] = hidden.get("fee_refunded", 0) + fee_refund
    before = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    charge["refunds"]["data"].insert(0, refund)
    fake.record_event(store, "refund.created", refund)
    fake.record_event(store, "charge.refunded", charge, before)
    answered = copy.deepcopy(refund)
    if hidden.get("refund_fails"):
        # Stripe's card 4000 0000 0000 5126: the refund succeeds, then fails a moment later. The
        # API answers with the refund as created; reads and events afterwards show the failure.
        refund["status"] = "failed"
        charge["amount_refunded"] -= amount
        charge["refunded"] = False
        fake.record_event(store, "refund.updated", refund, {"status": "succeeded"})
        fake.record_event(store, "refund.failed", refund)
    return answered


def retrieve_refund(
    fake: FakeStripe, store: Store, params: dict[str, Any], refund_id: str
) -> dict[str, Any]:
    p.allow(params, ())
    return fake.get(store, refund_id, "refund", "refund")
