"""The gateway's real adapter (stripe-python's StripeClient) against the Stripe fake over HTTP."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from comptoir.billing.stripe_fake import FakeStripe, sign
from comptoir.billing.stripe_fake.terminal import set_reader_status
from comptoir.billing.stripe_gateway import (
    SIMULATED_SECRET_KEY,
    STRIPE_API_BASE,
    CardDeclinedError,
    GatewayConfigurationError,
    IdempotencyConflictError,
    InvalidRequestError,
    PaymentIntent,
    ReaderUnavailableError,
    StripeAuthenticationError,
    StripeClientGateway,
    StripeNotFoundError,
    StripeUnavailableError,
    WebhookSignatureError,
    construct_event,
    gateway_for,
)
from comptoir.platform.settings import Environment, Settings
from tests.billing.stripe_helpers import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    connected_account,
    raw_request,
    simulated_reader,
)

RETURN_URL = "http://shop.example/o/club/checkout/done?order=7"


def card_intent(
    gateway: StripeClientGateway,
    account_id: str,
    key: str,
    *,
    amount: int = 2500,
    currency: str = "cad",
    fee: int | None = 125,
    capture_method: str = "automatic",
) -> PaymentIntent:
    return gateway.create_payment_intent(
        account_id,
        amount=amount,
        currency=currency,
        application_fee_amount=fee,
        metadata={"order_id": 7, "attempt": 1},
        idempotency_key=key,
        capture_method=capture_method,
    )


def reader_intent(gateway: StripeClientGateway, account_id: str, key: str) -> PaymentIntent:
    return gateway.create_payment_intent(
        account_id,
        amount=4000,
        currency="cad",
        application_fee_amount=None,
        metadata={"order_id": 9},
        idempotency_key=key,
        payment_method_types=("card_present", "interac_present"),
    )


def event_types(gateway: StripeClientGateway, account_id: str) -> list[str]:
    return [event.type for event in reversed(gateway.list_events(account_id))]


# -- Connect --------------------------------------------------------------------------------------


def test_connected_account_starts_without_charges(stripe_gateway: StripeClientGateway) -> None:
    account = stripe_gateway.create_connected_account(
        country="ca", email="club@example.org", metadata={"organization_id": 12}
    )

    assert account.id.startswith("acct_")
    assert (account.country, account.default_currency) == ("CA", "cad")
    assert not account.charges_enabled
    assert not account.details_submitted
    assert "external_account" in account.requirements_due
    assert stripe_gateway.retrieve_account(account.id) == account
    assert account.metadata == {"organization_id": "12"}


def test_onboarding_link_enables_charges_and_emits_account_updated(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = stripe_gateway.create_connected_account(country="CA", email=None)
    link = stripe_gateway.create_account_link(
        account.id, refresh_url="http://shop.example/refresh", return_url="http://shop.example/ok"
    )
    base, path = link.url.split("/_fake/", 1)

    page = raw_request(base, "GET", "/_fake/" + path, key=None)
    assert page.status == 200
    assert "Complete onboarding" in page.text
    done = raw_request(base, "POST", "/_fake/" + path, [("action", "complete")], key=None)

    assert done.status == 303
    assert done.headers["Location"] == "http://shop.example/ok"
    onboarded = stripe_gateway.retrieve_account(account.id)
    assert onboarded.charges_enabled
    assert onboarded.details_submitted
    assert onboarded.requirements_due == ()
    (event,) = stripe_gateway.list_events(account.id, types=["account.updated"])
    assert event.account == account.id
    assert event.data_object["charges_enabled"] is True
    assert event.previous_attributes is not None
    assert event.previous_attributes["charges_enabled"] is False
    # An account link works once; afterwards it sends the owner to refresh_url for a new one.
    again = raw_request(base, "GET", "/_fake/" + path, key=None)
    assert again.headers["Location"] == "http://shop.example/refresh"


def test_unknown_or_deleted_account_is_not_found(stripe_gateway: StripeClientGateway) -> None:
    account = stripe_gateway.create_connected_account(country="CA", email=None)
    stripe_gateway.delete_account(account.id)

    with pytest.raises(StripeNotFoundError):
        stripe_gateway.retrieve_account(account.id)
    with pytest.raises(StripeNotFoundError) as caught:
        card_intent(stripe_gateway, account.id, "order-1-attempt-1")
    assert caught.value.code == "account_invalid"
    assert caught.value.user_message == "The Stripe account is no longer connected to the platform."


# -- online card payments -------------------------------------------------------------------------


def test_card_payment_succeeds_as_a_direct_charge(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, account.id, "order-7-attempt-1")
    assert intent.status == "requires_payment_method"
    assert intent.client_secret is not None
    assert intent.client_secret.startswith(intent.id + "_secret_")

    paid = stripe_gateway.confirm_payment_intent(
        account.id, intent.id, payment_method="pm_card_visa", return_url=RETURN_URL
    )

    assert paid.status == "succeeded"
    assert (paid.amount, paid.amount_received, paid.currency) == (2500, 2500, "cad")
    assert paid.metadata == {"order_id": "7", "attempt": "1"}
    assert paid.account_id == account.id
    assert paid.latest_charge is not None
    charge = stripe_gateway.retrieve_charge(account.id, paid.latest_charge)
    assert (charge.status, charge.captured, charge.amount_captured) == ("succeeded", True, 2500)
    assert charge.application_fee_amount == 125
    assert (charge.payment_method_type, charge.card_brand, charge.card_last4) == (
        "card",
        "visa",
        "4242",
    )
    assert stripe_gateway.retrieve_payment_intent(account.id, intent.id) == paid
    assert event_types(stripe_gateway, account.id) == [
        "account.updated",
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]


def test_declined_card_leaves_the_intent_awaiting_payment(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, account.id, "order-7-attempt-1")

    with pytest.raises(CardDeclinedError) as caught:
        stripe_gateway.confirm_payment_intent(
            account.id, intent.id, payment_method="pm_card_chargeDeclined"
        )

    error = caught.value
    assert (error.code, error.decline_code, error.http_status) == (
        "card_declined",
        "generic_decline",
        402,
    )
    assert error.user_message == "Your card was declined."
    assert error.payment_intent is not None
    assert error.payment_intent.status == "requires_payment_method"
    current = stripe_gateway.retrieve_payment_intent(account.id, intent.id)
    assert current.status == "requires_payment_method"
    assert current.last_payment_error_message == "Your card was declined."
    assert current.last_payment_error is not None
    assert current.last_payment_error.decline_code == "generic_decline"
    assert "payment_intent.payment_failed" in event_types(stripe_gateway, account.id)
    # The customer may try again with another card on the same intent.
    retried = stripe_gateway.confirm_payment_intent(
        account.id, intent.id, payment_method="pm_card_mastercard"
    )
    assert retried.status == "succeeded"
    assert retried.last_payment_error is None


def test_insufficient_funds_has_its_own_message(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, account.id, "order-7-attempt-1")

    with pytest.raises(CardDeclinedError) as caught:
        stripe_gateway.confirm_payment_intent(
            account.id, intent.id, payment_method="pm_card_chargeDeclinedInsufficientFunds"
        )

    assert caught.value.user_message == "Your card has insufficient funds."


@pytest.mark.parametrize(
    ("choice", "status", "redirect_status"),
    [
        ("approve", "succeeded", "succeeded"),
        ("deny", "requires_payment_method", "failed"),
    ],
)
def test_three_d_secure(
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    choice: str,
    status: str,
    redirect_status: str,
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, account.id, "order-7-attempt-1")

    pending = stripe_gateway.confirm_payment_intent(
        account.id,
        intent.id,
        payment_method="pm_card_authenticationRequired",
        return_url=RETURN_URL,
    )
    assert pending.status == "requires_action"
    assert pending.next_action_url is not None
    challenge = urlsplit(pending.next_action_url)
    base = f"{challenge.scheme}://{challenge.netloc}"
    assert raw_request(base, "GET", challenge.path, key=None).status == 200

    answer = raw_request(base, "POST", challenge.path, [("action", choice)], key=None)

    assert answer.status == 303
    back = urlsplit(answer.headers["Location"])
    assert back.path == "/o/club/checkout/done"
    query = parse_qs(back.query)
    assert query["order"] == ["7"]
    assert query["payment_intent"] == [intent.id]
    assert query["redirect_status"] == [redirect_status]
    settled = stripe_gateway.retrieve_payment_intent(account.id, intent.id)
    assert settled.status == status
    assert settled.next_action_url is None
    if choice == "deny":
        assert settled.last_payment_error is not None
        assert settled.last_payment_error.code == "payment_intent_authentication_failure"
    assert "payment_intent.requires_action" in event_types(stripe_gateway, account.id)


def test_hosted_test_payment_page_stands_in_for_the_payment_element(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, account.id, "order-7-attempt-1")
    url = stripe_gateway.hosted_test_payment_url(intent, return_url=RETURN_URL)
    assert url is not None
    page = urlsplit(url)
    base = f"{page.scheme}://{page.netloc}"
    form = [("client_secret", intent.client_secret or ""), ("return_url", RETURN_URL)]

    assert raw_request(base, "GET", page.path + "?" + page.query, key=None).status == 200
    wrong = [("client_secret", "pi_x_secret_y"), ("return_url", RETURN_URL)]
    assert raw_request(base, "POST", page.path, wrong, key=None).status == 404
    declined = raw_request(
        base, "POST", page.path, [*form, ("card_number", "4000 0000 0000 0002")], key=None
    )
    assert declined.status == 402
    assert "Your card was declined." in declined.text
    paid = raw_request(
        base, "POST", page.path, [*form, ("card_number", "4242 4242 4242 4242")], key=None
    )

    assert paid.status == 303
    assert parse_qs(urlsplit(paid.headers["Location"]).query)["redirect_status"] == ["succeeded"]
    assert stripe_gateway.retrieve_payment_intent(account.id, intent.id).status == "succeeded"


def test_card_number_requiring_3ds_on_the_hosted_page_redirects_to_the_challenge(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, account.id, "order-7-attempt-1")
    page = urlsplit(stripe_gateway.hosted_test_payment_url(intent, return_url=RETURN_URL) or "")
    base = f"{page.scheme}://{page.netloc}"
    form = [
        ("client_secret", intent.client_secret or ""),
        ("return_url", RETURN_URL),
        ("card_number", "4000002760003184"),
    ]

    answer = raw_request(base, "POST", page.path, form, key=None)

    assert answer.status == 303
    challenge = urlsplit(answer.headers["Location"])
    assert challenge.path.startswith("/_fake/3ds/")
    done = raw_request(base, "GET", challenge.path + "?action=approve", key=None)
    assert done.headers["Location"].startswith("http://shop.example/o/club/checkout/done")
    assert stripe_gateway.retrieve_payment_intent(account.id, intent.id).status == "succeeded"


def test_manual_capture_and_cancel(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    held = card_intent(stripe_gateway, account.id, "order-7-attempt-1", capture_method="manual")
    held = stripe_gateway.confirm_payment_intent(account.id, held.id, payment_method="pm_card_visa")
    assert (held.status, held.amount_capturable) == ("requires_capture", 2500)

    captured = stripe_gateway.capture_payment_intent(account.id, held.id, amount_to_capture=2000)
    assert (captured.status, captured.amount_received) == ("succeeded", 2000)
    with pytest.raises(InvalidRequestError) as caught:
        stripe_gateway.cancel_payment_intent(account.id, held.id)
    assert caught.value.code == "payment_intent_unexpected_state"

    abandoned = card_intent(stripe_gateway, account.id, "order-8-attempt-1")
    canceled = stripe_gateway.cancel_payment_intent(
        account.id, abandoned.id, cancellation_reason="abandoned"
    )
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
    assert canceled.canceled_at is not None


def test_amounts_are_checked(stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe) -> None:
    account = connected_account(stripe_gateway, stripe_fake)

    with pytest.raises(InvalidRequestError) as caught:
        card_intent(stripe_gateway, account.id, "order-7-attempt-1", amount=20)
    assert (caught.value.code, caught.value.param) == ("amount_too_small", "amount")
    with pytest.raises(TypeError, match="minor units"):
        card_intent(stripe_gateway, account.id, "order-7-attempt-2", amount=12.5)  # type: ignore[arg-type]


# -- idempotency and Connect isolation ------------------------------------------------------------


def test_same_idempotency_key_and_parameters_replays_the_first_answer(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe, stripe_server: object
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)

    first = card_intent(stripe_gateway, account.id, "order-7-attempt-1")
    second = card_intent(stripe_gateway, account.id, "order-7-attempt-1")

    assert second.id == first.id
    created = stripe_gateway.list_events(account.id, types=["payment_intent.created"])
    assert [event.object_id for event in created] == [first.id]


def test_replay_is_marked_and_frozen(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    params = [("amount", "1000"), ("currency", "cad"), ("metadata[order_id]", "3")]
    base = stripe_gateway.api_base

    first = raw_request(
        base, "POST", "/v1/payment_intents", params, account=account.id, idempotency_key="k1"
    )
    stripe_gateway.confirm_payment_intent(
        account.id, first.body["id"], payment_method="pm_card_visa"
    )
    replay = raw_request(
        base, "POST", "/v1/payment_intents", params, account=account.id, idempotency_key="k1"
    )

    assert "Idempotent-Replayed" not in first.headers
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.body == first.body
    assert replay.body["status"] == "requires_payment_method"


def test_same_idempotency_key_with_other_parameters_is_refused(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    card_intent(stripe_gateway, account.id, "order-7-attempt-1", amount=2500)

    with pytest.raises(IdempotencyConflictError) as caught:
        card_intent(stripe_gateway, account.id, "order-7-attempt-1", amount=2600)

    assert caught.value.http_status == 400
    assert "same parameters" in caught.value.message


def test_idempotency_keys_are_scoped_per_account(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    first = connected_account(stripe_gateway, stripe_fake)
    second = connected_account(stripe_gateway, stripe_fake)

    one = card_intent(stripe_gateway, first.id, "order-1-attempt-1")
    other = card_intent(stripe_gateway, second.id, "order-1-attempt-1")

    assert one.id != other.id


def test_objects_of_one_account_are_invisible_to_another(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    alpha = connected_account(stripe_gateway, stripe_fake)
    beta = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, alpha.id, "order-1-attempt-1")
    paid = stripe_gateway.confirm_payment_intent(alpha.id, intent.id, payment_method="pm_card_visa")
    assert paid.latest_charge is not None

    with pytest.raises(StripeNotFoundError) as caught:
        stripe_gateway.retrieve_payment_intent(beta.id, intent.id)
    assert caught.value.code == "resource_missing"
    with pytest.raises(StripeNotFoundError):
        stripe_gateway.confirm_payment_intent(beta.id, intent.id, payment_method="pm_card_visa")
    with pytest.raises(StripeNotFoundError):
        stripe_gateway.retrieve_charge(beta.id, paid.latest_charge)
    with pytest.raises(StripeNotFoundError):
        stripe_gateway.create_refund(
            beta.id,
            payment_intent=intent.id,
            amount=None,
            refund_application_fee=False,
            idempotency_key="refund-1",
        )
    assert intent.id not in {event.object_id for event in stripe_gateway.list_events(beta.id)}
    assert stripe_gateway.retrieve_payment_intent(alpha.id, intent.id).status == "succeeded"


# -- refunds --------------------------------------------------------------------------------------


def test_partial_then_full_refund_and_over_refunds_refused(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, account.id, "order-7-attempt-1")
    paid = stripe_gateway.confirm_payment_intent(
        account.id, intent.id, payment_method="pm_card_visa"
    )
    assert paid.latest_charge is not None

    partial = stripe_gateway.create_refund(
        account.id,
        payment_intent=intent.id,
        amount=1000,
        refund_application_fee=True,
        idempotency_key="refund-1",
        metadata={"refund_id": 1},
    )
    assert (partial.status, partial.amount, partial.charge) == (
        "succeeded",
        1000,
        paid.latest_charge,
    )
    with pytest.raises(InvalidRequestError) as too_much:
        stripe_gateway.create_refund(
            account.id,
            payment_intent=intent.id,
            amount=1501,
            refund_application_fee=True,
            idempotency_key="refund-2",
        )
    assert (too_much.value.code, too_much.value.param) == ("amount_too_large", "amount")
    rest = stripe_gateway.create_refund(
        account.id,
        payment_intent=intent.id,
        amount=None,
        refund_application_fee=True,
        idempotency_key="refund-3",
    )
    assert rest.amount == 1500
    with pytest.raises(InvalidRequestError) as again:
        stripe_gateway.create_refund(
            account.id,
            payment_intent=intent.id,
            amount=1,
            refund_application_fee=True,
            idempotency_key="refund-4",
        )
    assert again.value.code == "charge_already_refunded"
    assert again.value.user_message == "This payment has already been refunded in full."

    charge = stripe_gateway.retrieve_charge(account.id, paid.latest_charge)
    assert (charge.amount_refunded, charge.refunded, charge.refundable_amount) == (2500, True, 0)
    assert stripe_gateway.retrieve_refund(account.id, partial.id) == partial
    types = event_types(stripe_gateway, account.id)
    assert types.count("refund.created") == 2
    assert types.count("charge.refunded") == 2


def test_refund_of_an_unpaid_intent_is_refused(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, account.id, "order-7-attempt-1")

    with pytest.raises(InvalidRequestError) as caught:
        stripe_gateway.create_refund(
            account.id,
            payment_intent=intent.id,
            amount=None,
            refund_application_fee=False,
            idempotency_key="refund-1",
        )

    assert caught.value.param == "payment_intent"


def test_refund_that_fails_later_reports_it_in_events(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, account.id, "order-7-attempt-1")
    stripe_gateway.confirm_payment_intent(
        account.id, intent.id, payment_method="pm_card_refundFail"
    )

    refund = stripe_gateway.create_refund(
        account.id,
        payment_intent=intent.id,
        amount=None,
        refund_application_fee=False,
        idempotency_key="refund-1",
    )

    assert refund.status == "succeeded"
    assert stripe_gateway.retrieve_refund(account.id, refund.id).status == "failed"
    (updated,) = stripe_gateway.list_events(account.id, types=["refund.updated"])
    assert updated.data_object["status"] == "failed"
    assert updated.previous_attributes == {"status": "succeeded"}


# -- Terminal -------------------------------------------------------------------------------------


def test_locations_and_readers(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    reader = simulated_reader(stripe_gateway, account.id, label="Front desk")

    assert (reader.status, reader.device_type, reader.action) == (
        "online",
        "simulated_wisepos_e",
        None,
    )
    (location,) = stripe_gateway.list_terminal_locations(account.id)
    assert location.id == reader.location
    assert location.address.city == "Montréal"
    renamed = stripe_gateway.update_reader(account.id, reader.id, label="Pool desk")
    assert renamed.label == "Pool desk"
    assert stripe_gateway.list_readers(account.id, location=location.id) == [renamed]
    stripe_gateway.delete_reader(account.id, reader.id)
    assert stripe_gateway.list_readers(account.id) == []
    with pytest.raises(StripeNotFoundError):
        stripe_gateway.retrieve_reader(account.id, reader.id)


def test_unknown_registration_code_is_refused(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    reader = simulated_reader(stripe_gateway, account.id)

    with pytest.raises(InvalidRequestError) as caught:
        stripe_gateway.register_reader(
            account.id,
            registration_code="puppy-kitten-lion",
            label="Bar",
            location=reader.location or "",
        )

    assert caught.value.param == "registration_code"


def test_reader_card_payment(stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    reader = simulated_reader(stripe_gateway, account.id)
    intent = reader_intent(stripe_gateway, account.id, "order-9-attempt-1")

    waiting = stripe_gateway.process_payment_intent_on_reader(account.id, reader.id, intent.id)
    assert waiting.busy
    assert waiting.action is not None
    assert (waiting.action.type, waiting.action.payment_intent) == (
        "process_payment_intent",
        intent.id,
    )
    done = stripe_gateway.simulate_present_payment_method(account.id, reader.id)

    assert done.action is not None
    assert done.action.status == "succeeded"
    assert not done.busy
    paid = stripe_gateway.retrieve_payment_intent(account.id, intent.id)
    assert paid.status == "succeeded"
    assert paid.latest_charge is not None
    charge = stripe_gateway.retrieve_charge(account.id, paid.latest_charge)
    assert charge.payment_method_type == "card_present"
    (event,) = stripe_gateway.list_events(account.id, types=["terminal.reader.action_succeeded"])
    assert event.data_object["id"] == reader.id
    assert event.account == account.id


def test_busy_reader_is_refused_and_cancel_frees_it(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    reader = simulated_reader(stripe_gateway, account.id)
    first = reader_intent(stripe_gateway, account.id, "order-9-attempt-1")
    second = reader_intent(stripe_gateway, account.id, "order-10-attempt-1")
    stripe_gateway.process_payment_intent_on_reader(account.id, reader.id, first.id)

    with pytest.raises(ReaderUnavailableError) as caught:
        stripe_gateway.process_payment_intent_on_reader(account.id, reader.id, second.id)
    assert (caught.value.code, caught.value.http_status) == ("terminal_reader_busy", 409)
    assert "busy" in caught.value.user_message

    idle = stripe_gateway.cancel_reader_action(account.id, reader.id)
    assert idle.action is None
    assert stripe_gateway.retrieve_payment_intent(account.id, first.id).status == (
        "requires_payment_method"
    )
    restarted = stripe_gateway.process_payment_intent_on_reader(account.id, reader.id, second.id)
    assert restarted.busy


def test_reader_decline(stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    reader = simulated_reader(stripe_gateway, account.id)
    intent = reader_intent(stripe_gateway, account.id, "order-9-attempt-1")
    stripe_gateway.process_payment_intent_on_reader(account.id, reader.id, intent.id)

    failed = stripe_gateway.simulate_present_payment_method(
        account.id, reader.id, card_number="4000000000000002"
    )

    assert failed.action is not None
    assert (failed.action.status, failed.action.failure_code) == ("failed", "card_declined")
    declined = stripe_gateway.retrieve_payment_intent(account.id, intent.id)
    assert declined.status == "requires_payment_method"
    assert declined.last_payment_error_message == "Your card was declined."
    assert "terminal.reader.action_failed" in event_types(stripe_gateway, account.id)


def test_offline_reader_is_refused(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    reader = simulated_reader(stripe_gateway, account.id)
    intent = reader_intent(stripe_gateway, account.id, "order-9-attempt-1")
    set_reader_status(stripe_fake, reader.id, "offline")

    with pytest.raises(ReaderUnavailableError) as caught:
        stripe_gateway.process_payment_intent_on_reader(account.id, reader.id, intent.id)

    assert caught.value.code == "terminal_reader_offline"
    assert stripe_gateway.retrieve_reader(account.id, reader.id).status == "offline"


def test_interac_debit_is_captured_at_once_and_refunded_on_the_reader(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    reader = simulated_reader(stripe_gateway, account.id)
    intent = stripe_gateway.create_payment_intent(
        account.id,
        amount=4000,
        currency="cad",
        application_fee_amount=None,
        metadata={"order_id": 9},
        idempotency_key="order-9-attempt-1",
        payment_method_types=("card_present", "interac_present"),
        capture_method="manual",
    )
    stripe_gateway.process_payment_intent_on_reader(account.id, reader.id, intent.id)
    stripe_gateway.simulate_present_payment_method(account.id, reader.id, type="interac_present")

    paid = stripe_gateway.retrieve_payment_intent(account.id, intent.id)
    assert paid.status == "succeeded"
    assert paid.latest_charge is not None
    charge = stripe_gateway.retrieve_charge(account.id, paid.latest_charge)
    assert charge.refund_needs_card_present
    with pytest.raises(InvalidRequestError) as caught:
        stripe_gateway.create_refund(
            account.id,
            payment_intent=intent.id,
            amount=None,
            refund_application_fee=False,
            idempotency_key="refund-1",
        )
    assert caught.value.code == "charge_not_refundable"

    waiting = stripe_gateway.refund_payment_on_reader(
        account.id,
        reader.id,
        payment_intent_id=intent.id,
        amount=1500,
        refund_application_fee=False,
        metadata={"refund_id": 4},
    )
    assert waiting.busy
    done = stripe_gateway.simulate_present_payment_method(
        account.id, reader.id, type="interac_present"
    )
    assert done.action is not None
    assert done.action.status == "succeeded"
    assert done.action.refund is not None
    refund = stripe_gateway.retrieve_refund(account.id, done.action.refund)
    assert (refund.amount, refund.status, refund.metadata) == (
        1500,
        "succeeded",
        {"refund_id": "4"},
    )
    assert stripe_gateway.retrieve_charge(account.id, paid.latest_charge).amount_refunded == 1500


def test_card_present_with_manual_capture(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    reader = simulated_reader(stripe_gateway, account.id)
    intent = stripe_gateway.create_payment_intent(
        account.id,
        amount=4000,
        currency="cad",
        application_fee_amount=200,
        metadata={"order_id": 9},
        idempotency_key="order-9-attempt-1",
        payment_method_types=("card_present",),
        capture_method="manual",
    )
    stripe_gateway.process_payment_intent_on_reader(account.id, reader.id, intent.id)
    stripe_gateway.simulate_present_payment_method(account.id, reader.id)

    assert (
        stripe_gateway.retrieve_payment_intent(account.id, intent.id).status == "requires_capture"
    )
    captured = stripe_gateway.capture_payment_intent(account.id, intent.id)
    assert (captured.status, captured.amount_received) == ("succeeded", 4000)


# -- events ---------------------------------------------------------------------------------------


def test_list_events_filters_and_follows_pages(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    account = connected_account(stripe_gateway, stripe_fake)
    started = int(time.time())
    ids = [card_intent(stripe_gateway, account.id, f"order-{n}-attempt-1").id for n in range(5)]
    stripe_gateway.page_size = 2

    created = stripe_gateway.list_events(
        account.id, types=["payment_intent.created"], created_gte=started - 1
    )
    assert [event.object_id for event in created] == list(reversed(ids))
    assert [event.object_id for event in stripe_gateway.list_events(account.id, limit=3)] == list(
        reversed(ids[2:])
    )
    assert stripe_gateway.list_events(account.id, created_gte=started + 3600) == []
    wildcard = stripe_gateway.list_events(account.id, types=["account.*"])
    assert [event.type for event in wildcard] == ["account.updated"]
    assert stripe_gateway.retrieve_event(account.id, created[0].id) == created[0]
    # The platform's own events are not the connected accounts' events.
    assert stripe_gateway.list_events(None) == []


def test_undelivered_events_can_be_listed(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    stripe_fake.add_webhook_endpoint("http://127.0.0.1:9/unreachable", WEBHOOK_SECRET)
    stripe_fake.webhooks.set_mode("drop")
    account = connected_account(stripe_gateway, stripe_fake)
    intent = card_intent(stripe_gateway, account.id, "order-7-attempt-1")
    stripe_gateway.confirm_payment_intent(account.id, intent.id, payment_method="pm_card_visa")

    undelivered = stripe_gateway.list_events(account.id, delivery_success=False)

    assert "payment_intent.succeeded" in [event.type for event in undelivered]
    assert all(event.pending_webhooks == 1 for event in undelivered)
    assert stripe_gateway.list_events(account.id, delivery_success=True) == []


# -- webhook signatures ---------------------------------------------------------------------------


def signed_event(secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    payload = json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "type": "payment_intent.succeeded",
            "account": "acct_1",
            "created": 1,
            "livemode": False,
            "pending_webhooks": 1,
            "api_version": "2026-10-28.endive",
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "succeeded"}},
        }
    ).encode()
    return payload, sign(payload, secret, timestamp)


def test_construct_event_accepts_a_valid_signature(stripe_gateway: StripeClientGateway) -> None:
    payload, header = signed_event()

    event = stripe_gateway.construct_event(payload, header)

    assert (event.id, event.type, event.account) == ("evt_1", "payment_intent.succeeded", "acct_1")
    assert (event.object_id, event.object_type) == ("pi_1", "payment_intent")
    assert construct_event(payload.decode(), header, WEBHOOK_SECRET) == event


@pytest.mark.parametrize(
    "forgery",
    ["wrong secret", "tampered body", "stale timestamp", "no header", "garbled header"],
)
def test_construct_event_refuses_forged_or_stale_signatures(
    stripe_gateway: StripeClientGateway, forgery: str
) -> None:
    payload, header = signed_event()
    if forgery == "wrong secret":
        payload, header = signed_event(secret="whsec_someone_else")
    elif forgery == "tampered body":
        payload = payload.replace(b"succeeded", b"failed")
    elif forgery == "stale timestamp":
        payload, header = signed_event(timestamp=int(time.time()) - 301)
    elif forgery == "no header":
        header = ""
    else:
        header = "v1=abc"

    with pytest.raises(WebhookSignatureError):
        stripe_gateway.construct_event(payload, header)


def test_construct_event_refuses_a_signed_body_that_is_not_an_event() -> None:
    payload = b'{"hello": "world"}'

    with pytest.raises(WebhookSignatureError, match="not a Stripe event"):
        construct_event(payload, sign(payload, WEBHOOK_SECRET), WEBHOOK_SECRET)


# -- configuration and failures ----------------------------------------------------------------


def test_gateway_for_chooses_stripe_or_the_fake() -> None:
    keyless = gateway_for(Settings())
    assert keyless.simulated
    assert keyless.api_base == "http://127.0.0.1:12111"

    live = gateway_for(Settings(stripe_secret_key="sk_live_abc", stripe_webhook_secret="whsec_1"))
    assert not live.simulated
    assert live.api_base == STRIPE_API_BASE
    assert live.hosted_test_payment_url(_intent_stub(), return_url="http://x") is None

    pointed = gateway_for(
        Settings(stripe_secret_key="sk_test_abc", stripe_api_base="http://127.0.0.1:1/")
    )
    assert pointed.simulated
    assert pointed.api_base == "http://127.0.0.1:1"

    with pytest.raises(GatewayConfigurationError, match="production"):
        gateway_for(Settings(env=Environment.PRODUCTION))
    production = gateway_for(Settings(env=Environment.PRODUCTION, stripe_secret_key="sk_live_x"))
    assert not production.simulated


def _intent_stub() -> PaymentIntent:
    return PaymentIntent.from_stripe(
        {
            "id": "pi_1",
            "status": "requires_payment_method",
            "amount": 100,
            "currency": "cad",
            "client_secret": "pi_1_secret_x",
        }
    )


def test_unreachable_stripe_is_a_retryable_error() -> None:
    gateway = StripeClientGateway(
        SIMULATED_SECRET_KEY, api_base="http://127.0.0.1:9", max_network_retries=0
    )

    with pytest.raises(StripeUnavailableError) as caught:
        gateway.retrieve_account("acct_1")

    assert caught.value.retryable
    assert caught.value.user_message == "Stripe cannot be reached right now. Try again in a moment."


def test_a_wrong_key_is_a_configuration_error(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    gateway = StripeClientGateway(
        "sk_live_notatestkey", api_base=stripe_gateway.api_base, max_network_retries=0
    )

    with pytest.raises(StripeAuthenticationError) as caught:
        gateway.create_connected_account(country="CA", email=None)

    assert caught.value.http_status == 401
    assert SECRET_KEY not in str(caught.value)
