"""No overselling under concurrency, through a real HTTP server and real PostgreSQL.

200 customers, each with a cart of their own, add one unit of the same article at the same
moment. With stock N (1, 10, 100 in turn), exactly N get 201 and the others 409
``out_of_stock``, round after round (20 rounds).
The same test against a naive version of the hold (read the availability, then write, without
the row lock) does oversell: the test can catch the bug it is about.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from comptoir.app import create_app
from comptoir.platform.db import db, utcnow
from comptoir.platform.security import new_token, token_hash
from comptoir.storefront import holds
from comptoir.storefront.models import Article, Cart, CartLine, CartStatus, StockHold
from tests.conftest import make_settings
from tests.storefront.cart_world import CartWorld, build_cart_world, database

CUSTOMERS = 200
STOCKS = (1, 10, 100)
# Rounds of 200 concurrent requests, the stock cycling through STOCKS. Every request runs the
# whole stack (about 15 ms of one core each), so the default keeps the test near a minute; set
# COMPTOIR_OVERSELL_ROUNDS=60 for 20 rounds of each stock.
REPEATS = int(os.environ.get("COMPTOIR_OVERSELL_ROUNDS", "20"))


class QuietHandler(WSGIRequestHandler):
    """No access log line per request: 12,000 of them would only slow the test down."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@dataclass
class LiveServer:
    app: Flask
    server: BaseWSGIServer
    port: int


