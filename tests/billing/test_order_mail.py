"""The shop's e-mails delivered to a real SMTP server (aiosmtpd on loopback): confirmation in the
customer's language with the invoice attached and the forced copy, the staff notification, the
refund's single e-mail with its credit note, the e-Transfer reminder and automatic cancellation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing.models import Order
from comptoir.jobs.billing import unpaid_etransfer_sweep
from comptoir.platform.db import db, utcnow
from tests.billing.order_world import (
    OWNER_ANSWERS,
    OrderWorld,
    build_order_world,
    database,
    new_cart,
    order_state,
    sold,
)
from tests.conftest import run_jobs
from tests.platform.smtp import SMTPServer, mail_app
from tests.tenants.api_helpers import bearer

FORCED_COPY = "compta@club-orders.example"


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp_app(
    app: Flask,
    database_url: str,
    redis_url: str,
    smtp_server: SMTPServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Flask:
    instance = tmp_path_factory.mktemp("order-mail")
    return mail_app(
        database_url, redis_url, instance, mail_url=smtp_server.url, limits_url=redis_url
    )


@pytest.fixture(autouse=True)
def _empty_mailbox(smtp_server: SMTPServer) -> None:
    smtp_server.clear()


@pytest.fixture
def world(app: Flask) -> OrderWorld:
    return build_order_world(app)


@dataclass
class Mailer:
    """The app whose jobs send through the SMTP server, the server, and the jobs' Redis."""

    app: Flask
    server: SMTPServer
    redis_url: str

    def deliver(self) -> int:
        return deliver_all(self.app, self.redis_url)


@pytest.fixture
def mailer(smtp_app: Flask, smtp_server: SMTPServer, redis_url: str) -> Mailer:
    return Mailer(app=smtp_app, server=smtp_server, redis_url=redis_url)


def _communicate(app: Flask, world: OrderWorld) -> None:
    from comptoir.storefront.models import Shop

    with database(app):
        db.session.execute(
            sa.update(Shop)
            .where(Shop.id == world.shop_id)
            .values(
                communication={
                    "templates": {},
                    "notify_user_ids": [world.user_ids["owner"]],
                    "forced_copy": FORCED_COPY,
                }
            )
        )
        db.session.commit()


def deliver_all(smtp_app: Flask, redis_url: str) -> int:
    """Run jobs until none is left (a job may queue mail jobs); how many ran."""
    total = 0
    for _round in range(10):
        ran = run_jobs(smtp_app, redis_url)
        total += ran
        if ran == 0:
            break
    return total


def by_recipient(messages: list[Any]) -> dict[str, EmailMessage]:
    found: dict[str, EmailMessage] = {}
    for received in messages:
        found[str(received.message["To"])] = received.message
    return found


def attachments(message: EmailMessage) -> list[tuple[str, str, bytes]]:
    return [
        (part.get_filename() or "", part.get_content_type(), part.get_content())
        for part in message.iter_attachments()
    ]


def test_confirmation_in_english_with_invoice_copy_and_staff_notice(
    app: Flask, client: FlaskClient, world: OrderWorld, mailer: Mailer
) -> None:
    _communicate(app, world)
    cart_id, token = new_cart(app, world, [("cap", 1)], locale="en")
    response = client.post(
        f"{world.api}/carts/{cart_id}/checkout",
        json={"payment_method": "etransfer", "answers": OWNER_ANSWERS},
        headers={"X-Cart-Token": token},
    )
    assert response.status_code == 201
    mailer.deliver()
    received = mailer.server.wait_for(2)
    assert len(received) == 2, [r.message["Subject"] for r in received]
    messages = by_recipient(received)
    confirmation = messages["camille@example.org"]
    assert confirmation["Subject"] == "Your order C-1001 is confirmed"
    assert confirmation["Cc"] == FORCED_COPY
    assert confirmation["Content-Language"] == "en"
    envelope = next(r for r in received if str(r.message["To"]) == "camille@example.org")
    assert FORCED_COPY in envelope.recipients
    text = confirmation.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Thank you for your order C-1001" in text
    assert "paiements@club.example" in text  # the e-Transfer instructions
    files = attachments(confirmation)
    assert [(name, kind) for name, kind, _data in files] == [("F-1001.pdf", "application/pdf")]
    assert files[0][2].startswith(b"%PDF")
    notice = messages[world.emails["owner"]]
    assert "C-1001" in str(notice["Subject"])
    assert notice["Cc"] is None
    # Jobs delivered twice change nothing: no second confirmation.
    mailer.deliver()
    assert len(mailer.server.received) == 2


