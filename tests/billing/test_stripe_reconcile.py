"""The reconciliation sweep: lost webhooks, payments and refunds stuck in progress, events left
failed or never processed, one organization's trouble kept from the others."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from comptoir.billing import stripe_reconcile
from comptoir.billing.stripe_events import PROCESS_EVENT_JOB
from comptoir.billing.stripe_fake import FakeStripe
from comptoir.billing.stripe_fake.webhooks import WebhookEndpoint
from comptoir.billing.stripe_gateway import StripeClientGateway
from comptoir.billing.stripe_models import StripeAccount, StripeEvent
from comptoir.billing.stripe_reconcile import ReconciliationReport
from comptoir.platform.db import db
from comptoir.platform.outbox import OutboxMessage, OutboxStatus
from tests.billing.order_world import build_order_world, database, order_state, scope
from tests.billing.stripe_refund_world import (
    pay_by_card,
    refund,
    run_outbox,
    settle,
)
from tests.billing.stripe_world import connect

TOTAL = 11498


def _reconcile(app: Flask, gateway: StripeClientGateway, **options: Any) -> ReconciliationReport:
    with app.app_context():
        try:
            return stripe_reconcile.reconcile(gateway=gateway, **options)
        finally:
            db.session.remove()


def _events(app: Flask) -> dict[str, tuple[str, str, int]]:
    with database(app):
        rows = db.session.execute(sa.select(StripeEvent)).scalars()
        return {row.id: (row.source, row.state, row.attempts) for row in rows}


def test_a_dropped_webhook_is_repaired_by_one_reconciliation_run(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    settle(app, stripe_fake)
    stripe_fake.webhooks.set_mode("drop")
    order_id, _started = pay_by_card(app, stripe_gateway, world, account)
    settle(app, stripe_fake)
    assert order_state(app, order_id).state == "awaiting_payment"  # nothing arrived

    report = _reconcile(app, stripe_gateway)
    run_outbox(app)

    assert order_state(app, order_id).state == "paid"
    assert report.failures == []
    assert report.events_stored == report.events_listed > 0
    reconciled = [event for event in _events(app).values() if event[0] == "reconciliation"]
    assert len(reconciled) == report.events_stored
    assert {state for _source, state, _attempts in reconciled} <= {"processed", "ignored"}

    # A refund whose events are lost too.
    refund(app, world.organization_id, order_id, amount=TOTAL)
    settle(app, stripe_fake)
    assert order_state(app, order_id).refunds == [("card", "processing", TOTAL)]
    _reconcile(app, stripe_gateway)
    run_outbox(app)
    repaired = order_state(app, order_id)
    assert (repaired.state, repaired.refunds) == ("refunded", [("card", "succeeded", TOTAL)])
    assert repaired.credit_notes == [TOTAL]

    # Running again finds nothing new: the events are stored once, the watermark moved on.
    again = _reconcile(app, stripe_gateway)
    assert again.events_stored == 0
    with scope(app, world.organization_id):
        assert db.session.execute(sa.select(StripeAccount.reconciled_at)).scalar_one()


def test_payments_and_refunds_stuck_in_progress_are_asked_about_directly(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    settle(app, stripe_fake)
    stripe_fake.webhooks.set_mode("drop")
    order_id, _started = pay_by_card(app, stripe_gateway, world, account)

    fresh = _reconcile(app, stripe_gateway)
    assert (fresh.payments_checked, order_state(app, order_id).state) == (0, "awaiting_payment")

    stuck = _reconcile(app, stripe_gateway, stuck_after=timedelta(0))
    # No job ran: the sweep itself asked Stripe about the intent.
    assert (stuck.payments_checked, stuck.payments_moved) == (1, 1)
    assert order_state(app, order_id).state == "paid"

    refund(app, world.organization_id, order_id, amount=2000)
    stuck_refund = _reconcile(app, stripe_gateway, stuck_after=timedelta(0))
    assert (stuck_refund.refunds_checked, stuck_refund.refunds_moved) == (1, 1)
    after = order_state(app, order_id)
    assert (after.state, after.refunds) == ("partially_refunded", [("card", "succeeded", 2000)])
    # The events the sweep stored meanwhile change nothing more.
    run_outbox(app)
    assert order_state(app, order_id) == after


def test_one_organization_failing_does_not_stop_the_others(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    broken = build_order_world(app, slug="club-broken")
    working = build_order_world(app, slug="club-working")
    broken_account = connect(app, stripe_gateway, stripe_fake, broken.organization_id)
    account = connect(app, stripe_gateway, stripe_fake, working.organization_id)
    settle(app, stripe_fake)
    stripe_fake.webhooks.set_mode("drop")
    order_id, _started = pay_by_card(app, stripe_gateway, working, account)
    # The first organization's account was deleted at Stripe: every call for it is refused.
    stripe_gateway.delete_account(broken_account)

    report = _reconcile(app, stripe_gateway)
    run_outbox(app)

    assert report.organizations == 1
    assert len(report.failures) == 1
    assert report.failures[0].startswith(f"organization {broken.organization_id}:")
    assert order_state(app, order_id).state == "paid"


def test_events_left_unprocessed_or_failed_are_run_again(
    app: Flask,
    stripe_gateway: StripeClientGateway,
    stripe_fake: FakeStripe,
    stripe_webhooks: WebhookEndpoint,
) -> None:
    world = build_order_world(app)
    account = connect(app, stripe_gateway, stripe_fake, world.organization_id)
    settle(app, stripe_fake)
    order_id, started = pay_by_card(app, stripe_gateway, world, account)
    # Delivered and stored, but their jobs were lost (a worker killed halfway, say).
    assert stripe_fake.webhooks.wait_idle(15)
    with database(app):
        db.session.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.job == PROCESS_EVENT_JOB)
            .values(status=OutboxStatus.DONE.value)
        )
        db.session.commit()
    # And a refund at Stripe naming a refund of ours that does not exist: its handler fails.
    stripe_gateway.create_refund(
        account,
        payment_intent=started.intent_id,
        amount=100,
        refund_application_fee=False,
        idempotency_key="orphan",
        metadata={"comptoir_refund_id": 999999},
    )
    assert stripe_fake.webhooks.wait_idle(15)
    with database(app):
        orphan_events = list(
            db.session.execute(
                sa.select(StripeEvent.id).where(StripeEvent.type == "refund.created")
            ).scalars()
        )
    run_outbox(app)
    assert {_events(app)[event_id][1] for event_id in orphan_events} == {"failed"}
    assert order_state(app, order_id).state == "awaiting_payment"

    too_soon = _reconcile(app, stripe_gateway)
    assert too_soon.events_retried == 0
    report = _reconcile(app, stripe_gateway, retry_after=timedelta(0))

    assert order_state(app, order_id).state == "paid"
    assert report.events_retried > 0
    events = _events(app)
    # Nothing is left waiting: each event was acted on, ignored (no handler), or failed again.
    assert {state for _source, state, _attempts in events.values()} == {
        "processed",
        "ignored",
        "failed",
    }
    assert [events[event_id][1:] for event_id in orphan_events] == [("failed", 2)]
    with database(app):
        failed = db.session.execute(
            sa.select(StripeEvent.last_error).where(StripeEvent.id == orphan_events[0])
        ).scalar_one()
        queued = db.session.execute(
            sa.select(sa.func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.job == PROCESS_EVENT_JOB)
        ).scalar_one()
    assert "999999" in failed
    assert queued == len(events)
