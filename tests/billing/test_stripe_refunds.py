"""Refunds of Stripe payments: through the Refunds API on the connected account for cards, with the
card present on a reader for Interac debit; states moved only by what Stripe says; the credit
note, the order's move and the e-mail once the money is back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing import payments, refunds, stripe_refunds
from comptoir.billing.models import Order, Refund
from comptoir.billing.stripe_fake import FakeStripe
from comptoir.billing.stripe_fake.webhooks import WebhookEndpoint
from comptoir.billing.stripe_gateway import StripeClientGateway
from comptoir.billing.stripe_models import TerminalReader
from comptoir.platform.db import db
from comptoir.platform.errors import ConflictError, ValidationError
from tests.billing.order_world import (
    OWNER,
    OrderWorld,
    build_order_world,
    mails,
    order_state,
    place,
    scope,
)
from tests.billing.stripe_refund_world import (
    add_reader,
    pay_by_card,
    pay_on_reader,
    refund,
    refund_row,
    run_outbox,
    set_fees,
    settle,
)
from tests.billing.stripe_world import connect, start_card_payment

TOTAL = 11498  # swimming lessons, $100 with GST and QST


def _refund_mails(app: Flask, organization_id: int) -> list[str]:
    return [
        mail["subject"]
        for mail in mails(app, organization_id)
        if mail["subject"].startswith(("Refund", "Cancellation", "Remboursement", "Annulation"))
    ]


def _stripe_refund(fake: FakeStripe, account: str, refund_id: str) -> tuple[dict[str, Any], int]:
    """The refund as the fake keeps it, and the share of the application fee it gave back."""
    store = fake.store_for(account)
    return store.objects[refund_id], int(fake.hidden(store, refund_id).get("fee_refunded", 0))


@pytest.mark.parametrize("refund_fee", [True, False])
def test_partial_then_full_refund_of_a_card_payment(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
    refund_fee: bool,
) -> None:
    world = build_order_world(app)
    set_fees(app, world.organization_id, basis_points=300, fixed=30, refund_fee=refund_fee)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    order_id, started = pay_by_card(app, stripe_gateway, world, account)
    settle(app, stripe_fake)
    assert order_state(app, order_id).state == "paid"
    fee = (TOTAL * 300 + 5000) // 10000 + 30

    first = refund(app, world.organization_id, order_id, amount=2000)
    row = refund_row(app, world.organization_id, first)
    # Stripe has it; nothing is credited until Stripe says the money went back.
    assert (row.state.value, row.provider_reference[:3]) == ("processing", "re_")
    assert order_state(app, order_id).credit_notes == []
    assert order_state(app, order_id).state == "paid"

    settle(app, stripe_fake)
    after_first = order_state(app, order_id)
    assert after_first.state == "partially_refunded"
    assert after_first.refunds == [("card", "succeeded", 2000)]
    assert after_first.credit_notes == [2000]
    stripe_refund, fee_back = _stripe_refund(stripe_fake, account, row.provider_reference)
    assert stripe_refund["amount"] == 2000
    assert stripe_refund["payment_intent"] == started.intent_id
    assert stripe_refund["metadata"]["comptoir_refund_id"] == str(first)
    assert fee_back == (fee * 2000 // TOTAL if refund_fee else 0)

    second = refund(app, world.organization_id, order_id, amount=TOTAL - 2000)
    settle(app, stripe_fake)
    final = order_state(app, order_id)
    assert final.state == "refunded"
    assert final.refunds == [("card", "succeeded", 2000), ("card", "succeeded", TOTAL - 2000)]
    assert final.credit_notes == [2000, TOTAL - 2000]
    charge = stripe_gateway.retrieve_charge(
        account,
        stripe_gateway.retrieve_payment_intent(account, started.intent_id).latest_charge or "",
    )
    assert (charge.amount_refunded, charge.refunded) == (TOTAL, True)
    second_row = refund_row(app, world.organization_id, second)
    _refund, second_fee_back = _stripe_refund(stripe_fake, account, second_row.provider_reference)
    assert second_fee_back == (fee * (TOTAL - 2000) // TOTAL if refund_fee else 0)
    # One e-mail per refund, each once it succeeded.
    assert len(_refund_mails(app, world.organization_id)) == 2
    run_outbox(app)
    assert len(_refund_mails(app, world.organization_id)) == 2


def test_refunding_more_than_what_remains_is_refused_before_stripe(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    # Split tender: 6,498 by card, the rest in cash.
    order_id, _token = place(app, world)
    started = start_card_payment(
        app, stripe_gateway, world.organization_id, order_id, amount=TOTAL - 5000
    )
    stripe_gateway.confirm_payment_intent(account, started.intent_id, payment_method="pm_card_visa")
    settle(app, stripe_fake)
    with scope(app, world.organization_id) as organization:
        order = db.session.get(Order, order_id)
        assert order is not None
        payments.record_payment(
            organization=organization, actor=OWNER, order=order, method="cash", amount=5000
        )
        db.session.commit()
    assert order_state(app, order_id).state == "paid"

    with pytest.raises(ValidationError) as beyond_order:
        refund(app, world.organization_id, order_id, amount=TOTAL + 1)
    with pytest.raises(ValidationError) as beyond_card:
        refund(app, world.organization_id, order_id, amount=TOTAL - 4999)

    assert "amount" in beyond_order.value.fields
    assert beyond_card.value.fields["amount"] == [
        "This is more than what can still be refunded of the payment ($64.98)."
    ]
    assert stripe_fake.objects_of(stripe_fake.store_for(account), "refund") == []
    assert order_state(app, order_id).refunds == []


def test_stripe_refusing_an_over_refund_is_shown_and_changes_nothing(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    order_id, started = pay_by_card(app, stripe_gateway, world, account)
    settle(app, stripe_fake)
    # Someone refunded part of it in Stripe's dashboard: Comptoir does not know.
    stripe_gateway.create_refund(
        account,
        payment_intent=started.intent_id,
        amount=5000,
        refund_application_fee=False,
        idempotency_key="dashboard-refund",
    )
    settle(app, stripe_fake)
    before = order_state(app, order_id)

    with pytest.raises(ValidationError) as refused:
        refund(app, world.organization_id, order_id, amount=TOTAL)

    assert refused.value.fields == {
        "amount": ["The amount is larger than what this payment allows."]
    }
    assert order_state(app, order_id) == before
    assert before.refunds == []
    assert before.credit_notes == []
    assert before.state == "paid"


def test_a_refund_stripe_fails_is_not_credited_and_sends_nothing(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    order_id, _started = pay_by_card(app, stripe_gateway, world, account, card="pm_card_refundFail")
    settle(app, stripe_fake)

    refund_id = refund(app, world.organization_id, order_id, amount=3000)
    settle(app, stripe_fake)

    state = order_state(app, order_id)
    assert state.refunds == [("card", "failed", 3000)]
    assert state.credit_notes == []
    assert state.state == "paid"
    assert _refund_mails(app, world.organization_id) == []
    # Nothing is held by the failed refund: the same amount may be refunded again.
    assert refund_row(app, world.organization_id, refund_id).details["failure_message"]
    refund(app, world.organization_id, order_id, amount=3000)
    settle(app, stripe_fake)
    assert order_state(app, order_id).refunds == [("card", "failed", 3000)] * 2


def test_cancelling_a_card_order_refunds_it_and_mails_once_the_money_is_back(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    order_id, _started = pay_by_card(app, stripe_gateway, world, account)
    settle(app, stripe_fake)
    stripe_fake.webhooks.set_mode("hold")

    with scope(app, world.organization_id) as organization:
        order = db.session.get(Order, order_id)
        assert order is not None
        refunds.cancel_order(
            organization=organization, actor=OWNER, order=order, reason="Course cancelled"
        )
        db.session.commit()
    run_outbox(app)
    cancelled = order_state(app, order_id)
    assert cancelled.state == "cancelled"
    assert cancelled.refunds == [("card", "processing", TOTAL)]
    assert cancelled.credit_notes == [TOTAL]
    assert _refund_mails(app, world.organization_id) == []  # the money is not back yet

    stripe_fake.webhooks.flush(shuffle=True, copies=2, seed=7)
    settle(app, stripe_fake)
    assert order_state(app, order_id).refunds == [("card", "succeeded", TOTAL)]
    sent = [mail for mail in mails(app, world.organization_id) if "C-" in mail["subject"]]
    cancellation = [mail for mail in sent if mail["subject"].startswith("Annulation")]
    assert len(cancellation) == 1, sent
    assert "114,98" in cancellation[0]["text"]


def _start_on_reader(
    app: Flask,
    gateway: StripeClientGateway,
    organization_id: int,
    refund_id: int,
    reader_id: str,
) -> None:
    """Staff send a card-present refund to a reader."""
    with scope(app, organization_id) as organization:
        row = db.session.get(Refund, refund_id)
        assert row is not None
        stripe_refunds.start_reader_refund(
            organization=organization, actor=OWNER, refund=row, reader_id=reader_id, gateway=gateway
        )
        db.session.commit()


def test_an_interac_debit_is_refunded_with_the_card_on_a_reader(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    reader_id = add_reader(app, stripe_gateway, world.organization_id, account)
    order_id, _started = pay_on_reader(app, stripe_gateway, world, account, reader_id)
    settle(app, stripe_fake)
    assert order_state(app, order_id).state == "paid"

    refund_id = refund(app, world.organization_id, order_id, amount=TOTAL, method="terminal")
    waiting = refund_row(app, world.organization_id, refund_id)
    assert (waiting.state.value, waiting.details["needs_card_present"]) == ("pending", True)
    assert stripe_fake.objects_of(stripe_fake.store_for(account), "refund") == []

    def progress() -> stripe_refunds.ReaderRefundProgress:
        with scope(app, world.organization_id) as organization:
            row = db.session.get(Refund, refund_id)
            assert row is not None
            found = stripe_refunds.reader_refund_progress(
                organization=organization, gateway=stripe_gateway, refund=row
            )
            db.session.commit()
            return found

    def start() -> None:
        _start_on_reader(app, stripe_gateway, world.organization_id, refund_id, reader_id)

    def reader_busy_with() -> int | None:
        with scope(app, world.organization_id):
            return db.session.execute(
                sa.select(TerminalReader.refund_id).where(TerminalReader.reader_id == reader_id)
            ).scalar_one()

    assert progress().status == "choose_reader"
    start()
    assert progress().status == "waiting"
    assert reader_busy_with() == refund_id
    # A declined card on the reader: the refund waits for another try, the reader is free.
    stripe_gateway.simulate_present_payment_method(
        account, reader_id, type="interac_present", card_number="4000000000000002"
    )
    settle(app, stripe_fake)
    declined = progress()
    assert declined.status == "declined"
    assert declined.message
    assert reader_busy_with() is None
    assert order_state(app, order_id).refunds == [("terminal", "pending", TOTAL)]

    start()
    stripe_gateway.simulate_present_payment_method(account, reader_id, type="interac_present")
    settle(app, stripe_fake)

    final = order_state(app, order_id)
    assert final.refunds == [("terminal", "succeeded", TOTAL)]
    assert final.credit_notes == [TOTAL]
    assert final.state == "refunded"
    assert reader_busy_with() is None
    assert progress().status == "succeeded"
    assert len(_refund_mails(app, world.organization_id)) == 1


def test_an_interac_refund_waiting_for_a_card_can_be_abandoned(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    reader_id = add_reader(app, stripe_gateway, world.organization_id, account)
    order_id, _started = pay_on_reader(app, stripe_gateway, world, account, reader_id)
    settle(app, stripe_fake)
    refund_id = refund(app, world.organization_id, order_id, amount=5000, method="terminal")

    _start_on_reader(app, stripe_gateway, world.organization_id, refund_id, reader_id)
    with scope(app, world.organization_id) as organization:
        row = db.session.get(Refund, refund_id)
        assert row is not None
        stripe_refunds.abandon_refund(
            organization=organization, actor=OWNER, refund=row, gateway=stripe_gateway
        )
        db.session.commit()
        with pytest.raises(ConflictError):
            stripe_refunds.abandon_refund(
                organization=organization, actor=OWNER, refund=row, gateway=stripe_gateway
            )

    assert order_state(app, order_id).refunds == [("terminal", "cancelled", 5000)]
    assert stripe_gateway.retrieve_reader(account, reader_id).action is None
    # What it held is free again.
    refund(app, world.organization_id, order_id, amount=TOTAL, method="terminal")


# --------------------------------------------------------------------------- the pages


def _sign_in(client: FlaskClient, world: OrderWorld) -> None:
    with client.session_transaction() as cookie_session:
        cookie_session["_user_id"] = world.logins["owner"]
        cookie_session["_fresh"] = True
        cookie_session["locale"] = "en"


def _refund_form(method: str, amount: str) -> dict[str, str]:
    return {
        "refund-kind": "amount",
        "refund-amount": amount,
        "refund-reason": "Returned",
        "refund-method": method,
        "refund-restock": "y",
    }


@dataclass(frozen=True)
class RefundOnReader:
    world: OrderWorld
    order_id: int
    order_page: str
    reader_page: str
    reader_row_id: int


def _interac_refund_asked_from_the_order_page(
    app: Flask,
    client: FlaskClient,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
) -> RefundOnReader:
    """An order paid by Interac on a reader; the owner asks for its full refund on the order
    page and is sent to the refund's reader page."""
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    reader_id = add_reader(app, stripe_gateway, world.organization_id, account)
    order_id, _started = pay_on_reader(app, stripe_gateway, world, account, reader_id)
    settle(app, stripe_fake)
    _sign_in(client, world)
    order_page = f"/o/{world.org_slug}/admin/orders/{order_id}"
    assert "refunded with the card present" in client.get(order_page).get_data(as_text=True)
    asked = client.post(f"{order_page}/refunds", data=_refund_form("terminal", "114.98"))
    assert asked.status_code == 303
    reader_page = asked.headers["Location"]
    assert "/reader" in reader_page
    with scope(app, world.organization_id):
        row_id = db.session.execute(
            sa.select(TerminalReader.id).where(TerminalReader.reader_id == reader_id)
        ).scalar_one()
    return RefundOnReader(world, order_id, order_page, reader_page, row_id)


