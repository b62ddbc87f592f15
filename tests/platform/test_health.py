"""``/healthz`` and ``/readyz``: what load balancers and orchestrators see."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.db import db
from comptoir.platform.settings import Environment
from tests.conftest import ADMIN_URL, make_settings
from tests.platform.smtp import another_app

PRODUCTION_SECRET = "production-secret-" + "s" * 32


@pytest.fixture
def extra_apps() -> Iterator[list[Flask]]:
    """Apps built by a test; their connections are closed afterwards."""
    built: list[Flask] = []
    yield built
    for application in built:
        with application.app_context():
            db.engine.dispose()


def test_healthz_answers_without_touching_anything(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_ok_when_database_and_redis_answer(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "problems": []}


def test_readyz_names_an_unreachable_redis(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path, extra_apps: list[Flask]
) -> None:
    broken = another_app(
        make_settings(database_url, "redis://127.0.0.1:1/0", tmp_path), limits_url=redis_url
    )
    extra_apps.append(broken)
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert len(body["problems"]) == 1
    assert body["problems"][0].startswith("redis: unreachable")


def test_readyz_names_an_unreachable_database(
    app: Flask, redis_url: str, tmp_path: Path, extra_apps: list[Flask]
) -> None:
    broken = another_app(
        make_settings("postgresql+psycopg://nobody@127.0.0.1:1/none", redis_url, tmp_path),
        limits_url=redis_url,
    )
    extra_apps.append(broken)
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["problems"][0].startswith("database: unreachable")


def production_app(database_url: str, redis_url: str, tmp_path: Path) -> Flask:
    settings = replace(
        make_settings(database_url, redis_url, tmp_path),
        env=Environment.PRODUCTION,
        secret_key=PRODUCTION_SECRET,
    )
    return another_app(settings, limits_url=redis_url)


def test_readyz_in_production_reports_a_superuser_connection(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path, extra_apps: list[Flask]
) -> None:
    test_database = sa.engine.make_url(database_url).database
    as_superuser = sa.engine.make_url(ADMIN_URL).set(database=test_database)
    production = production_app(
        as_superuser.render_as_string(hide_password=False), redis_url, tmp_path
    )
    extra_apps.append(production)
    response = production.test_client().get("/readyz", base_url="https://comptoir.example")
    assert response.status_code == 503
    (problem,) = response.get_json()["problems"]
    assert "superuser" in problem
    assert "row-level security" in problem


def test_readyz_in_production_as_the_app_role_is_ok(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path, extra_apps: list[Flask]
) -> None:
    production = production_app(database_url, redis_url, tmp_path)
    extra_apps.append(production)
    client = production.test_client()
    response = client.get("/readyz", base_url="https://comptoir.example")
    assert response.status_code == 200
    # Probes reach the process over plain HTTP: no redirect to https for them ...
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200
    # ... while pages still are redirected.
    assert client.get("/operators/").status_code in {301, 302}
