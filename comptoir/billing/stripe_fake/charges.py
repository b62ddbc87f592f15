"""Charges and the payment methods behind them: how one payment attempt ends."""

from __future__ import annotations

from typing import Any

from comptoir.billing.stripe_fake import params as p
from comptoir.billing.stripe_fake.cards import Outcome, TestCard
from comptoir.billing.stripe_fake.errors import DOC_URL, StripeFakeError
from comptoir.billing.stripe_fake.state import FakeStripe, Store, random_id


def new_payment_method(
    fake: FakeStripe, store: Store, card: TestCard, method_type: str
) -> dict[str, Any]:
    # Only ever shown inside other objects (last_payment_error), so its type-specific field may
    # be card_present/interac_present where Stripe's example shows card.
    payment_method = fake.fixtures.example("payment_method")
    details = _card_details(card)
    payment_method.update(
        id=random_id("pm"),
        allow_redisplay="unspecified",
        billing_details=_empty_billing_details(),
        created=fake.now(),
        customer=None,
        livemode=False,
        metadata={},
        type=method_type,
        customer_account=None,
    )
    payment_method.pop("card", None)
    payment_method[method_type] = details
    fake.put(store, payment_method, number=card.number)
    return payment_method


def _empty_billing_details() -> dict[str, Any]:
    address = dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))
    return {"address": address, "email": None, "name": None, "phone": None, "tax_id": None}


def _card_details(card: TestCard) -> dict[str, Any]:
    return {
        "brand": card.brand,
        "country": card.country,
        "exp_month": 12,
        "exp_year": 2034,
        "fingerprint": "fake" + card.number[-8:],
        "funding": card.funding,
        "last4": card.last4,
    }


def decline(
    fake: FakeStripe,
    store: Store,
    intent: dict[str, Any],
    *,
    card: TestCard,
    payment_method: dict[str, Any],
    method_type: str,
) -> StripeFakeError:
    """Record a declined charge on ``intent``; returns the 402 error the API answers with."""
    code = card.code or "card_declined"
    message = card.message or "Your card was declined."
    charge = _new_charge(
        fake,
        store,
        intent,
        card=card,
        payment_method=payment_method,
        method_type=method_type,
        succeeded=False,
    )
    error = {
        "charge": charge["id"],
        "code": code,
        "decline_code": card.decline_code,
        "doc_url": DOC_URL + code.replace("_", "-"),
        "message": message,
        "payment_method": payment_method,
        "type": "card_error",
    }
    intent.update(
        status="requires_payment_method",
        payment_method=None,
        latest_charge=charge["id"],
        last_payment_error=error,
        next_action=None,
    )
    fake.record_event(store, "charge.failed", charge)
    fake.record_event(store, "payment_intent.payment_failed", intent)
    return StripeFakeError(
        402,
        message,
        type="card_error",
        code=code,
        decline_code=card.decline_code,
        extra={"charge": charge["id"], "payment_intent": intent, "payment_method": payment_method},
        saved=True,
    )


def succeed(
    fake: FakeStripe,
    store: Store,
    intent: dict[str, Any],
    *,
    card: TestCard,
    payment_method: dict[str, Any],
    method_type: str,
    three_d_secure: bool = False,
) -> dict[str, Any]:
    # Interac debit is always captured at once, whatever the capture method says.
    capture = method_type == "interac_present" or intent["capture_method"] != "manual"
    charge = _new_charge(
        fake,
        store,
        intent,
        card=card,
        payment_method=payment_method,
        method_type=method_type,
        succeeded=True,
        captured=capture,
        three_d_secure=three_d_secure,
    )
    intent.update(
        payment_method=payment_method["id"],
        latest_charge=charge["id"],
        last_payment_error=None,
        next_action=None,
    )
    fake.record_event(store, "charge.succeeded", charge)
    if capture:
        intent.update(status="succeeded", amount_received=intent["amount"], amount_capturable=0)
        fake.record_event(store, "payment_intent.succeeded", intent)
    else:
        intent.update(status="requires_capture", amount_capturable=intent["amount"])
        fake.record_event(store, "payment_intent.amount_capturable_updated", intent)
    return intent


def _new_charge(
    fake: FakeStripe,
    store: Store,
    intent: dict[str, Any],
    *,
    card: TestCard,
    payment_method: dict[str, Any],
    method_type: str,
    succeeded: bool,
    captured: bool = False,
    three_d_secure: bool = False,
) -> dict[str, Any]:
    charge_id = random_id("ch")
    fee = intent["application_fee_amount"]
    details: dict[str, Any] = {**_card_details(card), "network": card.brand}
    if method_type == "card":
        details.update(
            amount_authorized=intent["amount"] if succeeded else None,
            checks={
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            three_d_secure={"authentication_flow": "challenge", "result": "authenticated"}
            if three_d_secure
            else None,
            wallet=None,
        )
    else:
        details.update(read_method="contactless_emv", receipt={"application_cryptogram": "fake"})
    if succeeded:
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    else:
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network",
            "reason": card.decline_code,
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    charge = fake.fixtures.build(
        "charge",
        id=charge_id,
        amount=intent["amount"],
        amount_captured=intent["amount"] if succeeded and captured else 0,
        amount_refunded=0,
        application=intent["application"],
        application_fee=random_id("fee") if succeeded and fee else None,
        application_fee_amount=fee if succeeded else None,
        balance_transaction=random_id("txn") if succeeded and captured else None,
        billing_details=_empty_billing_details(),
        calculated_statement_descriptor="COMPTOIR",
        captured=succeeded and captured,
        created=fake.now(),
        currency=intent["currency"],
        customer=None,
        description=intent["description"],
        disputed=False,
        failure_balance_transaction=None,
        failure_code=None if succeeded else (card.code or "card_declined"),
        failure_message=None if succeeded else (card.message or "Your card was declined."),
        fraud_details={},
        livemode=False,
        metadata=dict(intent["metadata"]),
        on_behalf_of=None,
        outcome=outcome,
        paid=succeeded,
        payment_intent=intent["id"],
        payment_method=payment_method["id"],
        payment_method_details={"type": method_type, method_type: details},
        receipt_email=intent["receipt_email"],
        receipt_number=None,
        receipt_url=fake.url(f"/_fake/receipts/{charge_id}"),
        refunded=False,
        refunds={
            "data": [],
            "has_more": False,
            "object": "list",
            "url": f"/v1/charges/{charge_id}/refunds",
        },
        review=None,
        shipping=None,
        source=None,
        source_transfer=None,
        statement_descriptor=None,
        statement_descriptor_suffix=intent["statement_descriptor_suffix"],
        status="succeeded" if succeeded else "failed",
        transfer_data=None,
        transfer_group=None,
    )
    fake.put(
        store,
        charge,
        refund_fails=card.outcome is Outcome.REFUND_FAILS,
        method_type=method_type,
        fee_refunded=0,
    )
    return charge


def retrieve_charge(
    fake: FakeStripe, store: Store, params: dict[str, Any], charge_id: str
) -> dict[str, Any]:
    p.allow(params, ())
    return fake.get(store, charge_id, "charge", "charge")
