"""Stripe's test payment methods and card numbers, and what each one does."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    SUCCEED = "succeed"
    DECLINE = "decline"
    AUTHENTICATE = "authenticate"  # 3-D Secure is required, on every payment
    REFUND_FAILS = "refund_fails"  # the payment succeeds; its refunds fail asynchronously


@dataclass(frozen=True)
class TestCard:
    number: str
    brand: str
    outcome: Outcome = Outcome.SUCCEED
    funding: str = "credit"
    country: str = "US"
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None

    @property
    def last4(self) -> str:
        return self.number[-4:]


_DECLINED = "Your card was declined."

CARDS: tuple[TestCard, ...] = (
    TestCard("4242424242424242", "visa"),
    TestCard("4000056655665556", "visa", funding="debit"),
    TestCard("4000001240000000", "visa", country="CA"),
    TestCard("5555555555554444", "mastercard"),
    TestCard("378282246310005", "amex"),
    TestCard("4506445006931933", "interac", funding="debit", country="CA"),
    TestCard("4000000000005126", "visa", Outcome.REFUND_FAILS),
    TestCard("4000002760003184", "visa", Outcome.AUTHENTICATE),
    TestCard("4000000000003220", "visa", Outcome.AUTHENTICATE),
    TestCard("4000002500003155", "visa", Outcome.AUTHENTICATE),
    TestCard(
        "4000000000000002",
        "visa",
        Outcome.DECLINE,
        code="card_declined",
        decline_code="generic_decline",
        message=_DECLINED,
    ),
    TestCard(
        "4000000000009995",
        "visa",
        Outcome.DECLINE,
        code="card_declined",
        decline_code="insufficient_funds",
        message="Your card has insufficient funds.",
    ),
    TestCard(
        "4000000000009987",
        "visa",
        Outcome.DECLINE,
        code="card_declined",
        decline_code="lost_card",
        message=_DECLINED,
    ),
    TestCard(
        "4000000000000069",
        "visa",
        Outcome.DECLINE,
        code="expired_card",
        decline_code="expired_card",
        message="Your card has expired.",
    ),
    TestCard(
        "4000000000000127",
        "visa",
        Outcome.DECLINE,
        code="incorrect_cvc",
        decline_code="incorrect_cvc",
        message="Your card's security code is incorrect.",
    ),
    TestCard(
        "4000000000000119",
        "visa",
        Outcome.DECLINE,
        code="processing_error",
        decline_code="processing_error",
        message="An error occurred while processing your card. Try again in a little bit.",
    ),
)

_BY_NUMBER = {card.number: card for card in CARDS}

# Stripe's test PaymentMethod ids (``pm_card_…``) and legacy tokens, by the card they stand for.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "tok_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_ca": "4000001240000000",
    "pm_card_mastercard": "5555555555554444",
    "tok_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_refundFail": "4000000000005126",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_chargeDeclined": "4000000000000002",
    "tok_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
}

DEFAULT_CARD_PRESENT_NUMBER = "4242424242424242"
DEFAULT_INTERAC_NUMBER = "4506445006931933"


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def card_for_number(number: str) -> TestCard | None:
    """The test card with this number; any other valid number pays like a plain card."""
    digits = "".join(number.split())
    known = _BY_NUMBER.get(digits)
    if known is not None:
        return known
    if not luhn_valid(digits):
        return None
    brand = {"4": "visa", "5": "mastercard", "3": "amex"}.get(digits[0], "unknown")
    return TestCard(digits, brand)