@pytest.fixture(scope="module")
def live_server(
    app: Flask, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The app under a threaded WSGI server on a free loopback port, with a larger pool.

    ``app`` (the session's) has created the schema; this second instance only serves requests.
    """
    instance: Path = tmp_path_factory.mktemp("oversell")
    engine_options = {"pool_size": 20, "max_overflow": 10, "pool_timeout": 60}
    served = create_app(
        make_settings(database_url, redis_url, instance, SQLALCHEMY_ENGINE_OPTIONS=engine_options)
    )
    server = make_server("127.0.0.1", 0, served, threaded=True, request_handler=QuietHandler)
    # All 200 clients connect at once: a listen backlog of 128 would drop some connections.
    server.socket.listen(1024)
    thread = threading.Thread(target=server.serve_forever, name="oversell-server", daemon=True)
    thread.start()
    request_log = logging.getLogger("comptoir.request")
    level = request_log.level
    request_log.setLevel(logging.WARNING)
    try:
        yield LiveServer(app=served, server=server, port=server.server_port)
    finally:
        request_log.setLevel(level)
        server.shutdown()
        thread.join(timeout=10)
        with served.app_context():
            db.engine.dispose()


@dataclass
class Crowd:
    article_id: int
    carts: list[tuple[int, str]]  # (cart id, token)


def make_crowd(app: Flask, world: CartWorld) -> Crowd:
    """One cart per customer, inserted directly (creating carts is not what is under test)."""
    carts: list[tuple[int, str]] = []
    with database(app):
        expires_at = utcnow() + timedelta(hours=1)
        for _index in range(CUSTOMERS):
            token = new_token()
            cart = Cart(
                organization_id=world.organization_id,
                shop_id=world.shop_id,
                token_hash=token_hash(token),
                status=CartStatus.ACTIVE,
                expires_at=expires_at,
                locale="fr",
                currency="CAD",
            )
            db.session.add(cart)
            db.session.flush()
            carts.append((cart.id, token))
        db.session.commit()
    return Crowd(article_id=world.articles["cap"], carts=carts)


def reset(app: Flask, crowd: Crowd, stock: int) -> None:
    """Empty every cart and give the article ``stock`` units, none sold."""
    with database(app):
        cart_ids = [cart_id for cart_id, _token in crowd.carts]
        db.session.execute(sa.delete(CartLine).where(CartLine.cart_id.in_(cart_ids)))
        db.session.execute(
            sa.update(Article).where(Article.id == crowd.article_id).values(stock=stock, sold=0)
        )
        db.session.commit()


def outcome(app: Flask, crowd: Crowd) -> tuple[int, int]:
    """(units held, lines) for the article, as the database has them after a round."""
    with database(app):
        units = db.session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(StockHold.quantity), 0)).where(
                StockHold.article_id == crowd.article_id, StockHold.expires_at > utcnow()
            )
        ).scalar_one()
        lines = db.session.execute(
            sa.select(sa.func.count()).where(CartLine.article_id == crowd.article_id)
        ).scalar_one()
    return int(units), int(lines)


class Customers:
    """200 client threads, each with its own keep-alive connection, released together."""

    def __init__(self, port: int, org_slug: str, crowd: Crowd) -> None:
        self.port = port
        self.org_slug = org_slug
        self.crowd = crowd
        self.pool = ThreadPoolExecutor(max_workers=CUSTOMERS, thread_name_prefix="customer")
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.local.connection = connection
        return connection

    def _add_one(self, cart_id: int, token: str, start: threading.Barrier) -> tuple[int, str]:
        body = json.dumps({"article_id": self.crowd.article_id, "quantity": 1})
        headers = {"Content-Type": "application/json", "X-Cart-Token": token}
        path = f"/api/v1/o/{self.org_slug}/carts/{cart_id}/lines"
        start.wait()
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (ConnectionError, http.client.HTTPException):
                # A keep-alive connection the server closed: open a new one, once.
                connection.close()
                self.local.connection = None
                if attempt:
                    raise
                continue
            code = ""
            if response.status >= 400:
                code = json.loads(payload)["error"]["code"]
            return response.status, code
        raise AssertionError("unreachable")

    def round(self) -> Counter[tuple[int, str]]:
        start = threading.Barrier(CUSTOMERS)
        futures = [
            self.pool.submit(self._add_one, cart_id, token, start)
            for cart_id, token in self.crowd.carts
        ]
        return Counter(future.result(timeout=180) for future in futures)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


@pytest.fixture
def crowd_world(app: Flask) -> tuple[CartWorld, Crowd]:
    world = build_cart_world(app)
    return world, make_crowd(app, world)


def test_exactly_the_stock_is_held_under_200_concurrent_customers(
    app: Flask, live_server: LiveServer, crowd_world: tuple[CartWorld, Crowd]
) -> None:
    world, crowd = crowd_world
    customers = Customers(live_server.port, world.org_slug, crowd)
    started = time.monotonic()
    try:
        for repeat in range(REPEATS):
            stock = STOCKS[repeat % len(STOCKS)]
            reset(app, crowd, stock)
            results = customers.round()
            label = f"round {repeat + 1}, stock {stock}"
            assert results[(201, "")] == stock, (label, results)
            assert results[(409, "out_of_stock")] == CUSTOMERS - stock, (label, results)
            assert outcome(app, crowd) == (stock, stock), label
    finally:
        customers.close()
    elapsed = time.monotonic() - started
    print(f"\n{REPEATS * CUSTOMERS} concurrent adds checked in {elapsed:.1f} s")


def test_the_naive_read_then_write_does_oversell(
    app: Flask,
    live_server: LiveServer,
    crowd_world: tuple[CartWorld, Crowd],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the row lock the same crowd gets more than the stock: the test above can fail."""
    world, crowd = crowd_world
    # The one change: availability is read without locking the article's row.
    monkeypatch.setattr(holds, "lock_units", holds.read_units)
    customers = Customers(live_server.port, world.org_slug, crowd)
    oversold: list[str] = []
    try:
        for repeat in range(REPEATS):
            stock = STOCKS[repeat % len(STOCKS)]
            reset(app, crowd, stock)
            results = customers.round()
            assert sum(results.values()) == CUSTOMERS
            assert set(results) <= {(201, ""), (409, "out_of_stock")}, results
            if results[(201, "")] > stock:
                oversold.append(f"stock {stock}: {results[(201, '')]} sold")
                break
    finally:
        customers.close()
    assert oversold, "the naive version never oversold: the concurrency test proves nothing"
