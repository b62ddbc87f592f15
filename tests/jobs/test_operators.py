"""The operator console's job page: failed and stuck messages, counts, queues, retry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from comptoir.platform.db import db, utcnow
from comptoir.platform.outbox import OutboxMessage, OutboxStatus, Queue
from comptoir.platform.queue import rq_queue
from comptoir.platform.tenancy import unscoped
from tests.factories import OrganizationFactory, UserFactory, staff
from tests.platform.smtp import mail_app


def login(client: FlaskClient, user_id: str) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True


@pytest.fixture
def operator_client(app: Flask, client: FlaskClient) -> FlaskClient:
    with app.app_context():
        login(client, UserFactory(is_operator=True).get_id())
    return client


def message(**fields: object) -> int:
    row = OutboxMessage(
        **{
            "job": "mail.send",
            "arguments": {"mail_id": 1},
            "queue": Queue.HIGH.value,
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            **fields,
        }
    )
    db.session.add(row)
    db.session.commit()
    return row.id


def test_only_operators_see_the_page(app: Flask, client: FlaskClient) -> None:
    assert client.get("/operators/jobs/").status_code == 302  # to the login page
    with app.app_context():
        organization = OrganizationFactory()
        login(client, staff(organization).get_id())
    assert client.get("/operators/jobs/").status_code == 404
    assert client.post("/operators/jobs/1/retry").status_code == 404


def test_lists_failed_and_stuck_messages_with_counts(
    app: Flask, operator_client: FlaskClient
) -> None:
    now = utcnow()
    with app.app_context():
        organization = OrganizationFactory(slug="piscine-ouest")
        failed = message(
            organization_id=organization.id,
            job="billing.render_invoice",
            status=OutboxStatus.FAILED.value,
            attempts=5,
            last_error="OSError: disk <full>",
        )
        stuck = message(created_at=now - timedelta(hours=1))
        retrying = message(attempts=2, last_error="SMTPServerDisconnected: bye")
        fresh = message(created_at=now)
        done = message(status=OutboxStatus.DONE.value, attempts=1, done_at=now)

    page = operator_client.get("/operators/jobs/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    failed_section, _, rest = html.partition('id="stuck-messages"')
    # Failed: with its organization, attempts, escaped error and a Retry form (with CSRF field).
    assert "billing.render_invoice" in failed_section
    assert "piscine-ouest" in failed_section
    assert "5 / 5" in failed_section
    assert "OSError: disk &lt;full&gt;" in failed_section
    assert f'action="/operators/jobs/{failed}/retry"' in failed_section
    assert 'name="csrf_token"' in failed_section
    # Stuck: old pending ones and those already retrying; not the fresh or done ones.
    assert f"#{stuck}<" in rest
    assert f"#{retrying}<" in rest
    assert "SMTPServerDisconnected: bye" in rest
    assert f"#{fresh}<" not in html
    assert f"#{done}<" not in html
    assert "(platform)" in rest
    # Counts per status.
    assert "<dt>Pending</dt><dd>3</dd>" in html
    assert "<dt>Done</dt><dd>1</dd>" in html
    assert '<span class="badge badge--danger">1</span>' in html


def test_shows_rq_queue_lengths(app: Flask, operator_client: FlaskClient, redis: Redis) -> None:
    rq_queue(redis, "low").enqueue("comptoir.jobs.runner.run_outbox_message", 1)
    rq_queue(redis, "low").enqueue("comptoir.jobs.runner.run_outbox_message", 2)
    html = operator_client.get("/operators/jobs/").get_data(as_text=True)
    assert re.search(r'<th scope="row">high</th>\s*<td>0</td>', html)
    assert re.search(r'<th scope="row">low</th>\s*<td>2</td>', html)


def test_retry_brings_a_failed_message_back(
    app: Flask, operator_client: FlaskClient, redis: Redis
) -> None:
    with app.app_context():
        failed = message(status=OutboxStatus.FAILED.value, attempts=5, last_error="boom")
    response = operator_client.post(f"/operators/jobs/{failed}/retry")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/operators/jobs/")
    with app.app_context(), unscoped():
        row = db.session.get(OutboxMessage, failed)
        assert row is not None
        assert row.status == OutboxStatus.PENDING.value
        assert row.attempts == 0
    (job,) = rq_queue(redis, Queue.HIGH.value).get_jobs()
    assert job.args == (failed,)
    page = operator_client.get("/operators/jobs/").get_data(as_text=True)
    assert f"Message {failed} will be tried again." in page


def test_retry_of_a_message_that_is_not_failed_changes_nothing(
    app: Flask, operator_client: FlaskClient, redis: Redis
) -> None:
    with app.app_context():
        pending = message(attempts=1)
    operator_client.post(f"/operators/jobs/{pending}/retry")
    with app.app_context(), unscoped():
        row = db.session.get(OutboxMessage, pending)
        assert row is not None
        assert row.attempts == 1
    assert rq_queue(redis, Queue.HIGH.value).count == 0
    assert "nothing to retry" in operator_client.get("/operators/jobs/").get_data(as_text=True)
    assert operator_client.post("/operators/jobs/999999/retry").status_code == 404


@pytest.fixture
def embedded_client(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[FlaskClient]:
    embedded = mail_app(database_url, "", tmp_path, mail_url="dev://", limits_url=redis_url)
    client = embedded.test_client()
    with embedded.app_context():
        login(client, UserFactory(is_operator=True).get_id())
    yield client
    with embedded.app_context():
        db.engine.dispose()


def test_without_redis_the_page_says_jobs_run_in_process(embedded_client: FlaskClient) -> None:
    html = embedded_client.get("/operators/jobs/").get_data(as_text=True)
    assert "No Redis is configured" in html


def test_with_redis_down_the_page_still_answers(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    broken = mail_app(
        database_url, "redis://127.0.0.1:1/0", tmp_path, mail_url="dev://", limits_url=redis_url
    )
    client = broken.test_client()
    try:
        with broken.app_context():
            login(client, UserFactory(is_operator=True).get_id())
        page = client.get("/operators/jobs/")
        assert page.status_code == 200
        assert "Redis does not answer" in page.get_data(as_text=True)
    finally:
        with broken.app_context():
            db.engine.dispose()
