"""Stripe's events in any order, any number of times: the books end the same.

Two organizations live the same story (a card payment, a partial refund of lines, a refund of the
rest, a payment whose refund fails, changes of the connected account). One gets each webhook
once, in Stripe's order; the other gets every webhook three times, shuffled. Their orders,
payments, refunds, credit notes, stock and e-mails must end identical.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask

from comptoir.billing.models import Order, Refund
from comptoir.billing.stripe_events import PROCESS_EVENT_JOB, handler_for
from comptoir.billing.stripe_fake import FakeStripe
from comptoir.billing.stripe_fake.accounts import update_account_state
from comptoir.billing.stripe_fake.webhooks import WebhookEndpoint, sign
from comptoir.billing.stripe_gateway import StripeClientGateway
from comptoir.billing.stripe_models import StripeAccount, StripeEvent
from comptoir.platform.db import db
from comptoir.platform.outbox import OutboxMessage
from tests.billing.order_world import (
    OrderWorld,
    build_order_world,
    database,
    line,
    scope,
    set_sold,
    sold,
)
from tests.billing.stripe_helpers import WEBHOOK_SECRET
from tests.billing.stripe_refund_world import (
    Books,
    books,
    pay_by_card,
    refund,
    settle,
)
from tests.billing.stripe_world import connect


def _story(
    app: Flask,
    gateway: StripeClientGateway,
    fake: FakeStripe,
    world: OrderWorld,
    deliver: Callable[[], object],
) -> None:
    """The same payments and refunds for any organization; ``deliver`` sends the held events."""
    account = connect(app, gateway, fake, world.organization_id)
    settle(app, fake)
    set_sold(app, world, "cap", 3)  # orders placed without a cart took no stock: as if they had
    fake.webhooks.set_mode("hold")
    lines = [line(world, "cap", 3), line(world, "course")]
    order_id, _started = pay_by_card(app, gateway, world, account, lines=lines)
    failing_id, _failing = pay_by_card(app, gateway, world, account, card="pm_card_refundFail")
    if handler_for("account.updated") is not None:
        update_account_state(fake, account, payouts_enabled=False)
        update_account_state(fake, account, payouts_enabled=True)
    deliver()
    settle(app, fake)

    with scope(app, world.organization_id):
        order = db.session.get(Order, order_id)
        assert order is not None
        cap_line = next(item.id for item in order.lines if item.name == "Bonnet")
        total = order.total
    first = refund(
        app, world.organization_id, order_id, lines=[{"line_id": cap_line, "quantity": 2}]
    )
    with scope(app, world.organization_id):
        first_row = db.session.get(Refund, first)
        assert first_row is not None
        first_amount = first_row.amount
    refund(app, world.organization_id, order_id, amount=total - first_amount)
    refund(app, world.organization_id, failing_id, amount=3000)
    deliver()
    settle(app, fake)
    fake.webhooks.set_mode("deliver")


def _account_flags(app: Flask, organization_id: int) -> tuple[bool, bool, bool]:
    with scope(app, organization_id):
        account = db.session.execute(sa.select(StripeAccount)).scalar_one()
        return account.details_submitted, account.charges_enabled, account.payouts_enabled


def _event_outcomes(app: Flask, organization_id: int) -> dict[tuple[str, str], int]:
    """Per event type and final state, how many distinct events (account events aside: the first
    one may come before the organization's account row exists)."""
    with database(app):
        rows = db.session.execute(
            sa.select(StripeEvent.type, StripeEvent.state, sa.func.count())
            .where(
                StripeEvent.organization_id == organization_id,
                StripeEvent.type.not_like("account.%"),
            )
            .group_by(StripeEvent.type, StripeEvent.state)
        ).all()
        return {(kind, state): int(count) for kind, state, count in rows}


def test_events_three_times_shuffled_end_like_each_once_in_order(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    in_order = build_order_world(app, slug="club-in-order")
    shuffled = build_order_world(app, slug="club-shuffled")
    seeds = iter([20261126, 424242])

    _story(app, stripe_gateway, stripe_fake, in_order, stripe_fake.webhooks.flush)
    _story(
        app,
        stripe_gateway,
        stripe_fake,
        shuffled,
        lambda: stripe_fake.webhooks.flush(shuffle=True, copies=3, seed=next(seeds)),
    )

    expected: Books = books(app, in_order.organization_id)
    assert books(app, shuffled.organization_id) == expected
    # The story as it should end, whatever the delivery.
    assert expected.orders == ["refunded", "paid"]
    assert [state for _m, state, _a, _r in expected.payments] == ["succeeded", "succeeded"]
    assert [(state, restocked) for _m, state, _a, restocked in expected.refunds] == [
        ("succeeded", True),
        ("succeeded", False),
        ("failed", False),
    ]
    assert [kind for kind, _number, _total in expected.credit_notes] == ["refund", "refund"]
    refund_mails = [subject for _to, subject in expected.mails if subject.startswith("Rembours")]
    assert len(refund_mails) == 2  # one per refund that succeeded, none for the failed one
    assert sold(app, in_order, "cap") == sold(app, shuffled, "cap") == 1
    assert _account_flags(app, shuffled.organization_id) == _account_flags(
        app, in_order.organization_id
    )
    assert _event_outcomes(app, shuffled.organization_id) == _event_outcomes(
        app, in_order.organization_id
    )
    assert not [key for key in _event_outcomes(app, shuffled.organization_id) if key[1] == "failed"]


def _burst_event(number: int) -> bytes:
    return json.dumps(
        {
            "id": f"evt_burst_{number:05d}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "account": "acct_burst",
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2024-06-20",
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": {"id": f"pi_burst_{number:05d}", "object": "payment_intent"}},
        }
    ).encode()


def test_a_burst_of_a_thousand_webhooks_is_accepted_with_none_lost(
    app: Flask, app_gateway: StripeClientGateway, live_server: str
) -> None:
    distinct, duplicates, threads = 1000, 100, 8
    # Every event once, and a hundred of them again, interleaved as Stripe's retries would be.
    numbers = list(range(distinct)) + list(range(0, distinct, distinct // duplicates))
    random.Random(1000).shuffle(numbers)
    host, port = urlsplit(live_server).hostname, urlsplit(live_server).port
    assert host is not None
    answers: list[tuple[int, bool]] = []
    lock = threading.Lock()

    def send(share: list[int]) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=30)
        mine = []
        for number in share:
            body = _burst_event(number)
            connection.request(
                "POST",
                "/webhooks/stripe",
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign(body, WEBHOOK_SECRET),
                },
            )
            response = connection.getresponse()
            answer = json.loads(response.read() or b"{}")
            mine.append((response.status, bool(answer.get("duplicate"))))
        connection.close()
        with lock:
            answers.extend(mine)

    workers = [
        threading.Thread(target=send, args=(numbers[index::threads],)) for index in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)

    assert len(answers) == distinct + duplicates
    assert {status for status, _duplicate in answers} == {200}
    assert sum(duplicate for _status, duplicate in answers) == duplicates
    with database(app):
        stored = db.session.execute(
            sa.select(sa.func.count(sa.distinct(StripeEvent.id))).where(
                StripeEvent.id.like("evt_burst_%")
            )
        ).scalar_one()
        queued = db.session.execute(
            sa.select(sa.func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.job == PROCESS_EVENT_JOB)
        ).scalar_one()
    assert (stored, queued) == (distinct, distinct)
