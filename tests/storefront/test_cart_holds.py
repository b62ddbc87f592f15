"""Stock holds in time: expiry frees stock at once, renewals, staff expiry, the sweep."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db, utcnow
from comptoir.platform.tenancy import tenant_scope, unscoped
from comptoir.storefront import holds
from comptoir.storefront.inventory import Availability, StockKey, active_holds
from comptoir.storefront.models import Article, Cart, CartLine, CartStatus, StockHold
from tests.storefront.cart_world import (
    CartWorld,
    bearer,
    build_cart_world,
    database,
    held,
    move_expiry,
    stock_of,
)


@pytest.fixture
def world(app: Flask) -> CartWorld:
    return build_cart_world(app)


def open_cart(client: FlaskClient, world: CartWorld) -> tuple[int, dict[str, str]]:
    response = client.post(f"{world.api}/shops/{world.shop_slug}/carts")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return body["id"], {"X-Cart-Token": body["token"]}


def add(
    client: FlaskClient,
    world: CartWorld,
    cart: tuple[int, dict[str, str]],
    article: str,
    quantity: int = 1,
    *,
    variant: str | None = None,
) -> Any:
    payload: dict[str, Any] = {"article_id": world.articles[article], "quantity": quantity}
    if variant is not None:
        payload["variant_id"] = world.variants[variant]
    return client.post(f"{world.api}/carts/{cart[0]}/lines", json=payload, headers=cart[1])


# --------------------------------------------------------------------------- expiry by time


def test_an_expired_hold_frees_stock_for_another_customer_before_any_sweep(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    first = open_cart(client, world)
    second = open_cart(client, world)
    assert add(client, world, first, "last").status_code == 201
    refused = add(client, world, second, "last")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "out_of_stock"

    move_expiry(app, first[0], utcnow() - timedelta(seconds=1))
    # No sweep ran: the expired hold row is still there, and no longer counts.
    with database(app):
        assert db.session.execute(sa.select(sa.func.count()).select_from(StockHold)).scalar() == 1
    assert held(app, world.articles["last"]) == 0
    taken = add(client, world, second, "last")
    assert taken.status_code == 201, taken.get_json()
    assert held(app, world.articles["last"]) == 1

    expired = client.get(f"{world.api}/carts/{first[0]}", headers=first[1])
    assert expired.status_code == 410
    assert expired.get_json()["error"]["code"] == "cart_expired"
    again = add(client, world, first, "cap")
    assert again.status_code == 410


def test_quantities_hold_the_difference_and_release_what_goes(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    line = add(client, world, cart, "cap", 3).get_json()
    cap = world.articles["cap"]
    assert held(app, cap) == 3
    url = f"{world.api}/carts/{cart[0]}/lines/{line['id']}"
    assert client.patch(url, json={"quantity": 10}, headers=cart[1]).status_code == 200
    assert held(app, cap) == 10
    too_many = client.patch(url, json={"quantity": 11}, headers=cart[1])
    assert too_many.status_code == 409
    assert too_many.get_json()["error"]["code"] == "out_of_stock"
    assert held(app, cap) == 10
    assert client.patch(url, json={"quantity": 2}, headers=cart[1]).status_code == 200
    assert held(app, cap) == 2
    # Adding the same article again raises the same line.
    again = add(client, world, cart, "cap", 4)
    assert again.status_code == 201
    assert again.get_json()["id"] == line["id"]
    assert again.get_json()["quantity"] == 6
    assert held(app, cap) == 6
    assert client.delete(url, headers=cart[1]).status_code == 204
    assert held(app, cap) == 0
    assert stock_of(app, cap) == (10, 0)


def test_variants_hold_their_own_stock_and_share_the_per_order_maximum(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    assert add(client, world, cart, "suit", 2, variant="small").status_code == 201
    small_gone = add(client, world, cart, "suit", 1, variant="small")
    assert small_gone.status_code == 409
    assert add(client, world, cart, "suit", 4, variant="large").status_code == 201
    # 2 small + 4 large = 6, the article's maximum per order, whatever the variant.
    over = add(client, world, cart, "suit", 1, variant="large")
    assert over.status_code == 422
    assert "quantity" in over.get_json()["error"]["fields"]
    assert held(app, world.articles["suit"], world.variants["small"]) == 2
    assert held(app, world.articles["suit"], world.variants["large"]) == 4
    needs_choice = add(client, world, cart, "suit", 1)
    assert needs_choice.status_code == 422
    assert "variant_id" in needs_choice.get_json()["error"]["fields"]


# --------------------------------------------------------------------------- renewals and staff


def test_renewal_only_near_the_end_and_up_to_the_shop_limit(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    assert add(client, world, cart, "cap", 2).status_code == 201
    renew_url = f"{world.api}/carts/{cart[0]}/renew"
    early = client.post(renew_url, headers=cart[1])
    assert early.status_code == 409
    body = client.get(f"{world.api}/carts/{cart[0]}", headers=cart[1]).get_json()
    assert body["can_renew"] is False
    assert body["renewals_left"] == 2
    for left in (2, 1):
        move_expiry(app, cart[0], utcnow() + timedelta(minutes=3))
        assert client.get(f"{world.api}/carts/{cart[0]}", headers=cart[1]).get_json()["can_renew"]
        renewed = client.post(renew_url, headers=cart[1])
        assert renewed.status_code == 200, renewed.get_json()
        body = renewed.get_json()
        assert body["renewals_left"] == left - 1
        assert body["expires_at"] > (utcnow() + timedelta(minutes=19)).isoformat()
        with database(app):
            hold = db.session.execute(sa.select(StockHold)).scalar_one()
            cart_row = db.session.get(Cart, cart[0])
            assert cart_row is not None
            assert hold.expires_at == cart_row.expires_at
    move_expiry(app, cart[0], utcnow() + timedelta(minutes=3))
    spent = client.post(renew_url, headers=cart[1])
    assert spent.status_code == 409
    move_expiry(app, cart[0], utcnow() - timedelta(seconds=5))
    assert client.post(renew_url, headers=cart[1]).status_code == 410


def test_staff_move_the_expiry_and_revive_a_cart_while_its_stock_is_free(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    assert add(client, world, cart, "last").status_code == 201
    move_expiry(app, cart[0], utcnow() - timedelta(minutes=1))
    later = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    revived = client.patch(
        f"{world.api}/carts/{cart[0]}",
        json={"expires_at": later.isoformat()},
        headers=bearer(world, "attendant"),
    )
    assert revived.status_code == 200, revived.get_json()
    assert revived.get_json()["status"] == "active"
    assert held(app, world.articles["last"]) == 1
    with database(app):
        entry = db.session.execute(
            sa.select(AuditLog).where(AuditLog.action == "cart.expiry_changed")
        ).scalar_one()
        assert entry.target_id == str(cart[0])
        assert entry.after is not None
        assert entry.after["expires_at"].startswith(later.isoformat()[:16])

    # Expired again, and another customer takes the last unit: reviving is refused.
    move_expiry(app, cart[0], utcnow() - timedelta(minutes=1))
    other = open_cart(client, world)
    assert add(client, world, other, "last").status_code == 201
    refused = client.patch(
        f"{world.api}/carts/{cart[0]}",
        json={"expires_at": later.isoformat()},
        headers=bearer(world, "owner"),
    )
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "out_of_stock"
    assert held(app, world.articles["last"]) == 1

    # A time in the past ends the other cart at once.
    ended = client.patch(
        f"{world.api}/carts/{other[0]}",
        json={"expires_at": (utcnow() - timedelta(minutes=1)).isoformat()},
        headers=bearer(world, "owner"),
    )
    assert ended.status_code == 200
    assert ended.get_json()["status"] == "expired"
    assert held(app, world.articles["last"]) == 0


def test_selling_a_cart_turns_its_holds_into_sold_units(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    cart = open_cart(client, world)
    assert add(client, world, cart, "cap", 4).status_code == 201
    assert add(client, world, cart, "suit", 1, variant="large").status_code == 201
    with database(app), tenant_scope(world.organization_id):
        row = db.session.get(Cart, cart[0])
        assert row is not None
        lines = list(db.session.execute(sa.select(CartLine)).scalars())
        holds.sell_cart(cart=row, lines=lines)
        db.session.commit()
    assert stock_of(app, world.articles["cap"]) == (10, 4)
    assert stock_of(app, world.articles["suit"], world.variants["large"]) == (5, 1)
    assert held(app, world.articles["cap"]) == 0
    with database(app), tenant_scope(world.organization_id):
        article = db.session.get(Article, world.articles["cap"])
        assert article is not None
        assert Availability.of([article]).article(article) == 6


def test_active_holds_is_one_grouped_query_that_ignores_expired_holds(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    carts = [open_cart(client, world) for _ in range(3)]
    for cart in carts:
        assert add(client, world, cart, "cap", 2).status_code == 201
        assert add(client, world, cart, "suit", 1, variant="large").status_code == 201
    move_expiry(app, carts[0][0], utcnow() - timedelta(seconds=1))
    keys = [
        StockKey(world.articles["cap"]),
        StockKey(world.articles["suit"], world.variants["large"]),
        StockKey(world.articles["suit"], world.variants["small"]),
        StockKey(world.articles["goggles"]),
    ]
    statements: list[str] = []

    def collect(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with database(app):
        sa.event.listen(db.engine, "before_cursor_execute", collect)
        try:
            totals = active_holds(keys)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", collect)
    assert totals == {keys[0]: 4, keys[1]: 2}
    assert len([s for s in statements if "stock_holds" in s]) == 1


# --------------------------------------------------------------------------- the sweep


def _expired_crowd(app: Flask, world: CartWorld, count: int) -> None:
    """``count`` expired carts of one line each, with their holds, in three statements."""
    with database(app):
        params = {"org": world.organization_id, "shop": world.shop_id, "n": count}
        db.session.execute(
            sa.text(
                "INSERT INTO carts (organization_id, shop_id, token_hash, status, expires_at, "
                "renewals, locale, currency, created_at) "
                "SELECT :org, :shop, md5('expired-' || i) || md5('cart-' || i), 'active', "
                "now() - interval '1 minute', 0, 'fr', 'CAD', now() - interval '30 minutes' "
                "FROM generate_series(1, :n) AS i"
            ),
            params,
        )
        db.session.execute(
            sa.text(
                "INSERT INTO cart_lines (organization_id, cart_id, article_id, quantity, "
                "unit_price, original_unit_price, created_at) "
                "SELECT :org, id, :article, 1, 2000, 2000, now() FROM carts "
                "WHERE shop_id = :shop AND expires_at < now()"
            ),
            {**params, "article": world.articles["goggles"]},
        )
        db.session.execute(
            sa.text(
                "INSERT INTO stock_holds (organization_id, cart_id, cart_line_id, article_id, "
                "quantity, expires_at) "
                "SELECT l.organization_id, l.cart_id, l.id, l.article_id, 1, c.expires_at "
                "FROM cart_lines l JOIN carts c ON c.id = l.cart_id WHERE c.expires_at < now()"
            )
        )
        db.session.commit()


def _count(app: Flask, model: Any, *where: Any) -> int:
    with database(app):
        return int(
            db.session.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar()
        )


def test_the_sweep_deletes_expired_holds_and_marks_carts_but_spares_live_ones(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    live = open_cart(client, world)
    assert add(client, world, live, "cap", 2).status_code == 201
    dead = open_cart(client, world)
    assert add(client, world, dead, "cap", 3).status_code == 201
    move_expiry(app, dead[0], utcnow() - timedelta(seconds=1))
    with app.app_context():
        result = holds.sweep_expired(batch_size=1)
        db.session.remove()
    assert result.holds_deleted == 1
    assert result.carts_expired == 1
    assert _count(app, StockHold) == 1
    with database(app):
        statuses = dict(db.session.execute(sa.select(Cart.id, Cart.status)).all())
    assert statuses == {live[0]: CartStatus.ACTIVE, dead[0]: CartStatus.EXPIRED}
    # The expired cart keeps its lines, to show what it had; the live one still holds.
    assert _count(app, CartLine, CartLine.cart_id == dead[0]) == 1
    assert held(app, world.articles["cap"]) == 2


def test_the_sweep_skips_rows_a_cart_is_using_instead_of_waiting(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    dead = open_cart(client, world)
    assert add(client, world, dead, "cap").status_code == 201
    move_expiry(app, dead[0], utcnow() - timedelta(seconds=1))
    with app.app_context(), unscoped():
        # Another transaction (a cart request) holds the row: the sweep must not wait for it.
        with db.engine.connect() as other:
            other.execute(sa.text("SELECT set_config('comptoir.unscoped', 'on', true)"))
            other.execute(sa.text("SELECT id FROM stock_holds FOR UPDATE"))
            other.execute(sa.text("SELECT id FROM carts FOR UPDATE"))
            started = time.monotonic()
            skipped = holds.sweep_expired()
            assert time.monotonic() - started < 5
            assert (skipped.holds_deleted, skipped.carts_expired) == (0, 0)
            other.rollback()
        swept = holds.sweep_expired()
        assert (swept.holds_deleted, swept.carts_expired) == (1, 1)
        db.session.remove()


def _goggle_holds_left(app: Flask, world: CartWorld) -> int:
    return _count(app, StockHold, StockHold.article_id == world.articles["goggles"])


def _wait_for_first_deletion(app: Flask, sweeper: threading.Thread) -> None:
    """Return as soon as the sweep has committed a batch: the first hold row is gone."""
    with database(app):
        first = db.session.execute(sa.select(sa.func.min(StockHold.id))).scalar_one()
        deadline = time.monotonic() + 60
        while db.session.execute(sa.select(StockHold.id).where(StockHold.id == first)).first():
            db.session.rollback()
            assert sweeper.is_alive(), "the sweep ended without deleting the first hold"
            assert time.monotonic() < deadline, "the sweep's first batch never committed"
            time.sleep(0.001)


def test_the_sweep_removes_100000_holds_in_batches_while_other_carts_add_and_check_out(
    app: Flask, client: FlaskClient, world: CartWorld
) -> None:
    """The sweep works in short transactions: carts of other articles never wait for it.

    While the sweep deletes 100,000 expired holds (all of the goggles) and marks their carts
    expired, one cart adds articles and another checks out through the API. Both start after the
    sweep's first batch is committed and are done before the sweep is: had the sweep held a lock
    they need (a cart's row, the table) until its end, they would have ended after it.
    """
    _expired_crowd(app, world, 100_000)
    assert _count(app, StockHold) == 100_000
    buyer = open_cart(client, world)
    for article, variant in (("cap", None), ("suit", "large")):
        assert add(client, world, buyer, article, 2, variant=variant).status_code == 201
    checkout_body = {
        "payment_method": "offline",
        "answers": {"first_name": "Léa", "last_name": "Roy", "email": "lea.roy@example.org"},
    }
    # A first checkout before the sweep, so that the one measured below pays no first-use cost
    # (templates, translations) that has nothing to do with the sweep.
    warm_up = open_cart(client, world)
    assert add(client, world, warm_up, "exempt").status_code == 201
    warmed = client.post(
        f"{world.api}/carts/{warm_up[0]}/checkout", json=checkout_body, headers=warm_up[1]
    )
    assert warmed.status_code == 201, warmed.get_json()
    shopper = open_cart(client, world)

    outcome: dict[str, Any] = {}

    def sweep() -> None:
        with app.app_context():
            started = time.monotonic()
            outcome["result"] = holds.sweep_expired(batch_size=5000)
            outcome["finished"] = time.monotonic()
            outcome["seconds"] = outcome["finished"] - started
            db.session.remove()

    checkout: dict[str, Any] = {}

    def check_out() -> None:
        checkout["holds_left_before"] = _goggle_holds_left(app, world)
        started = time.monotonic()
        response = app.test_client().post(
            f"{world.api}/carts/{buyer[0]}/checkout", json=checkout_body, headers=buyer[1]
        )
        checkout["ended"] = time.monotonic()
        checkout["seconds"] = checkout["ended"] - started
        checkout["status"] = response.status_code
        checkout["body"] = response.get_json()
        # How far the sweep was when the order was placed, for the failure message.
        checkout["holds_left"] = _goggle_holds_left(app, world)
        checkout["carts_left"] = _count(
            app, Cart, Cart.status == CartStatus.ACTIVE, Cart.expires_at < utcnow()
        )

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    _wait_for_first_deletion(app, sweeper)
    buyer_thread = threading.Thread(target=check_out)
    buyer_thread.start()
    latencies: list[float] = []
    added_at = None
    for article, variant in (("cap", None), ("suit", "large"), ("exempt", None)):
        started = time.monotonic()
        response = add(client, world, shopper, article, 1, variant=variant)
        latencies.append(time.monotonic() - started)
        assert response.status_code == 201, response.get_json()
        added_at = time.monotonic()
    buyer_thread.join(timeout=120)
    sweeper.join(timeout=300)
    assert not buyer_thread.is_alive()
    assert not sweeper.is_alive()

    result = outcome["result"]
    assert result.holds_deleted == 100_000
    assert result.carts_expired == 100_000
    assert result.batches >= 10
    report = (
        f"sweep {outcome['seconds']:.2f} s; checkout {checkout['seconds']:.2f} s, started with "
        f"{checkout['holds_left_before']} expired holds left, ended with "
        f"{checkout['holds_left']} holds and {checkout['carts_left']} carts left to sweep; "
        f"adds {[round(seconds, 2) for seconds in latencies]} s"
    )
    # The order went through, for the articles of its own cart, while the sweep was still going.
    assert checkout["status"] == 201, (checkout["body"], report)
    order = checkout["body"]
    assert order["state"] == "awaiting_payment"
    assert [
        (line["article_id"], line["variant_id"], line["quantity"]) for line in order["lines"]
    ] == [
        (world.articles["cap"], None, 2),
        (world.articles["suit"], world.variants["large"], 2),
    ]
    assert checkout["ended"] < outcome["finished"], report
    # So did the other cart's requests.
    assert added_at is not None
    assert added_at < outcome["finished"], report
    assert max(latencies) < 2.0, report
    assert stock_of(app, world.articles["cap"]) == (10, 2)
    assert stock_of(app, world.articles["suit"], world.variants["large"]) == (5, 2)
    # Left: the shopper's three holds; the order's holds became sales.
    assert _count(app, StockHold) == 3
    assert _count(app, Cart, Cart.status == CartStatus.CHECKED_OUT) == 2
    print(f"\nswept 100,000 holds beside a checkout and adds: {report}")
