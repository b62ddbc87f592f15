"""The Stripe fake itself: Stripe's shapes and wire format, and its webhooks."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pytest

from comptoir.billing.stripe_fake import FakeServer, FakeStripe
from comptoir.billing.stripe_fake.accounts import complete_onboarding
from comptoir.billing.stripe_gateway import StripeClientGateway, WebhookSignatureError
from tests.billing.stripe_helpers import (
    FIXTURES_PATH,
    WEBHOOK_SECRET,
    WebhookReceiver,
    connected_account,
    raw_request,
    simulated_reader,
)

# Fields Stripe's API reference marks nullable although their example object fills them in.
NULLABLE = {
    "payment_intent": {
        "automatic_payment_methods",
        "canceled_at",
        "last_payment_error",
        "next_action",
        "payment_method_configuration_details",
        "processing",
        "shipping",
        "transfer_data",
    },
    "charge": {
        "balance_transaction",
        "description",
        "outcome",
        "payment_method_details",
        "receipt_url",
        "shipping",
        "source",
        "transfer_data",
    },
    "terminal.reader": {"action", "ip_address"},
}
# Nullable fields the fake does fill in some state; the walk below must see them filled.
FILLED_SOMETIMES = {
    "payment_intent": {"canceled_at", "last_payment_error", "next_action"},
    "charge": {"balance_transaction", "outcome", "payment_method_details", "receipt_url"},
    "terminal.reader": {"action", "ip_address"},
}
# Fields an object carries in a context its example does not show (Connect events).
CONTEXT_FIELDS = {"event": {"account"}}


def json_type(value: Any) -> str:
    # bool before int: True is an int to Python, a boolean to JSON.
    kinds = ((type(None), "null"), (bool, "boolean"), (int, "integer"), (float, "number"))
    kinds += ((str, "string"), (list, "array"), (dict, "object"))
    return next(name for kind, name in kinds if isinstance(value, kind))


def collect_objects(base: str, account: str) -> dict[str, list[dict[str, Any]]]:
    """Walk the fake through every state Comptoir uses and keep what each answer returned."""
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def call(method: str, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        response = raw_request(base, method, path, params, account=account)
        body = response.body
        if response.status >= 400:
            body = body["error"].get("payment_intent") or body
        return body

    def keep(resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        seen[resource].append(dict(body))
        return dict(body)

    keep("account", call("GET", f"/v1/accounts/{account}"))
    link = raw_request(
        base,
        "POST",
        "/v1/account_links",
        [
            ("account", account),
            ("refresh_url", "http://x/r"),
            ("return_url", "http://x/ok"),
            ("type", "account_onboarding"),
        ],
    )
    keep("account_link", link.body)
    intent_params = [("amount", "2000"), ("currency", "cad"), ("application_fee_amount", "100")]
    paid = keep("payment_intent", call("POST", "/v1/payment_intents", intent_params))
    paid = keep(
        "payment_intent",
        call(
            "POST",
            f"/v1/payment_intents/{paid['id']}/confirm",
            [("payment_method", "pm_card_visa")],
        ),
    )
    keep("charge", call("GET", f"/v1/charges/{paid['latest_charge']}"))
    keep("refund", call("POST", "/v1/refunds", [("payment_intent", paid["id"]), ("amount", "500")]))
    declined = call("POST", "/v1/payment_intents", intent_params)
    declined = keep(
        "payment_intent",
        call(
            "POST",
            f"/v1/payment_intents/{declined['id']}/confirm",
            [("payment_method", "pm_card_chargeDeclined")],
        ),
    )
    keep("charge", call("GET", f"/v1/charges/{declined['latest_charge']}"))
    challenged = call("POST", "/v1/payment_intents", intent_params)
    keep(
        "payment_intent",
        call(
            "POST",
            f"/v1/payment_intents/{challenged['id']}/confirm",
            [("payment_method", "pm_card_authenticationRequired"), ("return_url", "http://x")],
        ),
    )
    keep("payment_intent", call("POST", f"/v1/payment_intents/{challenged['id']}/cancel"))
    location = keep(
        "terminal.location",
        call(
            "POST",
            "/v1/terminal/locations",
            [("display_name", "Pool"), ("address[country]", "CA"), ("address[city]", "Laval")],
        ),
    )
    reader = keep(
        "terminal.reader",
        call(
            "POST",
            "/v1/terminal/readers",
            [("registration_code", "simulated-wpe"), ("location", location["id"])],
        ),
    )
    present = [("payment_method_types[0]", "card_present"), ("amount", "1500"), ("currency", "cad")]
    in_person = call("POST", "/v1/payment_intents", present)
    keep(
        "terminal.reader",
        call(
            "POST",
            f"/v1/terminal/readers/{reader['id']}/process_payment_intent",
            [("payment_intent", in_person["id"])],
        ),
    )
    keep(
        "terminal.reader",
        call("POST", f"/v1/test_helpers/terminal/readers/{reader['id']}/present_payment_method"),
    )
    keep("deleted_terminal.reader", call("DELETE", f"/v1/terminal/readers/{reader['id']}"))
    keep("deleted_terminal.location", call("DELETE", f"/v1/terminal/locations/{location['id']}"))
    for event in call("GET", "/v1/events", [("limit", "100")])["data"]:
        keep("event", event)
    return seen


def test_objects_have_stripes_fields_and_types(
    stripe_server: FakeServer, stripe_fake: FakeStripe, stripe_gateway: StripeClientGateway
) -> None:
    examples = json.loads(FIXTURES_PATH.read_text())["resources"]
    account = connected_account(stripe_gateway, stripe_fake).id
    seen = collect_objects(stripe_server.base_url, account)
    deleted = raw_request(stripe_server.base_url, "DELETE", f"/v1/accounts/{account}")
    seen["deleted_account"].append(deleted.body)

    assert set(seen) >= {
        "account",
        "account_link",
        "payment_intent",
        "charge",
        "refund",
        "terminal.location",
        "terminal.reader",
        "deleted_terminal.reader",
        "deleted_terminal.location",
        "deleted_account",
        "event",
    }
    for resource, objects in seen.items():
        example = examples[resource]
        expected = set(example) | CONTEXT_FIELDS.get(resource, set())
        filled: set[str] = set()
        for obj in objects:
            assert set(obj) == expected, (resource, set(obj) ^ expected)
            for name, value in obj.items():
                if name not in example or example[name] is None:
                    continue
                if value is None:
                    assert name in NULLABLE.get(resource, set()), (resource, name)
                    continue
                filled.add(name)
                assert json_type(value) == json_type(example[name]), (resource, name, value)
        assert FILLED_SOMETIMES.get(resource, set()) <= filled, resource
    assert all(event["account"] == account for event in seen["event"])


# -- the wire format ------------------------------------------------------------------------------


def test_form_encoding_nested_keys_and_arrays(
    stripe_server: FakeServer, stripe_fake: FakeStripe
) -> None:
    account = stripe_fake_account(stripe_fake)
    params = [
        ("amount", "1500"),
        ("currency", "CAD"),
        ("payment_method_types[]", "card_present"),
        ("payment_method_types[]", "interac_present"),
        ("metadata[order_id]", "9"),
        ("metadata[attempt]", "2"),
    ]

    created = raw_request(
        stripe_server.base_url, "POST", "/v1/payment_intents", params, account=account
    )

    assert created.status == 200
    assert created.body["payment_method_types"] == ["card_present", "interac_present"]
    assert created.body["metadata"] == {"order_id": "9", "attempt": "2"}
    assert created.body["currency"] == "cad"
    assert created.headers["Content-Type"] == "application/json"
    assert created.headers["Request-Id"].startswith("req_")


def stripe_fake_account(fake: FakeStripe) -> str:
    from comptoir.billing.stripe_fake.accounts import create_account

    with fake.lock:
        account = create_account(fake, fake.platform, {"country": "CA"})
    complete_onboarding(fake, account["id"])
    return str(account["id"])


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "You did not provide an API key."),
        ("sk_live_abcdefghijklmnop", "Invalid API Key provided: sk_live_"),
        ("pk_test_abcdefghijklmnop", "Invalid API Key provided: pk_test_"),
    ],
)
def test_a_secret_test_key_is_required(
    stripe_server: FakeServer, stripe_fake: FakeStripe, key: str | None, message: str
) -> None:
    answer = raw_request(stripe_server.base_url, "GET", "/v1/events", key=key)

    assert answer.status == 401
    assert answer.body["error"]["type"] == "invalid_request_error"
    assert answer.body["error"]["message"].startswith(message)


def test_errors_have_stripes_shape(stripe_server: FakeServer, stripe_fake: FakeStripe) -> None:
    base = stripe_server.base_url
    account = stripe_fake_account(stripe_fake)

    unknown = raw_request(
        base,
        "POST",
        "/v1/payment_intents",
        [("amount", "1000"), ("colour", "red")],
        account=account,
    )
    missing = raw_request(base, "GET", "/v1/payment_intents/pi_nope", account=account)
    nowhere = raw_request(base, "GET", "/v1/nowhere", account=account)
    intent = raw_request(
        base,
        "POST",
        "/v1/payment_intents",
        [("amount", "1000"), ("currency", "cad")],
        account=account,
    )
    declined = raw_request(
        base,
        "POST",
        f"/v1/payment_intents/{intent.body['id']}/confirm",
        [
            ("payment_method_data[type]", "card"),
            ("payment_method_data[card][number]", "4000000000000002"),
        ],
        account=account,
    )

    assert (unknown.status, unknown.body["error"]["code"], unknown.body["error"]["param"]) == (
        400,
        "parameter_unknown",
        "colour",
    )
    assert (missing.status, missing.body["error"]["code"]) == (404, "resource_missing")
    assert missing.body["error"]["message"] == "No such payment_intent: 'pi_nope'"
    assert nowhere.status == 404
    assert nowhere.body["error"]["message"].startswith("Unrecognized request URL")
    error = declined.body["error"]
    assert declined.status == 402
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert error["message"] == "Your card was declined."
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert error["charge"].startswith("ch_")


def test_concurrent_requests_keep_a_consistent_state(
    stripe_server: FakeServer, stripe_fake: FakeStripe
) -> None:
    account = stripe_fake_account(stripe_fake)
    ids: list[str] = []
    lock = threading.Lock()

    def create(number: int) -> None:
        answer = raw_request(
            stripe_server.base_url,
            "POST",
            "/v1/payment_intents",
            [("amount", "1000"), ("currency", "cad"), ("metadata[n]", str(number))],
            account=account,
            idempotency_key=f"order-{number % 10}",
        )
        with lock:
            ids.append(answer.body["id"])

    threads = [threading.Thread(target=create, args=(n % 10,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(ids) == 40
    assert len(set(ids)) == 10
    listed = raw_request(
        stripe_server.base_url, "GET", "/v1/payment_intents", [("limit", "100")], account=account
    )
    assert len(listed.body["data"]) == 10


# -- webhooks -------------------------------------------------------------------------------------


def test_events_are_posted_signed_like_stripe(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe, webhook_receiver: WebhookReceiver
) -> None:
    stripe_fake.add_webhook_endpoint(webhook_receiver.url, WEBHOOK_SECRET)
    account = connected_account(stripe_gateway, stripe_fake)
    intent = stripe_gateway.create_payment_intent(
        account.id,
        amount=1000,
        currency="cad",
        application_fee_amount=None,
        metadata={"order_id": 1},
        idempotency_key="order-1-attempt-1",
    )
    stripe_gateway.confirm_payment_intent(account.id, intent.id, payment_method="pm_card_visa")

    received = webhook_receiver.wait_for(4)
    assert stripe_fake.webhooks.wait_idle()

    events = [
        stripe_gateway.construct_event(item.payload, item.headers["Stripe-Signature"])
        for item in received
    ]
    assert [event.type for event in events] == [
        "account.updated",
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]
    assert {event.account for event in events} == {account.id}
    assert events[-1].data_object["status"] == "succeeded"
    assert events[1].request_idempotency_key == "order-1-attempt-1"
    assert received[0].headers["Content-Type"].startswith("application/json")
    with pytest.raises(WebhookSignatureError):
        stripe_gateway.construct_event(
            received[0].payload, received[0].headers["Stripe-Signature"], "whsec_other"
        )
    # Delivered everywhere: nothing is left for reconciliation to fetch.
    assert stripe_gateway.list_events(account.id, delivery_success=False) == []


def test_failed_deliveries_are_retried_a_bounded_number_of_times(
    stripe_fake: FakeStripe, webhook_receiver: WebhookReceiver
) -> None:
    stripe_fake.webhooks.max_attempts = 3
    stripe_fake.add_webhook_endpoint(webhook_receiver.url, WEBHOOK_SECRET)
    webhook_receiver.failures = 1
    account = stripe_fake_account(stripe_fake)

    first = webhook_receiver.wait_for(2)
    assert stripe_fake.webhooks.wait_idle()
    assert first[0].payload == first[1].payload
    assert [item.status for item in stripe_fake.webhooks.attempts] == [500, 200]

    webhook_receiver.failures = 10
    stripe_fake_account(stripe_fake)
    assert stripe_fake.webhooks.wait_idle()
    assert len(webhook_receiver.received) == 2 + 3
    (event,) = [item for item in stripe_fake.all_events() if item["account"] != account]
    assert event["pending_webhooks"] == 1


def test_held_deliveries_flush_shuffled_and_repeated(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe, webhook_receiver: WebhookReceiver
) -> None:
    stripe_fake.add_webhook_endpoint(webhook_receiver.url, WEBHOOK_SECRET)
    stripe_fake.webhooks.set_mode("hold")
    account = connected_account(stripe_gateway, stripe_fake)
    simulated_reader(stripe_gateway, account.id)
    intent = stripe_gateway.create_payment_intent(
        account.id,
        amount=1000,
        currency="cad",
        application_fee_amount=None,
        metadata={},
        idempotency_key="order-1-attempt-1",
    )
    stripe_gateway.confirm_payment_intent(account.id, intent.id, payment_method="pm_card_visa")
    in_order = [event["id"] for event in stripe_fake.all_events()]
    assert webhook_receiver.received == []

    queued = stripe_fake.webhooks.flush(shuffle=True, copies=3, seed=7)

    assert queued == 3 * len(in_order)
    received = webhook_receiver.wait_for(queued)
    assert stripe_fake.webhooks.wait_idle()
    delivered = [json.loads(item.payload)["id"] for item in received]
    assert sorted(delivered) == sorted(in_order * 3)
    assert delivered != [event_id for event_id in in_order for _ in range(3)]


def test_held_deliveries_can_be_taken_signed_instead(
    stripe_gateway: StripeClientGateway, stripe_fake: FakeStripe
) -> None:
    stripe_fake.add_webhook_endpoint("http://127.0.0.1:9/never", WEBHOOK_SECRET)
    stripe_fake.webhooks.set_mode("hold")
    account = connected_account(stripe_gateway, stripe_fake)

    (delivery,) = stripe_fake.webhooks.take_held()

    event = stripe_gateway.construct_event(delivery.payload, delivery.headers["Stripe-Signature"])
    assert (event.type, event.account) == ("account.updated", account.id)
    assert stripe_fake.webhooks.take_held() == []


def test_admin_endpoints_switch_the_fake_over_http(
    stripe_server: FakeServer, stripe_fake: FakeStripe, webhook_receiver: WebhookReceiver
) -> None:
    base = stripe_server.base_url
    added = raw_request(
        base,
        "POST",
        "/_fake/webhook_endpoints",
        [("url", webhook_receiver.url), ("secret", WEBHOOK_SECRET)],
    )
    assert added.body["secret"] == WEBHOOK_SECRET
    assert raw_request(base, "POST", "/_fake/webhooks/mode", [("mode", "hold")]).status == 200
    account = stripe_fake_account(stripe_fake)

    held = raw_request(base, "POST", "/_fake/webhooks/held")
    (item,) = held.body["data"]
    assert json.loads(item["payload"])["account"] == account
    state = raw_request(
        base, "POST", f"/_fake/accounts/{account}/state", [("charges_enabled", "false")]
    )
    assert state.body["charges_enabled"] is False
    assert raw_request(base, "POST", "/_fake/webhooks/flush").body == {"queued": 1}
    assert raw_request(base, "POST", "/_fake/reset", key=None).status == 401
    assert raw_request(base, "POST", "/_fake/reset").status == 200
    assert raw_request(base, "GET", f"/v1/accounts/{account}").status == 404
    assert stripe_fake.webhooks.endpoints == {}
