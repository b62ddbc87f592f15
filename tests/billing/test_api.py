"""The orders API: reading (staff, customers with their token), payments, refunds, cancelling,
sending the invoice, Idempotency-Key, and refusals that change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from comptoir.billing.models import Order, Payment, Refund
from comptoir.billing.payment_methods import Audience
from tests.billing.order_world import (
    ATTENDANT,
    OrderWorld,
    build_order_world,
    count,
    line,
    mails,
    order_state,
    place,
)
from tests.tenants.api_helpers import bearer


@pytest.fixture
def world(app: Flask) -> OrderWorld:
    return build_order_world(app)


def _later(app: Flask, world: OrderWorld) -> int:
    order_id, _token = place(app, world, method="later", audience=Audience.STAFF, actor=ATTENDANT)
    return order_id


def _paid(app: Flask, world: OrderWorld) -> int:
    order_id, _token = place(
        app,
        world,
        [line(world, "cap", 2), line(world, "course")],
        method="cash",
        audience=Audience.STAFF,
        actor=ATTENDANT,
        cash_tendered=20000,
    )
    return order_id


def test_staff_list_and_filter_orders(app: Flask, client: FlaskClient, world: OrderWorld) -> None:
    paid = _paid(app, world)
    later = _later(app, world)
    headers = bearer(world.keys["attendant"])
    everything = client.get(f"{world.api}/orders", headers=headers)
    assert everything.status_code == 200
    body = everything.get_json()
    assert body["total"] == 2
    assert [item["id"] for item in body["items"]] == [later, paid]
    pending = client.get(f"{world.api}/orders?pending=true", headers=headers).get_json()
    assert [item["id"] for item in pending["items"]] == [later]
    by_state = client.get(f"{world.api}/orders?state=paid", headers=headers).get_json()
    assert [item["id"] for item in by_state["items"]] == [paid]
    by_method = client.get(f"{world.api}/orders?method=cash", headers=headers).get_json()
    assert [item["id"] for item in by_method["items"]] == [paid]
    searched = client.get(f"{world.api}/orders?q=C-1001", headers=headers).get_json()
    assert [item["number"] for item in searched["items"]] == [1001]
    assert client.get(f"{world.api}/orders?state=nope", headers=headers).status_code == 422
    assert client.get(f"{world.api}/orders").status_code == 401
    assert client.get(f"{world.api}/orders", headers=bearer(world.keys["other"])).status_code == 404


def test_an_order_reads_the_same_for_staff_and_for_its_customer(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    order_id, token = place(app, world, [line(world, "cap", 2)], method="etransfer")
    staff = client.get(f"{world.api}/orders/{order_id}", headers=bearer(world.keys["attendant"]))
    assert staff.status_code == 200
    order = staff.get_json()
    assert order["state"] == "awaiting_payment"
    assert (order["total"], order["paid"], order["balance"]) == (3449, 0, 3449)
    assert order["lines"][0]["taxes"] == [
        {"code": "GST", "amount": 150},
        {"code": "QST", "amount": 299},
    ]
    assert order["invoice"]["number"] == "F-1001"
    assert order["payment_instructions"]["order_code"] == "C-1001"
    assert order["payment_instructions"]["email"] == "paiements@club.example"
    assert "token" not in order
    customer = client.get(f"{world.api}/orders/{order_id}", headers={"X-Order-Token": token})
    assert customer.status_code == 200
    assert customer.get_json()["id"] == order_id
    for headers in ({}, {"X-Order-Token": token + "x"}, bearer(world.keys["other"])):
        assert client.get(f"{world.api}/orders/{order_id}", headers=headers).status_code == 404
    other_org = client.get(
        f"/api/v1/o/{world.other_org_slug}/orders/{order_id}", headers={"X-Order-Token": token}
    )
    assert other_org.status_code == 404
    pdf = client.get(order["invoice"]["pdf_url"].removeprefix("http://localhost"))
    assert pdf.status_code == 200
    assert pdf.data.startswith(b"%PDF")
    forged = order["invoice"]["pdf_url"].removeprefix("http://localhost").replace(".pdf", "x.pdf")
    assert client.get(forged).status_code == 404


def test_payments_with_an_idempotency_key_are_made_once(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    order_id = _later(app, world)
    url = f"{world.api}/orders/{order_id}/payments"
    headers = {**bearer(world.keys["attendant"]), "Idempotency-Key": "pay-once-1"}
    body: dict[str, Any] = {"method": "cash", "amount": 5000, "cash_tendered": 6000}
    first = client.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["change_due"] == 1000
    assert first.get_json()["order"]["balance"] == 6498
    again = client.post(url, json=body, headers=headers)
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    other_body = client.post(url, json={**body, "amount": 4000}, headers=headers)
    assert other_body.status_code == 409
    assert other_body.get_json()["error"]["code"] == "conflict"
    assert order_state(app, order_id).payments == [("cash", "succeeded", 5000)]
    rest = client.post(
        url,
        json={"method": "other", "reference": "CHQ-77"},
        headers=bearer(world.keys["attendant"]),
    )
    assert rest.status_code == 201
    assert rest.get_json()["order"]["state"] == "paid"


def test_bad_payments_are_refused_and_change_nothing(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    order_id = _later(app, world)
    url = f"{world.api}/orders/{order_id}/payments"
    headers = bearer(world.keys["attendant"])
    for body, status in (
        ({"method": "cash", "amount": 1000, "cash_tendered": -5}, 422),
        ({"method": "cash", "amount": 1000, "cash_tendered": 500}, 422),
        ({"method": "cash", "amount": 999999}, 422),
        ({"method": "cash", "amount": 1000, "change_due": 0}, 422),
        ({"method": "later"}, 422),
        ({"method": "card", "amount": 1000}, 422),
        ({"method": "other", "amount": 1000}, 422),
        ({"method": "cash", "amount": "10"}, 422),
        # Before any UTC time there is: refused as a date, not a crash when converted.
        ({"method": "cash", "amount": 1000, "received_at": "0001-01-01T00:00:00+01:00"}, 422),
    ):
        response = client.post(url, json=body, headers=headers)
        assert response.status_code == status, (body, response.get_json())
        assert response.get_json()["error"]["fields"], body
    assert order_state(app, order_id).payments == []
    assert (
        client.post(url, json={"method": "cash"}, headers=bearer(world.keys["other"])).status_code
        == 404
    )


def test_refunds_and_cancellation_through_the_api(
    app: Flask, client: FlaskClient, world: OrderWorld
) -> None:
    order_id = _paid(app, world)
    order = client.get(
        f"{world.api}/orders/{order_id}", headers=bearer(world.keys["owner"])
    ).get_json()
    cap_line = next(item["id"] for item in order["lines"] if item["name"] == "Bonnet")
    url = f"{world.api}/orders/{order_id}/refunds"
    assert (
        client.post(
            url, json={"reason": "x", "amount": 100}, headers=bearer(world.keys["attendant"])
        ).status_code
        == 403
    )
    too_much = client.post(
        url,
        json={"reason": "x", "amount": order["total"] + 1, "method": "cash"},
        headers=bearer(world.keys["owner"]),
    )
    assert too_much.status_code == 422
    assert "amount" in too_much.get_json()["error"]["fields"]
    headers = {**bearer(world.keys["owner"]), "Idempotency-Key": "refund-cap"}
    body = {
        "reason": "Trop petit",
        "lines": [{"line_id": cap_line, "quantity": 1}],
        "method": "cash",
    }
    refund = client.post(url, json=body, headers=headers)
    assert refund.status_code == 201, refund.get_json()
    assert refund.get_json()["order"]["state"] == "partially_refunded"
    assert client.post(url, json=body, headers=headers).get_json() == refund.get_json()
    assert count(app, Refund) == 1
    cancel = client.post(
        f"{world.api}/orders/{order_id}/cancel",
        json={"reason": "Cours annulé", "method": "cash"},
        headers=bearer(world.keys["admin"]),
    )
    assert cancel.status_code == 200
    cancelled = cancel.get_json()
    assert cancelled["state"] == "cancelled"
    assert cancelled["balance"] == 0
    assert sum(note["total"] for note in cancelled["credit_notes"]) == cancelled["total"]
    again = client.post(
        f"{world.api}/orders/{order_id}/cancel",
        json={"reason": "Encore"},
        headers=bearer(world.keys["admin"]),
    )
    assert again.status_code == 200
    assert len(again.get_json()["credit_notes"]) == 2
    pay = client.post(
        f"{world.api}/orders/{order_id}/payments",
        json={"method": "cash"},
        headers=bearer(world.keys["owner"]),
    )
    assert pay.status_code == 409
    assert count(app, Payment) == 1


def test_send_invoice_queues_the_mail_with_the_pdf(
    app: Flask, client: FlaskClient, world: OrderWorld, jobs: Any
) -> None:
    order_id = _paid(app, world)
    bad = client.post(
        f"{world.api}/orders/{order_id}/send-invoice",
        json={"email": "nope"},
        headers=bearer(world.keys["attendant"]),
    )
    assert bad.status_code == 422
    sent = client.post(
        f"{world.api}/orders/{order_id}/send-invoice",
        json={"email": "parent@example.org", "locale": "en"},
        headers=bearer(world.keys["attendant"]),
    )
    assert sent.status_code == 202
    jobs()
    jobs()
    invoice_mails = [m for m in mails(app, world.organization_id) if m["template"] == "invoice"]
    assert len(invoice_mails) == 1
    assert invoice_mails[0]["to"] == "parent@example.org"
    assert invoice_mails[0]["locale"] == "en"
    assert invoice_mails[0]["attachments"] == ["F-1001.pdf"]
    assert "Invoice F-1001" in invoice_mails[0]["subject"]


def test_the_openapi_document_describes_the_orders_api(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    paths = document["paths"]
    for path, method in (
        ("/api/v1/o/{org}/orders", "get"),
        ("/api/v1/o/{org}/orders/{order_id}", "get"),
        ("/api/v1/o/{org}/orders/{order_id}/payments", "post"),
        ("/api/v1/o/{org}/orders/{order_id}/refunds", "post"),
        ("/api/v1/o/{org}/orders/{order_id}/cancel", "post"),
        ("/api/v1/o/{org}/orders/{order_id}/send-invoice", "post"),
    ):
        assert method in paths[path], path
    payment_body = document["components"]["schemas"]["PaymentCreate"]
    assert payment_body["additionalProperties"] is False
    assert "change_due" not in payment_body["properties"]
    assert count_of(Order) is None


def count_of(model: Any) -> None:
    del model
