"""Orders, payments, refunds and cancellations through the billing services (real PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from comptoir.billing import orders, payments, refunds
from comptoir.billing.models import CreditNote, Invoice, Order, OrderLine, Payment, Refund
from comptoir.billing.orders import figures
from comptoir.billing.payment_methods import Audience
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import ConflictError, ForbiddenError, ValidationError
from tests.billing.order_world import (
    ATTENDANT,
    OWNER,
    OrderWorld,
    audit_actions,
    build_order_world,
    count,
    database,
    line,
    order_state,
    place,
    scope,
    set_sold,
    sold,
)


@pytest.fixture
def world(app: Flask) -> OrderWorld:
    return build_order_world(app)


def _order(order_id: int) -> Order:
    order = db.session.get(Order, order_id)
    assert order is not None
    return order


# --------------------------------------------------------------------------- placing


def test_an_order_copies_lines_and_taxes_each_line_rounded_half_up(
    app: Flask, world: OrderWorld
) -> None:
    order_id, token = place(
        app,
        world,
        [
            line(world, "cap", 3),
            line(
                world,
                "course",
                1,
                unit_price=9999,
                original_unit_price=10000,
                override_reason="Fidélité",
            ),
            line(world, "exempt", 2),
        ],
    )
    with database(app):
        order = _order(order_id)
        by_name = {row.name: row for row in order.lines}
        cap = by_name["Bonnet"]
        # 4500 x 5 % = 225; x 9.975 % = 448.875 -> 449
        assert cap.taxes == [{"code": "GST", "amount": 225}, {"code": "QST", "amount": 449}]
        course = by_name["Cours de natation"]
        assert (course.unit_price, course.original_unit_price, course.override_reason) == (
            9999,
            10000,
            "Fidélité",
        )
        # 9999 x 5 % = 499.95 -> 500; x 9.975 % = 997.40 -> 997
        assert course.taxes == [{"code": "GST", "amount": 500}, {"code": "QST", "amount": 997}]
        assert by_name["Don"].taxes == []
        assert order.subtotal == 4500 + 9999 + 2000
        assert [(t["code"], t["amount"]) for t in order.taxes] == [("GST", 725), ("QST", 1446)]
        assert order.total == order.subtotal + 725 + 1446
        assert order.state.value == "awaiting_payment"
        assert order.token_hash != token
        assert len(token) > 30
    with scope(app, world.organization_id):
        found = orders.find_order_by_token(token)
        assert found is not None
        assert found.id == order_id
        assert orders.find_order_by_token(token + "x") is None
    with scope(app, world.other_organization_id):
        assert orders.find_order_by_token(token) is None


def test_numbers_are_sequential_per_organization(app: Flask, world: OrderWorld) -> None:
    first, _token = place(app, world)
    second, _token = place(app, world)
    other = build_order_world(app, slug="second-club")
    third, _token = place(app, other)
    with database(app):
        numbers = {
            order_id: (_order(order_id).number, order_state(app, order_id).invoice_number)
            for order_id in (first, second, third)
        }
    assert numbers[first] == (1001, 1001)
    assert numbers[second] == (1002, 1002)
    assert numbers[third] == (1001, 1001)


def test_a_customer_cannot_choose_a_staff_method_or_one_the_shop_does_not_offer(
    app: Flask, world: OrderWorld
) -> None:
    for method in ("cash", "later", "other", "card", "terminal", "bitcoin"):
        with pytest.raises(ValidationError) as refused:
            place(app, world, method=method, cash_tendered=100000, reference="x")
        assert "payment_method" in refused.value.fields
    assert count(app, Order) == 0
    assert count(app, Invoice) == 0


def test_a_counter_sale_has_no_customer_and_only_staff_make_one(
    app: Flask, world: OrderWorld
) -> None:
    with pytest.raises(ValidationError):
        place(app, world, counter_sale=True, method="offline")
    order_id, _token = place(
        app, world, counter_sale=True, method="later", audience=Audience.STAFF, actor=ATTENDANT
    )
    with database(app):
        order = _order(order_id)
        assert order.counter_sale is True
        assert (order.customer_id, order.customer_email) == (None, "")


# --------------------------------------------------------------------------- cash and split tender


def test_cash_at_checkout_gives_change_and_pays_the_order(app: Flask, world: OrderWorld) -> None:
    order_id, _token = place(
        app, world, method="cash", audience=Audience.STAFF, actor=ATTENDANT, cash_tendered=12000
    )
    state = order_state(app, order_id)
    assert state.total == 11498
    assert state.state == "paid"
    assert state.payments == [("cash", "succeeded", 11498)]
    with database(app):
        payment = db.session.execute(sa.select(Payment)).scalar_one()
        assert (payment.cash_tendered, payment.change_due) == (12000, 502)
        assert payment.recorded_by_label == ATTENDANT.label
    assert "payment.recorded" in audit_actions(app, world.organization_id)
    assert "order.paid" in audit_actions(app, world.organization_id)


def test_split_tender_cash_then_other_then_nothing_more(app: Flask, world: OrderWorld) -> None:
    order_id, _token = place(
        app, world, method="cash", audience=Audience.STAFF, actor=ATTENDANT, cash_tendered=5000
    )
    assert order_state(app, order_id).state == "awaiting_payment"
    with scope(app, world.organization_id) as organization:
        order = _order(order_id)
        assert figures(order).balance == 6498
        with pytest.raises(ValidationError) as too_much:
            payments.record_payment(
                organization=organization,
                actor=ATTENDANT,
                order=order,
                method="other",
                amount=6499,
                reference="CHQ 12",
            )
        assert "amount" in too_much.value.fields
        db.session.rollback()
        with pytest.raises(ValidationError) as no_reference:
            payments.record_payment(
                organization=organization, actor=ATTENDANT, order=order, method="other", amount=6498
            )
        assert "reference" in no_reference.value.fields
        db.session.rollback()
        payments.record_payment(
            organization=organization,
            actor=ATTENDANT,
            order=order,
            method="other",
            reference="CHQ 12",
        )
        db.session.commit()
    state = order_state(app, order_id)
    assert state.payments == [("cash", "succeeded", 5000), ("other", "succeeded", 6498)]
    assert state.state == "paid"
    with scope(app, world.organization_id) as organization, pytest.raises(ConflictError):
        payments.record_payment(
            organization=organization,
            actor=ATTENDANT,
            order=_order(order_id),
            method="cash",
            amount=100,
        )
    assert len(order_state(app, order_id).payments) == 2


def test_bad_cash_is_refused_and_nothing_changes(app: Flask, world: OrderWorld) -> None:
    for tendered, field in (
        (-500, "cash_tendered"),
        (None, "cash_tendered"),
        ("12", "cash_tendered"),
        (0, "cash_tendered"),
    ):
        with pytest.raises(ValidationError) as refused:
            place(
                app,
                world,
                method="cash",
                audience=Audience.STAFF,
                actor=ATTENDANT,
                cash_tendered=tendered,
            )
        assert field in refused.value.fields
    assert count(app, Order) == 0
    assert count(app, Payment) == 0
    order_id, _token = place(app, world, method="later", audience=Audience.STAFF, actor=ATTENDANT)
    with scope(app, world.organization_id) as organization:
        for kwargs in (
            {"amount": 1000, "cash_tendered": -1},
            {"amount": 1000, "cash_tendered": 500},
            {"amount": -5},
            {"amount": 0},
            {"amount": 12.5},
        ):
            with pytest.raises(ValidationError):
                payments.record_payment(
                    organization=organization,
                    actor=ATTENDANT,
                    order=_order(order_id),
                    method="cash",
                    **kwargs,
                )
            db.session.rollback()
        with pytest.raises(ValidationError):
            payments.record_payment(
                organization=organization,
                actor=ATTENDANT,
                order=_order(order_id),
                method="offline",
                received_at=utcnow() + timedelta(days=2),
            )
    assert order_state(app, order_id).payments == []


def test_pay_later_then_mark_received(app: Flask, world: OrderWorld) -> None:
    order_id, _token = place(app, world, method="etransfer")
    received = utcnow() - timedelta(days=1)
    with scope(app, world.organization_id) as organization:
        payments.record_payment(
            organization=organization,
            actor=ATTENDANT,
            order=_order(order_id),
            method="etransfer",
            received_at=received,
            reference="CA1234",
        )
        db.session.commit()
    state = order_state(app, order_id)
    assert state.state == "paid"
    assert state.payments == [("etransfer", "succeeded", 11498)]
    with database(app):
        payment = db.session.execute(sa.select(Payment)).scalar_one()
        assert payment.received_at == received
        assert payment.reference == "CA1234"


# --------------------------------------------------------------------------- refunds


def _paid_order(app: Flask, world: OrderWorld) -> int:
    set_sold(app, world, "cap", 3)
    order_id, _token = place(
        app,
        world,
        [line(world, "cap", 3), line(world, "course")],
        method="cash",
        audience=Audience.STAFF,
        actor=ATTENDANT,
        cash_tendered=20000,
    )
    return order_id


def test_refunding_lines_gives_a_credit_note_and_stock_back(app: Flask, world: OrderWorld) -> None:
    order_id = _paid_order(app, world)
    with database(app):
        cap_line = db.session.execute(
            sa.select(OrderLine.id).where(OrderLine.name == "Bonnet")
        ).scalar_one()
    with scope(app, world.organization_id) as organization:
        refund = refunds.refund_order(
            organization=organization,
            actor=OWNER,
            order=_order(order_id),
            reason="Trop petit",
            lines=[{"line_id": cap_line, "quantity": 2}],
            method="cash",
        )
        db.session.commit()
        refund_id = refund.id
    state = order_state(app, order_id)
    # 2 caps: 3000 + GST 150 + QST 299.25 -> line taxes 225/449 x 2/3 = 150 / 299
    assert state.refunds == [("cash", "succeeded", 3449)]
    assert state.credit_notes == [3449]
    assert state.state == "partially_refunded"
    assert sold(app, world, "cap") == 1
    with database(app):
        note = db.session.execute(sa.select(CreditNote)).scalar_one()
        assert note.refund_id == refund_id
        assert note.number == 1001
        assert [tax["amount"] for tax in note.taxes] == [150, 299]
    # The last cap takes what is left of its taxes: 75 and 150 (not 74.8 -> 75 and 149.6 -> 150).
    with scope(app, world.organization_id) as organization:
        refunds.refund_order(
            organization=organization,
            actor=OWNER,
            order=_order(order_id),
            reason="Encore",
            lines=[{"line_id": cap_line}],
            method="cash",
        )
        db.session.commit()
    with database(app):
        notes = db.session.execute(sa.select(CreditNote).order_by(CreditNote.id)).scalars().all()
        assert [note.number for note in notes] == [1001, 1002]
        assert [tax["amount"] for tax in notes[1].taxes] == [75, 150]
    assert sold(app, world, "cap") == 0


def test_refunding_more_than_paid_is_refused_and_nothing_changes(
    app: Flask, world: OrderWorld
) -> None:
    order_id = _paid_order(app, world)
    total = order_state(app, order_id).total
    with scope(app, world.organization_id) as organization:
        with pytest.raises(ValidationError) as refused:
            refunds.refund_order(
                organization=organization,
                actor=OWNER,
                order=_order(order_id),
                reason="Trop",
                amount=total + 1,
                method="cash",
            )
        assert "amount" in refused.value.fields
        db.session.rollback()
        for kwargs in (
            {"amount": -100, "reason": "x"},
            {"amount": 100, "reason": ""},
            {"amount": 100, "reason": "x", "lines": [{"line_id": 999999}]},
            {"reason": "x", "lines": [{"line_id": 999999}]},
            {"amount": 100, "reason": "x", "method": "etransfer"},  # no reference of the transfer
        ):
            with pytest.raises(ValidationError):
                refunds.refund_order(
                    organization=organization, actor=OWNER, order=_order(order_id), **kwargs
                )
            db.session.rollback()
        with pytest.raises(ForbiddenError):
            refunds.refund_order(
                organization=organization,
                actor=ATTENDANT,
                order=_order(order_id),
                amount=100,
                reason="x",
            )
    state = order_state(app, order_id)
    assert (state.refunds, state.credit_notes, state.state) == ([], [], "paid")


def test_amount_refunds_then_full_refund(app: Flask, world: OrderWorld) -> None:
    order_id = _paid_order(app, world)
    total = order_state(app, order_id).total
    with scope(app, world.organization_id) as organization:
        refunds.refund_order(
            organization=organization,
            actor=OWNER,
            order=_order(order_id),
            reason="Geste",
            amount=1000,
            method="cash",
        )
        db.session.commit()
    with scope(app, world.organization_id) as organization:
        refunds.refund_order(
            organization=organization,
            actor=OWNER,
            order=_order(order_id),
            reason="Tout",
            amount=total - 1000,
            method="etransfer",
            reference="VIR-9",
        )
        db.session.commit()
    state = order_state(app, order_id)
    assert state.state == "refunded"
    assert sum(state.credit_notes) == total
    with scope(app, world.organization_id):
        assert figures(_order(order_id)).balance == 0
    with scope(app, world.organization_id) as organization, pytest.raises(ConflictError):
        refunds.refund_order(
            organization=organization,
            actor=OWNER,
            order=_order(order_id),
            reason="x",
            amount=1,
            method="cash",
        )


# --------------------------------------------------------------------------- cancelling


def test_cancelling_an_unpaid_order_credits_it_and_restocks_once(
    app: Flask, world: OrderWorld
) -> None:
    set_sold(app, world, "cap", 2)
    order_id, _token = place(app, world, [line(world, "cap", 2)], method="etransfer")
    for _attempt in range(2):
        with scope(app, world.organization_id) as organization:
            refunds.cancel_order(
                organization=organization, actor=OWNER, order=_order(order_id), reason="Annulé"
            )
            db.session.commit()
    state = order_state(app, order_id)
    assert state.state == "cancelled"
    assert state.refunds == []
    assert state.credit_notes == [state.total]
    assert sold(app, world, "cap") == 0
    assert audit_actions(app, world.organization_id).count("order.cancelled") == 1
    with scope(app, world.organization_id) as organization, pytest.raises(ConflictError):
        payments.record_payment(
            organization=organization,
            actor=OWNER,
            order=_order(order_id),
            method="cash",
            amount=100,
        )
    assert order_state(app, order_id).payments == []


def test_cancelling_a_paid_order_refunds_what_is_left(app: Flask, world: OrderWorld) -> None:
    order_id = _paid_order(app, world)
    total = order_state(app, order_id).total
    with scope(app, world.organization_id) as organization:
        refunds.refund_order(
            organization=organization,
            actor=OWNER,
            order=_order(order_id),
            reason="Geste",
            amount=1000,
            method="cash",
        )
        db.session.commit()
    with scope(app, world.organization_id) as organization:
        refunds.cancel_order(
            organization=organization,
            actor=OWNER,
            order=_order(order_id),
            reason="Cours annulé",
            method="cash",
        )
        db.session.commit()
    state = order_state(app, order_id)
    assert state.state == "cancelled"
    assert [amount for _m, _s, amount in state.refunds] == [1000, total - 1000]
    assert sum(state.credit_notes) == total
    assert sold(app, world, "cap") == 0
    with database(app):
        notes = db.session.execute(sa.select(CreditNote).order_by(CreditNote.id)).scalars().all()
        # Taxes credited add up to the invoice's exactly, tax by tax.
        order = _order(order_id)
        for tax in order.taxes:
            credited = sum(
                t["amount"] for note in notes for t in note.taxes if t["code"] == tax["code"]
            )
            assert credited == tax["amount"]


def test_attendants_cannot_cancel(app: Flask, world: OrderWorld) -> None:
    order_id, _token = place(app, world)
    with scope(app, world.organization_id) as organization, pytest.raises(ForbiddenError):
        refunds.cancel_order(
            organization=organization, actor=ATTENDANT, order=_order(order_id), reason="x"
        )
    assert order_state(app, order_id).state == "awaiting_payment"


def test_orders_of_another_organization_are_not_found(app: Flask, world: OrderWorld) -> None:
    order_id, _token = place(app, world)
    with scope(app, world.other_organization_id):
        assert db.session.get(Order, order_id) is None
        assert db.session.execute(sa.select(sa.func.count()).select_from(Refund)).scalar_one() == 0
