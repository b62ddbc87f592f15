"""No overselling under concurrency, through a real HTTP server and real PostgreSQL.

200 customers, each with a cart of their own, add one unit of the same article at the same
moment. With stock N (1, 10, 100 in turn), exactly N get 201 and the others 409
``out_of_stock``, round after round.
The same test against a naive version of the hold (read the availability, then write, without
the row lock) does oversell: the test can catch the bug it is about.

The app runs under gunicorn in worker processes of its own, as in production, so that the
requests use both cores and the 200 client threads never compete with the app for one
interpreter lock.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from comptoir.platform.db import db, utcnow
from comptoir.platform.security import new_token, token_hash
from comptoir.storefront.models import Article, Cart, CartLine, CartStatus, StockHold
from tests.storefront.cart_world import CartWorld, build_cart_world, database

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = 200
STOCKS = (1, 10, 100)
# Rounds of 200 concurrent requests, the stock cycling through STOCKS: 60 is 20 rounds of each
# stock. Each request costs about 15 ms of one core through the whole stack, so a round takes
# about 2 s on two cores (about 3.5 minutes in all); COMPTOIR_OVERSELL_ROUNDS=6 is a quick look.
REPEATS = int(os.environ.get("COMPTOIR_OVERSELL_ROUNDS", "60"))
# Worker processes of one thread each: eight transactions at once, as production's two workers
# of four threads run, and a worker holding the stock row's lock never waits for another
# thread's turn at the interpreter lock (which made each round twice as long).
WORKERS = int(os.environ.get("COMPTOIR_OVERSELL_WORKERS", "8"))


@dataclass
class LiveServer:
    port: int
    process: subprocess.Popen[bytes]


def _wait_until_ready(server: LiveServer, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            message = f"gunicorn stopped: {log.read_text(errors='replace')[-2000:]}"
            raise RuntimeError(message)
        try:
            url = f"http://127.0.0.1:{server.port}/healthz"
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    message = f"gunicorn did not answer within a minute: {log.read_text(errors='replace')[-2000:]}"
    raise RuntimeError(message)


@contextmanager
def serve(
    database_url: str, redis_url: str, instance: Path, *, naive: bool = False
) -> Iterator[LiveServer]:
    """The app under gunicorn (sync workers) on a loopback socket opened here.

    The socket is bound before gunicorn starts (no race for a free port) and handed over to it;
    its listen backlog takes all 200 customers connecting at once.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    log = instance / "gunicorn.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"fd://{listener.fileno()}",
        "--workers",
        str(WORKERS),
        "--worker-class",
        "sync",
        # The app is built once and forked: building it opens no connection to share.
        "--preload",
        "--backlog",
        "1024",
        "--log-level",
        "warning",
        "--chdir",
        str(PROJECT_ROOT),
        "tests.storefront.live_app:app",
    ]
    env = {
        **os.environ,
        "COMPTOIR_TEST_DATABASE_URL": database_url,
        "COMPTOIR_TEST_REDIS_URL": redis_url,
        "COMPTOIR_TEST_INSTANCE": str(instance),
        "COMPTOIR_TEST_NAIVE_HOLDS": "1" if naive else "0",
    }
    with log.open("wb") as output:
        # Started from the instance folder: no gunicorn.conf.py there to be picked up.
        process = subprocess.Popen(  # noqa: S603 - our own server, arguments from here
            command,
            cwd=instance,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
        )
    server = LiveServer(port=listener.getsockname()[1], process=process)
    try:
        _wait_until_ready(server, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        listener.close()


@pytest.fixture(scope="module")
def live_server(
    app: Flask, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """``app`` (the session's) has created the schema; gunicorn's workers only serve requests."""
    with serve(database_url, redis_url, tmp_path_factory.mktemp("oversell")) as server:
        yield server


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
    """200 client threads, released together, each sending its request on a new connection."""

    def __init__(self, port: int, org_slug: str, crowd: Crowd) -> None:
        self.port = port
        self.org_slug = org_slug
        self.crowd = crowd
        self.pool = ThreadPoolExecutor(max_workers=CUSTOMERS, thread_name_prefix="customer")

    def _add_one(self, cart_id: int, token: str, start: threading.Barrier) -> tuple[int, str]:
        body = json.dumps({"article_id": self.crowd.article_id, "quantity": 1})
        headers = {"Content-Type": "application/json", "X-Cart-Token": token}
        path = f"/api/v1/o/{self.org_slug}/carts/{cart_id}/lines"
        start.wait()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        code = ""
        if response.status >= 400:
            code = json.loads(payload)["error"]["code"]
        return response.status, code

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
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    crowd_world: tuple[CartWorld, Crowd],
) -> None:
    """Read, then write, without the row lock: the same crowd gets more than the stock, so the
    test above can fail."""
    world, crowd = crowd_world
    oversold: list[str] = []
    # The one change, in the server's workers (see tests/storefront/live_app.py).
    with serve(database_url, redis_url, tmp_path, naive=True) as naive_server:
        customers = Customers(naive_server.port, world.org_slug, crowd)
        try:
            for repeat in range(REPEATS):
                stock = STOCKS[repeat % len(STOCKS)]
                reset(app, crowd, stock)
                results = customers.round()
                assert sum(results.values()) == CUSTOMERS
                assert set(results) <= {(201, ""), (409, "out_of_stock")}, results
                if results[(201, "")] > stock:
                    oversold.append(f"round {repeat + 1}, stock {stock}: {results[(201, '')]} sold")
                    break
        finally:
            customers.close()
    assert oversold, "the naive version never oversold: the concurrency test proves nothing"
    print(f"\nthe naive version oversold in {oversold[0]}")
