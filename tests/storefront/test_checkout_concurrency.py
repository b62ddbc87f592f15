"""Checkouts at the same time (threads, real PostgreSQL): gapless numbers, one order per key."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from comptoir.billing.models import Invoice, Order
from comptoir.platform.db import db
from tests.billing.order_world import (
    OWNER_ANSWERS,
    OrderWorld,
    build_order_world,
    count,
    database,
    new_cart,
)
from tests.tenants.api_helpers import bearer

CHECKOUTS = 50
FAILING = 10


@pytest.fixture
def world(app: Flask) -> OrderWorld:
    return build_order_world(app)


def _all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # noqa: BLE001 - reported by the assertions below
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _post(app: Flask, url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    with app.test_client() as client:
        response = client.post(url, json=body, headers=headers)
        return response.status_code, response.get_json()


def test_invoice_numbers_stay_gapless_under_50_concurrent_checkouts(
    app: Flask, world: OrderWorld
) -> None:
    carts = [new_cart(app, world, [("course", 1)]) for _index in range(CHECKOUTS)]
    headers = bearer(world.keys["attendant"])
    calls = []
    for index, (cart_id, _token) in enumerate(carts):
        failing = index % (CHECKOUTS // FAILING) == 0
        # Cash of 0 is refused after the numbers are taken: the transaction gives them back.
        body = {
            "payment_method": "cash",
            "counter_sale": True,
            "cash_tendered": 0 if failing else 20000,
        }
        url = f"{world.api}/carts/{cart_id}/checkout"
        calls.append(lambda url=url, body=body: _post(app, url, body, headers))
    results = _all_at_once(calls)
    statuses = [result[0] if isinstance(result, tuple) else result for result in results]
    assert statuses.count(201) == CHECKOUTS - FAILING, statuses
    assert statuses.count(422) == FAILING, statuses
    with database(app):
        numbers = sorted(
            db.session.execute(
                sa.select(Invoice.number).where(Invoice.organization_id == world.organization_id)
            ).scalars()
        )
        order_numbers = sorted(
            db.session.execute(
                sa.select(Order.number).where(Order.organization_id == world.organization_id)
            ).scalars()
        )
    expected = list(range(1001, 1001 + CHECKOUTS - FAILING))
    assert numbers == expected
    assert order_numbers == expected


def test_a_double_submit_with_one_key_makes_one_order(app: Flask, world: OrderWorld) -> None:
    cart_id, token = new_cart(app, world, [("cap", 1)])
    url = f"{world.api}/carts/{cart_id}/checkout"
    body = {"payment_method": "offline", "answers": OWNER_ANSWERS}
    headers = {"X-Cart-Token": token, "Idempotency-Key": "double-click-1"}
    results = _all_at_once([lambda: _post(app, url, body, headers) for _index in range(2)])
    assert [status for status, _body in results] == [201, 201]
    assert results[0][1] == results[1][1]
    assert count(app, Order) == 1


def test_a_double_submit_without_key_makes_one_order_too(app: Flask, world: OrderWorld) -> None:
    cart_id, token = new_cart(app, world, [("cap", 1)])
    url = f"{world.api}/carts/{cart_id}/checkout"
    body = {"payment_method": "offline", "answers": OWNER_ANSWERS}
    results = _all_at_once(
        [lambda: _post(app, url, body, {"X-Cart-Token": token}) for _index in range(2)]
    )
    assert sorted(status for status, _body in results) == [201, 409]
    assert count(app, Order) == 1