def test_confirmation_in_french_for_a_french_cart(
    app: Flask, client: FlaskClient, world: OrderWorld, mailer: Mailer
) -> None:
    cart_id, token = new_cart(app, world, [("course", 1)], locale="fr")
    response = client.post(
        f"{world.api}/carts/{cart_id}/checkout",
        json={"payment_method": "offline", "answers": OWNER_ANSWERS},
        headers={"X-Cart-Token": token},
    )
    assert response.status_code == 201
    mailer.deliver()
    received = mailer.server.wait_for(1)
    assert len(received) == 1
    message = received[0].message
    assert message["Subject"] == "Confirmation de votre commande C-1001"
    assert message["Content-Language"] == "fr"
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "114,98" in text
    assert [name for name, _kind, _data in attachments(message)] == ["F-1001.pdf"]


def test_a_refund_sends_exactly_one_e_mail_with_its_credit_note_and_restocks(
    app: Flask, client: FlaskClient, world: OrderWorld, mailer: Mailer
) -> None:
    _communicate(app, world)
    cart_id, _token = new_cart(app, world, [("cap", 3)], locale="en")
    placed = client.post(
        f"{world.api}/carts/{cart_id}/checkout",
        json={"payment_method": "cash", "cash_tendered": 10000, "answers": OWNER_ANSWERS},
        headers=bearer(world.keys["attendant"]),
    )
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()
    assert order["state"] == "paid"
    mailer.deliver()
    mailer.server.wait_for(2)
    mailer.server.clear()
    assert sold(app, world, "cap") == 3
    refund = client.post(
        f"{world.api}/orders/{order['id']}/refunds",
        json={
            "reason": "Too small",
            "lines": [{"line_id": order["lines"][0]["id"], "quantity": 2}],
            "method": "cash",
        },
        headers={**bearer(world.keys["owner"]), "Idempotency-Key": "refund-1"},
    )
    assert refund.status_code == 201
    assert sold(app, world, "cap") == 1
    mailer.deliver()
    received = mailer.server.wait_for(1)
    assert len(received) == 1
    message = received[0].message
    assert str(message["To"]) == "camille@example.org"
    assert message["Cc"] == FORCED_COPY
    assert message["Subject"] == "Refund on order C-1001"
    assert [name for name, _kind, _data in attachments(message)] == ["AV-1001.pdf"]
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Too small" in text
    # The same refund request again, and the jobs again: still one e-mail.
    client.post(
        f"{world.api}/orders/{order['id']}/refunds",
        json={
            "reason": "Too small",
            "lines": [{"line_id": order["lines"][0]["id"], "quantity": 2}],
            "method": "cash",
        },
        headers={**bearer(world.keys["owner"]), "Idempotency-Key": "refund-1"},
    )
    mailer.deliver()
    assert len(mailer.server.received) == 1
    assert order_state(app, order["id"]).credit_notes == [refund.get_json()["amount"]]


def test_unpaid_e_transfer_orders_are_reminded_then_cancelled_once(
    app: Flask, client: FlaskClient, world: OrderWorld, mailer: Mailer
) -> None:
    cart_id, token = new_cart(app, world, [("cap", 2)], locale="fr")
    placed = client.post(
        f"{world.api}/carts/{cart_id}/checkout",
        json={"payment_method": "etransfer", "answers": OWNER_ANSWERS},
        headers={"X-Cart-Token": token},
    )
    order_id = placed.get_json()["id"]
    mailer.deliver()
    mailer.server.wait_for(1)
    mailer.server.clear()
    with database(app):
        db.session.execute(
            sa.update(Order)
            .where(Order.id == order_id)
            .values(remind_at=utcnow() - timedelta(minutes=1))
        )
        db.session.commit()
    with mailer.app.app_context():
        assert unpaid_etransfer_sweep() == "1 reminder(s), 0 cancellation(s)"
        db.session.commit()
        assert unpaid_etransfer_sweep() == "0 reminder(s), 0 cancellation(s)"
        db.session.commit()
    mailer.deliver()
    reminder = mailer.server.wait_for(1)
    assert len(reminder) == 1
    assert "C-1001" in str(reminder[0].message["Subject"])
    mailer.server.clear()
    with database(app):
        db.session.execute(
            sa.update(Order)
            .where(Order.id == order_id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        db.session.commit()
    with mailer.app.app_context():
        assert unpaid_etransfer_sweep() == "0 reminder(s), 1 cancellation(s)"
        db.session.commit()
        assert unpaid_etransfer_sweep() == "0 reminder(s), 0 cancellation(s)"
        db.session.commit()
    state = order_state(app, order_id)
    assert state.state == "cancelled"
    assert state.refunds == []
    assert sold(app, world, "cap") == 0
    mailer.deliver()
    cancelled = mailer.server.wait_for(1)
    assert len(cancelled) == 1
    assert cancelled[0].message["Subject"] == "Annulation de la commande C-1001"
    mailer.deliver()
    assert len(mailer.server.received) == 1
