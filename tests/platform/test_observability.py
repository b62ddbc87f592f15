"""Structured logs with request id and organization; Sentry only with a DSN, and scrubbed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import structlog
from flask import Flask
from flask.testing import FlaskClient

from comptoir.jobs.tenant import tenant_job
from comptoir.platform.db import db
from comptoir.platform.observability import (
    _scrub_event,
    comptoir_log_handler,
    configure_logging,
    init_sentry,
)
from comptoir.platform.outbox import run_message
from comptoir.platform.settings import SETTINGS_EXTENSION, Settings
from comptoir.platform.tenancy import tenant_scope
from tests.conftest import make_settings
from tests.factories import OrganizationFactory, staff
from tests.platform.smtp import another_app


@tenant_job("tests.observability.noop")
def noop_job(*, organization_id: int) -> None:
    return None


@contextmanager
def json_logs(app: Flask) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Switch the log handler to JSON into a buffer; yields a reader of the parsed lines."""
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    configure_logging(replace(settings, log_json=True))
    handler = comptoir_log_handler()
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]

    try:
        yield read
    finally:
        configure_logging(settings)


def login(client: FlaskClient, user_id: str) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True


def test_request_log_carries_request_id_and_organization(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        organization = OrganizationFactory(slug="logging-club")
        user_id = staff(organization).get_id()
    login(client, user_id)
    with json_logs(app) as read:
        response = client.get("/o/logging-club/admin/", headers={"X-Request-ID": "req-42.abc"})
    assert response.headers["X-Request-ID"] == "req-42.abc"
    (entry,) = [e for e in read() if e.get("event") == "request"]
    assert entry["request_id"] == "req-42.abc"
    assert entry["organization"] == "logging-club"
    assert entry["path"] == "/o/logging-club/admin/"
    assert entry["status"] == response.status_code
    assert entry["level"] == "info"
    assert "timestamp" in entry
    # Nothing of this request stays bound for whatever this thread logs next.
    assert structlog.contextvars.get_contextvars() == {}


def test_library_logs_inside_a_request_carry_its_request_id(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    broken = another_app(
        make_settings(database_url, "redis://127.0.0.1:1/0", tmp_path), limits_url=redis_url
    )
    try:
        with json_logs(app) as read:
            response = broken.test_client().get("/readyz", headers={"X-Request-ID": "probe-7"})
        assert response.status_code == 503
        warnings = [e for e in read() if e.get("level") == "warning"]
        assert any("not ready" in e["event"] and e["request_id"] == "probe-7" for e in warnings)
    finally:
        with broken.app_context():
            db.engine.dispose()


@pytest.mark.parametrize("header", ["<script>alert(1)</script>", "a b", "x" * 200])
def test_unsafe_request_ids_are_replaced(client: FlaskClient, header: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": header})
    replaced = response.headers["X-Request-ID"]
    assert replaced != header
    assert len(replaced) == 16
    int(replaced, 16)


def test_a_request_id_is_made_when_none_comes_and_uuids_are_kept(client: FlaskClient) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert len(first) == len(second) == 16
    assert first != second
    uuid = "0b7c6a0e-4f4e-4c59-9a55-2a1f3c2d1e0f"
    assert client.get("/healthz", headers={"X-Request-ID": uuid}).headers["X-Request-ID"] == uuid


def test_job_logs_carry_the_job_and_organization(app: Flask) -> None:
    with app.app_context():
        organization_id = OrganizationFactory().id
        with tenant_scope(organization_id):
            message_id = noop_job.enqueue().id
        db.session.commit()
        with json_logs(app) as read:
            assert run_message(message_id) == "done"
    (entry,) = [e for e in read() if "done" in e["event"] and e.get("job")]
    assert entry["job"] == "tests.observability.noop"
    assert entry["outbox_message"] == message_id
    assert entry["organization_id"] == organization_id


# --------------------------------------------------------------------------- Sentry


def test_sentry_stays_off_without_a_dsn(app: Flask) -> None:
    assert not app.extensions[SETTINGS_EXTENSION].sentry_dsn
    assert not sentry_sdk.get_client().is_active()


def test_sentry_starts_with_a_dsn_and_the_scrubber(app: Flask) -> None:
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    try:
        init_sentry(replace(settings, sentry_dsn="https://public@127.0.0.1:9/1"))
        client = sentry_sdk.get_client()
        assert client.is_active()
        assert client.options["before_send"] is _scrub_event
        collected = client.options["data_collection"]
        assert collected["user_info"] is False
        assert collected["stack_frame_variables"] is False
        assert collected["http_bodies"] == []
        assert collected["cookies"]["mode"] == "off"
        assert collected["url_query_params"]["mode"] == "off"
        assert client.options["environment"] == "test"
    finally:
        sentry_sdk.get_client().close(timeout=0)
        sentry_sdk.get_global_scope().set_client(None)
    assert not sentry_sdk.get_client().is_active()


def test_scrub_event_removes_customer_data() -> None:
    event: dict[str, Any] = {
        "request": {
            "url": "https://comptoir.example/o/club/checkout?email=ana%40example.org#x",
            "method": "POST",
            "query_string": "email=ana%40example.org",
            "data": {"first_name": "Ana", "email": "ana@example.org"},
            "cookies": {"session": "secret"},
            "env": {"REMOTE_ADDR": "203.0.113.9"},
            "headers": {
                "Authorization": "Bearer ck_live_secret",
                "Cookie": "session=secret",
                "X-Api-Key": "secret",
                "User-Agent": "Firefox",
            },
        },
        "user": {"email": "ana@example.org", "ip_address": "203.0.113.9"},
        "breadcrumbs": {
            "values": [
                {
                    "category": "httplib",
                    "data": {"url": "https://api.example/x?token=abc", "http.query": "token=abc"},
                }
            ]
        },
        "tags": {"organization": "club"},
    }
    scrubbed = _scrub_event(event, {})
    assert scrubbed is not None
    request = scrubbed["request"]
    assert set(request) == {"url", "method", "headers"}
    assert request["url"] == "https://comptoir.example/o/club/checkout"
    assert request["headers"]["Authorization"] == "[removed]"
    assert request["headers"]["Cookie"] == "[removed]"
    assert request["headers"]["X-Api-Key"] == "[removed]"
    assert request["headers"]["User-Agent"] == "Firefox"
    assert "user" not in scrubbed
    crumb = scrubbed["breadcrumbs"]["values"][0]["data"]
    assert crumb == {"url": "https://api.example/x", "http.query": "[removed]"}
    assert scrubbed["tags"] == {"organization": "club"}
    assert "ana" not in json.dumps(scrubbed)
