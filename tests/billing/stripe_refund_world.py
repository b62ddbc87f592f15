"""Orders paid through Stripe and refunded: card and reader payments settled by their webhooks,
refunds asked through the billing services, and plain snapshots of what they leave behind."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask

from comptoir.billing import refunds
from comptoir.billing.models import CreditNote, Method, Order, Payment, Refund
from comptoir.billing.stripe_fake import FakeStripe
from comptoir.billing.stripe_gateway import StripeClientGateway
from comptoir.billing.stripe_models import StripeEvent, TerminalReader
from comptoir.platform import outbox
from comptoir.platform.db import db
from comptoir.platform.outbox import OutboxMessage, OutboxStatus
from comptoir.tenants.models import Organization
from tests.billing.order_world import OWNER, OrderWorld, database, mails, place, scope
from tests.billing.stripe_helpers import simulated_reader
from tests.billing.stripe_world import StartedCard, start_card_payment

logger = logging.getLogger(__name__)


def run_outbox(app: Flask) -> int:
    """Run every pending outbox message, oldest first, until none is left; how many ran.

    Read from the database rather than from RQ: test runs of other people may share this run's
    Redis database number, and their workers or their clean-up would take our jobs away.
    """
    tried: set[int] = set()
    ran = 0
    while True:
        with database(app):
            pending = [
                message_id
                for message_id in db.session.execute(
                    sa.select(OutboxMessage.id)
                    .where(OutboxMessage.status == OutboxStatus.PENDING.value)
                    .order_by(OutboxMessage.id)
                ).scalars()
                if message_id not in tried
            ]
        if not pending:
            return ran
        for message_id in pending:
            tried.add(message_id)  # a failing job is recorded and not run again here
            with app.app_context():
                try:
                    outbox.run_message(message_id)
                    ran += 1
                except Exception as error:  # noqa: BLE001 - recorded on the message
                    logger.info("outbox message %s failed: %s", message_id, error)
                finally:
                    db.session.remove()


def settle(app: Flask, fake: FakeStripe) -> None:
    """Let the fake deliver what it has queued, then run the jobs the webhooks queued."""
    assert fake.webhooks.wait_idle(15)
    run_outbox(app)


def set_fees(
    app: Flask, organization_id: int, *, basis_points: int, fixed: int, refund_fee: bool
) -> None:
    with database(app):
        organization = db.session.get(Organization, organization_id)
        assert organization is not None
        organization.application_fee_basis_points = basis_points
        organization.application_fee_fixed = fixed
        organization.refund_application_fee = refund_fee
        db.session.commit()


def pay_by_card(
    app: Flask,
    gateway: StripeClientGateway,
    world: OrderWorld,
    account: str,
    *,
    card: str = "pm_card_visa",
    lines: Any = None,
) -> tuple[int, StartedCard]:
    """An order placed and its card payment confirmed at Stripe (our row moves by the events)."""
    order_id, _token = place(app, world, lines)
    started = start_card_payment(app, gateway, world.organization_id, order_id)
    gateway.confirm_payment_intent(account, started.intent_id, payment_method=card)
    return order_id, started


def add_reader(app: Flask, gateway: StripeClientGateway, organization_id: int, account: str) -> str:
    """A simulated reader on the account, and our row for it."""
    reader = simulated_reader(gateway, account)
    with scope(app, organization_id):
        db.session.add(
            TerminalReader(
                organization_id=organization_id,
                reader_id=reader.id,
                label=reader.label,
                location_id=reader.location or "",
                device_type=reader.device_type,
                status=reader.status or "",
            )
        )
        db.session.commit()
    return reader.id


def pay_on_reader(
    app: Flask,
    gateway: StripeClientGateway,
    world: OrderWorld,
    account: str,
    reader_id: str,
    *,
    method_type: str = "interac_present",
) -> tuple[int, StartedCard]:
    """An order paid on a reader (Interac debit by default), confirmed at Stripe."""
    order_id, _token = place(app, world)
    started = start_card_payment(
        app, gateway, world.organization_id, order_id, method=Method.TERMINAL
    )
    gateway.process_payment_intent_on_reader(account, reader_id, started.intent_id)
    gateway.simulate_present_payment_method(account, reader_id, type=method_type)
    return order_id, started


def refund(
    app: Flask,
    organization_id: int,
    order_id: int,
    *,
    amount: int | None = None,
    lines: list[dict[str, Any]] | None = None,
    method: str = "card",
    reason: str = "Returned",
) -> int:
    """Refund through the billing service (what the admin page and the API call); its id."""
    with scope(app, organization_id) as organization:
        order = db.session.get(Order, order_id)
        assert order is not None
        made = refunds.refund_order(
            organization=organization,
            actor=OWNER,
            order=order,
            reason=reason,
            amount=amount,
            lines=lines,
            method=method,
        )
        db.session.commit()
        return made.id


def refund_row(app: Flask, organization_id: int, refund_id: int) -> Refund:
    with scope(app, organization_id):
        row = db.session.get(Refund, refund_id)
        assert row is not None
        db.session.expunge(row)
        return row


@dataclass(frozen=True)
class Books:
    """What an organization's books say, without ids or times (comparable across runs)."""

    orders: list[str]
    payments: list[tuple[str, str, int, str]]
    refunds: list[tuple[str, str, int, bool]]
    credit_notes: list[tuple[str, int, int]]
    mails: list[tuple[str, str]]
    events: dict[str, int]


def books(app: Flask, organization_id: int) -> Books:
    with scope(app, organization_id):
        orders = db.session.execute(sa.select(Order.state).order_by(Order.id)).scalars()
        payments = db.session.execute(
            sa.select(
                Payment.method, Payment.state, Payment.amount, Payment.review_reason
            ).order_by(Payment.id)
        ).all()
        refund_rows = db.session.execute(sa.select(Refund).order_by(Refund.id)).scalars()
        notes = db.session.execute(
            sa.select(CreditNote.kind, CreditNote.number, CreditNote.total).order_by(CreditNote.id)
        ).all()
        event_states = db.session.execute(
            sa.select(StripeEvent.state, sa.func.count())
            .where(StripeEvent.organization_id == organization_id)
            .group_by(StripeEvent.state)
        ).all()
        result = Books(
            orders=[state.value for state in orders],
            payments=[(m.value, s.value, a, r) for m, s, a, r in payments],
            refunds=[
                (row.method.value, row.state.value, row.amount, bool(row.restocked))
                for row in refund_rows
            ],
            credit_notes=[(kind, number, total) for kind, number, total in notes],
            mails=[],
            events={state: int(count) for state, count in event_states},
        )
    return Books(
        **{
            **result.__dict__,
            # Which job ran first does not matter, what was sent does.
            "mails": sorted((mail["to"], mail["subject"]) for mail in mails(app, organization_id)),
        }
    )
