"""The transactional outbox, end to end: PostgreSQL rows, RQ in Redis, a real SMTP server.

An e-mail owed by a transaction that rolls back never leaves; one that commits leaves exactly
once, even when Redis forgets it, when its job runs twice, or twice at the same moment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from redis import Redis
from rq.job import Job

from comptoir.platform import outbox
from comptoir.platform.db import db, utcnow
from comptoir.platform.mail import MailMessage, queue_mail
from comptoir.platform.outbox import (
    MAX_ATTEMPTS,
    RELAY_GRACE,
    OutboxMessage,
    OutboxStatus,
    Queue,
    register_job,
    relay_pending,
    run_message,
)
from comptoir.platform.queue import QUEUE_NAMES, RQDispatcher, rq_queue, rq_queues
from comptoir.platform.tenancy import unscoped
from tests.conftest import run_jobs
from tests.factories import UserFactory
from tests.platform.smtp import SMTPServer, mail_app

RECEIPT = {"name": "Ana", "what": "swimming lessons"}

# --------------------------------------------------------------------------- test-only jobs

slow_runs: list[int] = []
finished: dict[str, float] = {}
flaky = {"fail": True, "calls": 0}


@register_job("tests.outbox.slow", tenant=False)
def slow_job(*, token: int) -> None:
    time.sleep(0.3)
    slow_runs.append(token)
    finished["job"] = time.monotonic()


@register_job("tests.outbox.flaky", tenant=False, queue=Queue.LOW)
def flaky_job() -> None:
    flaky["calls"] += 1
    if flaky["fail"]:
        message = "flaky job failed"
        raise RuntimeError(message)


# --------------------------------------------------------------------------- fixtures


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
    return mail_app(
        database_url,
        redis_url,
        tmp_path_factory.mktemp("outbox"),
        mail_url=smtp_server.url,
        limits_url=redis_url,
    )


@pytest.fixture(autouse=True)
def _fresh_state(smtp_server: SMTPServer) -> None:
    smtp_server.clear()
    slow_runs.clear()
    flaky.update(fail=True, calls=0)


def queued_jobs(redis: Redis) -> int:
    return sum(queue.count for queue in rq_queues(redis))


def owe_receipt(to: str = "ana@example.org") -> tuple[int, int]:
    mail = queue_mail(to=to, template="receipt", context=RECEIPT, locale="en")
    message = db.session.execute(
        sa.select(OutboxMessage).where(OutboxMessage.arguments["mail_id"].as_integer() == mail.id)
    ).scalar_one()
    return mail.id, message.id


def outbox_row(message_id: int) -> OutboxMessage:
    with unscoped():
        row = db.session.get(OutboxMessage, message_id, populate_existing=True)
    assert row is not None
    return row


# --------------------------------------------------------------------------- the guarantees


def test_mail_of_a_rolled_back_transaction_is_never_sent(
    smtp_app: Flask, smtp_server: SMTPServer, redis: Redis, redis_url: str
) -> None:
    with smtp_app.app_context():
        owe_receipt()
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(MailMessage)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0
        assert queued_jobs(redis) == 0
        assert relay_pending(now=utcnow() + timedelta(days=1)) == 0
    assert run_jobs(smtp_app, redis_url) == 0
    time.sleep(0.2)
    assert smtp_server.received == []


def test_committed_mail_is_sent_once_even_when_redis_is_flushed(
    smtp_app: Flask, smtp_server: SMTPServer, redis: Redis, redis_url: str
) -> None:
    with smtp_app.app_context():
        mail_id, message_id = owe_receipt()
        db.session.commit()
        # Relayed after the commit, to the e-mail queue.
        assert rq_queue(redis, Queue.HIGH.value).count == 1

        redis.flushdb()
        assert queued_jobs(redis) == 0
        # Within the grace period the sweep leaves the message alone ...
        assert relay_pending() == 0
        # ... after it, the message is relayed again.
        assert relay_pending(now=utcnow() + RELAY_GRACE + timedelta(seconds=1)) == 1
        assert rq_queue(redis, Queue.HIGH.value).count == 1

    assert run_jobs(smtp_app, redis_url) == 1
    received = smtp_server.wait_for(1)
    assert len(received) == 1
    assert received[0].recipients == ["ana@example.org"]

    with smtp_app.app_context():
        row = outbox_row(message_id)
        assert row.status == OutboxStatus.DONE.value
        assert row.attempts == 1
        assert row.done_at is not None
        mail = db.session.get(MailMessage, mail_id)
        assert mail is not None
        assert mail.sent_at is not None
        assert mail.transport == "smtp"
        assert received[0].message["Message-ID"] == mail.message_id
        # Done messages are never relayed again.
        assert relay_pending(now=utcnow() + timedelta(days=1)) == 0
    assert run_jobs(smtp_app, redis_url) == 0
    assert len(smtp_server.received) == 1


def test_a_job_run_twice_sends_once(
    smtp_app: Flask, smtp_server: SMTPServer, redis: Redis, redis_url: str
) -> None:
    with smtp_app.app_context():
        _mail_id, message_id = owe_receipt()
        db.session.commit()
    # The same message delivered twice by RQ (e.g. relayed by the sweep while still queued).
    RQDispatcher(redis_url)(message_id, Queue.HIGH.value)
    assert rq_queue(redis, Queue.HIGH.value).count == 2
    assert run_jobs(smtp_app, redis_url) == 2
    assert len(smtp_server.wait_for(1)) == 1
    with smtp_app.app_context():
        assert run_message(message_id) == "skipped"
        assert outbox_row(message_id).attempts == 1
    time.sleep(0.2)
    assert len(smtp_server.received) == 1


def _run_in_thread(
    application: Flask, message_id: int, results: list[str], start: threading.Barrier
) -> None:
    with application.app_context():
        start.wait(timeout=5)
        try:
            outcome = run_message(message_id)
            finished[outcome] = time.monotonic()
            results.append(outcome)
        finally:
            db.session.remove()


def test_two_concurrent_runs_of_one_message_send_once(
    smtp_app: Flask, smtp_server: SMTPServer, redis: Redis
) -> None:
    with smtp_app.app_context():
        _mail_id, message_id = owe_receipt()
        db.session.commit()
    redis.flushdb()  # only the two threads below run it
    results: list[str] = []
    start = threading.Barrier(2)
    threads = [
        threading.Thread(target=_run_in_thread, args=(smtp_app, message_id, results, start))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert sorted(results) == ["done", "skipped"]
    assert len(smtp_server.wait_for(1)) == 1
    time.sleep(0.2)
    assert len(smtp_server.received) == 1


def test_the_row_lock_makes_the_second_concurrent_run_wait_then_skip(
    app: Flask, redis: Redis
) -> None:
    with app.app_context():
        message_id = outbox.enqueue("tests.outbox.slow", token=7).id
        db.session.commit()
    redis.flushdb()
    results: list[str] = []
    start = threading.Barrier(2)
    threads = [
        threading.Thread(target=_run_in_thread, args=(app, message_id, results, start))
        for _ in range(2)
    ]
    finished.clear()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert sorted(results) == ["done", "skipped"]
    assert slow_runs == [7]
    # The second run waited for the first one's transaction, then saw the message done; it did
    # not pass over the locked row while the job was still running.
    assert finished["skipped"] >= finished["job"]


def _release_scheduled_retries(redis: Redis) -> int:
    """Move RQ retries waiting for their backoff delay back to their queue, now."""
    moved = 0
    for queue in rq_queues(redis):
        registry = queue.scheduled_job_registry
        for job_id in registry.get_job_ids():
            job = Job.fetch(job_id, connection=redis)
            registry.remove(job)
            queue.enqueue_job(job)
            moved += 1
    return moved


def login(client: object, user: object) -> None:
    with client.session_transaction() as session:  # type: ignore[attr-defined]
        session["_user_id"] = user.get_id()  # type: ignore[attr-defined]
        session["_fresh"] = True


def test_failing_job_retries_then_fails_then_operator_retries_it(
    app: Flask, redis: Redis, redis_url: str
) -> None:
    with app.app_context():
        message_id = outbox.enqueue("tests.outbox.flaky").id
        db.session.commit()
    assert rq_queue(redis, Queue.LOW.value).count == 1

    # First attempt: the error is recorded, RQ schedules a retry after the first backoff delay,
    # and the sweep will not step in before that retry is due.
    before = utcnow()
    run_jobs(app, redis_url)
    with app.app_context():
        row = outbox_row(message_id)
        assert row.status == OutboxStatus.PENDING.value
        assert row.attempts == 1
        assert row.last_error == "RuntimeError: flaky job failed"
        assert row.relayed_at is not None
        assert row.relayed_at >= before + timedelta(seconds=outbox.RETRY_DELAYS[0])
        assert relay_pending() == 0
    scheduled = rq_queue(redis, Queue.LOW.value).scheduled_job_registry
    assert scheduled.count == 1
    assert Job.fetch(scheduled.get_job_ids()[0], connection=redis).retries_left == MAX_ATTEMPTS - 2

    for _ in range(MAX_ATTEMPTS - 1):
        assert _release_scheduled_retries(redis) == 1
        run_jobs(app, redis_url)
    assert flaky["calls"] == MAX_ATTEMPTS
    with app.app_context():
        row = outbox_row(message_id)
        assert row.status == OutboxStatus.FAILED.value
        assert row.attempts == MAX_ATTEMPTS
        # Failed messages wait for an operator: the sweep leaves them alone.
        assert relay_pending(now=utcnow() + timedelta(days=1)) == 0
    assert rq_queue(redis, Queue.LOW.value).failed_job_registry.count == 1
    assert _release_scheduled_retries(redis) == 0

    # The operator console shows it, with its error, and retries it.
    with app.app_context():
        operator = UserFactory(is_operator=True)
        client = app.test_client()
        login(client, operator)
    page = client.get("/operators/jobs/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "tests.outbox.flaky" in html
    assert "RuntimeError: flaky job failed" in html
    assert f"{MAX_ATTEMPTS} / {MAX_ATTEMPTS}" in html
    assert f'action="/operators/jobs/{message_id}/retry"' in html

    flaky["fail"] = False
    response = client.post(f"/operators/jobs/{message_id}/retry")
    assert response.status_code == 302
    with app.app_context():
        row = outbox_row(message_id)
        assert row.status == OutboxStatus.PENDING.value
        assert row.attempts == 0
    assert rq_queue(redis, Queue.LOW.value).count == 1
    run_jobs(app, redis_url)
    with app.app_context():
        row = outbox_row(message_id)
        assert row.status == OutboxStatus.DONE.value
        assert row.attempts == 1
    assert flaky["calls"] == MAX_ATTEMPTS + 1


def test_retry_failed_refuses_messages_that_are_not_failed(app: Flask) -> None:
    with app.app_context():
        message_id = outbox.enqueue("tests.outbox.slow", token=1).id
        db.session.commit()
        assert outbox.retry_failed(message_id) is False
        assert outbox.retry_failed(message_id + 1000) is False


def test_unknown_job_name_is_refused_at_enqueue(app: Flask) -> None:
    with app.app_context(), pytest.raises(LookupError):
        outbox.enqueue("tests.outbox.no_such_job")


def test_a_released_savepoint_waits_for_the_real_commit(app: Flask, redis: Redis) -> None:
    with app.app_context():
        with db.session.begin_nested():
            outbox.enqueue("tests.outbox.slow", token=1)
        # Releasing the savepoint is not a commit: nothing is relayed yet.
        assert queued_jobs(redis) == 0
        db.session.rollback()
        assert queued_jobs(redis) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0

        kept = outbox.enqueue("tests.outbox.slow", token=2).id
        savepoint = db.session.begin_nested()
        outbox.enqueue("tests.outbox.slow", token=3)
        savepoint.rollback()
        db.session.commit()
    # The committed message is relayed; the rolled-back one has no row (a relay of it is a no-op).
    default = rq_queue(redis, Queue.DEFAULT.value)
    assert default.count >= 1
    assert any(job.args == (kept,) for job in default.get_jobs())


# --------------------------------------------------------------------------- embedded default


@pytest.fixture
def inprocess_app(
    app: Flask, database_url: str, redis_url: str, smtp_server: SMTPServer, tmp_path: Path
) -> Iterator[Flask]:
    """No Redis URL: jobs run in a thread of this process after each commit."""
    application = mail_app(
        database_url, "", tmp_path, mail_url=smtp_server.url, limits_url=redis_url
    )
    yield application
    application.extensions[outbox.DISPATCHER_EXTENSION].drain()
    with application.app_context():
        db.engine.dispose()


def test_without_redis_jobs_run_in_process_after_commit(
    inprocess_app: Flask, smtp_server: SMTPServer
) -> None:
    dispatcher = inprocess_app.extensions[outbox.DISPATCHER_EXTENSION]
    with inprocess_app.app_context():
        _mail_id, message_id = owe_receipt()
        db.session.rollback()
        dispatcher.drain()
        assert smtp_server.received == []

        _mail_id, message_id = owe_receipt()
        db.session.commit()
        dispatcher.drain()
        assert len(smtp_server.wait_for(1)) == 1
        assert outbox_row(message_id).status == OutboxStatus.DONE.value


def test_without_redis_the_sweep_retries_a_failed_job_after_its_delay(
    inprocess_app: Flask,
) -> None:
    dispatcher = inprocess_app.extensions[outbox.DISPATCHER_EXTENSION]
    with inprocess_app.app_context():
        message_id = outbox.enqueue("tests.outbox.flaky").id
        db.session.commit()
        dispatcher.drain()
        row = outbox_row(message_id)
        assert row.attempts == 1
        assert row.status == OutboxStatus.PENDING.value
        due = row.relayed_at
        assert due is not None
        assert relay_pending(now=due) == 0

        flaky["fail"] = False
        assert relay_pending(now=due + RELAY_GRACE + timedelta(seconds=1)) == 1
        dispatcher.drain()
        assert outbox_row(message_id).status == OutboxStatus.DONE.value
    assert flaky["calls"] == 2


def test_queue_names_are_in_priority_order() -> None:
    assert QUEUE_NAMES == ("high", "default", "low")
