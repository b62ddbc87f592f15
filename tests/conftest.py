"""Test set-up: a real PostgreSQL database and a real Redis for each test run.

Each pytest process (each xdist worker) gets its own database, created from the migrations as the
app's ordinary role (no SUPERUSER, no BYPASSRLS, so row-level security applies), and its own Redis
database number. Tables are truncated after every test that touched them.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue as RQQueue
from rq import SimpleWorker
from werkzeug.serving import make_server

from comptoir.app import create_app
from comptoir.platform.db import db
from comptoir.platform.extensions import limiter
from comptoir.platform.outbox import Queue
from comptoir.platform.settings import Environment, Settings

# The Stripe fake and a gateway talking to it (stripe_server, stripe_fake, stripe_gateway...).
pytest_plugins = ("tests.billing.stripe_helpers",)

ADMIN_URL = os.environ.get(
    "COMPTOIR_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
APP_ROLE = os.environ.get("COMPTOIR_TEST_APP_ROLE", "comptoir")
PG_HOST = os.environ.get("COMPTOIR_TEST_PG_HOST", "127.0.0.1:5432")
REDIS_BASE = os.environ.get("COMPTOIR_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _worker_suffix() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return f"{os.getpid()}_{worker}"


def ensure_app_role(admin: psycopg.Connection[Any]) -> None:
    exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone()
    if exists is None:
        admin.execute(
            f'CREATE ROLE "{APP_ROLE}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE'
        )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"comptoir_test_{_worker_suffix()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        ensure_app_role(admin)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{APP_ROLE}"')
    yield f"postgresql+psycopg://{APP_ROLE}@{PG_HOST}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    # Redis' numbered databases 1-15 (0 is left to humans): the workers of one run get distinct
    # numbers (they flush theirs after each test); separate runs are spread by their run id.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    worker_index = int(worker[2:]) if worker[2:].isdigit() else 0
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    offset = int(hashlib.sha256(run_id.encode()).hexdigest(), 16)
    number = 1 + (offset + worker_index) % 15
    return f"{REDIS_BASE}/{number}"


def make_settings(database_url: str, redis_url: str, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        env=Environment.TEST,
        database_url=database_url,
        redis_url=redis_url,
        secret_key="test-secret-key-" + "x" * 32,
        mail_url="dev://",
        base_url="http://localhost",
        instance_path=tmp_path,
        extra={
            "WTF_CSRF_ENABLED": False,
            "SERVER_NAME": None,
            # Test runs may share a Redis database number: keep their rate-limit counters apart.
            "RATELIMIT_KEY_PREFIX": f"test-{_worker_suffix()}",
            **extra,
        },
    )


@pytest.fixture(scope="session")
def app(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    from flask_migrate import upgrade

    instance = tmp_path_factory.mktemp("instance")
    application = create_app(make_settings(database_url, redis_url, instance))
    with application.app_context():
        upgrade()
        db.session.remove()
    return application


@pytest.fixture(scope="session")
def table_names(app: Flask) -> list[str]:
    return [table.name for table in db.metadata.sorted_tables]


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Truncate every table and flush this run's Redis database after each app test."""
    if "app" not in request.fixturenames:
        yield
        return
    application: Flask = request.getfixturevalue("app")
    names: list[str] = request.getfixturevalue("table_names")
    url: str = request.getfixturevalue("redis_url")
    yield
    with application.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            connection.execute(sa.text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
    Redis.from_url(url).flushdb()
    # The limiter is one object shared by every app a test builds, bound to the storage of the
    # last one built (memory or another Redis database): clear whichever it holds now.
    limiter.reset()


@pytest.fixture
def app_context(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def redis(redis_url: str) -> Redis:
    return Redis.from_url(redis_url)


def run_jobs(app: Flask, redis_url: str) -> int:
    """Run every queued RQ job in this process until the queues are empty; returns how many."""
    connection = Redis.from_url(redis_url)
    queues = [RQQueue(name.value, connection=connection) for name in Queue]
    before = sum(queue.count for queue in queues)
    with app.app_context():
        worker = SimpleWorker(queues, connection=connection)
        worker.work(burst=True, with_scheduler=False)
        db.session.remove()
    return before


@pytest.fixture
def jobs(app: Flask, redis_url: str) -> Any:
    """Call ``jobs()`` to run what the outbox relayed to RQ so far."""
    return lambda: run_jobs(app, redis_url)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(app: Flask) -> Iterator[str]:
    """The session's app on a free loopback port, served by threads; its base URL (for the
    browser and for the Stripe fake's webhooks)."""
    port = _free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