def test_staff_refund_a_card_payment_from_the_order_page(
    app: Flask,
    client: FlaskClient,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    order_id, _started = pay_by_card(app, stripe_gateway, world, account)
    settle(app, stripe_fake)
    _sign_in(client, world)
    page_url = f"/o/{world.org_slug}/admin/orders/{order_id}"

    page = client.get(page_url).get_data(as_text=True)
    assert '<option selected value="card">' in page or 'value="card" selected' in page

    too_much = client.post(f"{page_url}/refunds", data=_refund_form("card", "200.00"))
    assert too_much.status_code == 422
    assert "more than what can still be refunded" in too_much.get_data(as_text=True)

    asked = client.post(f"{page_url}/refunds", data=_refund_form("card", "20.00"))
    assert asked.status_code == 303
    followed = client.get(asked.headers["Location"]).get_data(as_text=True)
    assert "The refund is sent to Stripe." in followed
    assert "the credit note is issued once Stripe confirms the refund" in followed
    settle(app, stripe_fake)
    assert order_state(app, order_id).refunds == [("card", "succeeded", 2000)]
    assert order_state(app, order_id).state == "partially_refunded"


def test_staff_refund_an_interac_debit_on_a_reader_from_the_pages(
    app: Flask,
    client: FlaskClient,
    stripe_gateway: StripeClientGateway,
    app_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    on_reader = _interac_refund_asked_from_the_order_page(app, client, stripe_gateway, stripe_fake)
    order_id, reader_page, row_id = (
        on_reader.order_id,
        on_reader.reader_page,
        on_reader.reader_row_id,
    )
    world = on_reader.world
    page = client.get(reader_page).get_data(as_text=True)
    assert "it is refunded with the card present" in page
    assert "Choose a reader, then ask the customer to present the card they paid with." in page

    unknown = client.post(reader_page, data={"reader_id": "999999"})
    assert unknown.status_code == 422
    assert "Choose one of the organization&#39;s readers." in unknown.get_data(as_text=True)

    started = client.post(reader_page, data={"reader_id": str(row_id)})
    assert started.status_code == 303
    status = client.get(f"{reader_page}/status").get_json()
    assert (status["state"], status["final"]) == ("waiting", False)
    assert "Waiting for the customer" in status["message"]

    declined = client.post(f"{reader_page}/simulate", data={"card": "declined"})
    assert declined.status_code == 303
    status = client.get(f"{reader_page}/status").get_json()
    assert (status["state"], status["final"]) == ("declined", True)

    client.post(reader_page, data={"reader_id": str(row_id)})
    client.post(f"{reader_page}/simulate", data={"card": "interac"})
    status = client.get(f"{reader_page}/status").get_json()
    # Asked from the reader itself: no event was processed yet.
    assert (status["state"], status["refund_state"]) == ("approved", "succeeded")
    settle(app, stripe_fake)
    final = order_state(app, order_id)
    assert (final.state, final.refunds, final.credit_notes) == (
        "refunded",
        [("terminal", "succeeded", TOTAL)],
        [TOTAL],
    )
    assert len(_refund_mails(app, world.organization_id)) == 1


def test_staff_stop_waiting_for_the_card_then_abandon_the_refund_from_the_reader_page(
    app: Flask,
    client: FlaskClient,
    stripe_gateway: StripeClientGateway,
    app_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    on_reader = _interac_refund_asked_from_the_order_page(app, client, stripe_gateway, stripe_fake)
    order_id, page_url, reader_page_url, row_id = (
        on_reader.order_id,
        on_reader.order_page,
        on_reader.reader_page,
        on_reader.reader_row_id,
    )

    client.post(reader_page_url, data={"reader_id": str(row_id)})
    cancelled = client.post(f"{reader_page_url}/cancel")
    assert cancelled.status_code == 303
    assert cancelled.headers["Location"].endswith(reader_page_url.rsplit("/o/", 1)[-1])
    page = client.get(reader_page_url).get_data(as_text=True)
    assert "The reader stopped waiting for the card." in page

    client.post(reader_page_url, data={"reader_id": str(row_id)})
    abandoned = client.post(f"{reader_page_url}/abandon")
    assert abandoned.status_code == 303
    assert abandoned.headers["Location"].endswith(page_url)
    assert "The refund is abandoned: nothing was given back." in client.get(page_url).get_data(
        as_text=True
    )
    assert order_state(app, order_id).refunds == [("terminal", "cancelled", TOTAL)]
