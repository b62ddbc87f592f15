"""``comptoir worker``: RQ's forking worker runs outbox messages in a child process."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from redis import Redis

from comptoir.platform import outbox
from comptoir.platform.db import db
from comptoir.platform.outbox import OutboxMessage, OutboxStatus, Queue, register_job
from comptoir.platform.queue import rq_queue
from comptoir.platform.tenancy import unscoped
from tests.platform.smtp import mail_app


@register_job("tests.worker.noop", tenant=False, queue=Queue.LOW)
def noop(*, value: int) -> None:
    return None


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    # RQ's worker installs its own SIGINT/SIGTERM handlers in this (pytest's) process.
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def statuses() -> list[str]:
    with unscoped():
        rows = db.session.execute(sa.select(OutboxMessage.status).order_by(OutboxMessage.id))
        return list(rows.scalars())


def test_worker_burst_runs_every_queue_in_forked_children(
    app: Flask, redis: Redis, keep_signal_handlers: None
) -> None:
    with app.app_context():
        outbox.enqueue("tests.worker.noop", value=1)
        outbox.enqueue("tests.worker.noop", queue=Queue.HIGH, value=2)
        db.session.commit()
    assert rq_queue(redis, "low").count == 1
    assert rq_queue(redis, "high").count == 1

    result = app.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert "listening on high, default, low until the queues are empty" in result.output
    assert rq_queue(redis, "low").count == 0
    assert rq_queue(redis, "high").count == 0
    with app.app_context():
        # Done in the children, committed to the database; this process's pool still works.
        assert statuses() == [OutboxStatus.DONE.value, OutboxStatus.DONE.value]


def test_worker_listens_to_the_queues_it_is_given(
    app: Flask, redis: Redis, keep_signal_handlers: None
) -> None:
    with app.app_context():
        outbox.enqueue("tests.worker.noop", value=1)
        outbox.enqueue("tests.worker.noop", queue=Queue.HIGH, value=2)
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["worker", "--burst", "--no-fork", "--queue", "low"])
    assert result.exit_code == 0, result.output
    assert rq_queue(redis, "low").count == 0
    assert rq_queue(redis, "high").count == 1
    with app.app_context():
        assert statuses() == [OutboxStatus.DONE.value, OutboxStatus.PENDING.value]


def test_worker_without_redis_says_why_it_has_nothing_to_do(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    embedded = mail_app(database_url, "", tmp_path, mail_url="dev://", limits_url=redis_url)
    result = embedded.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code == 1
    assert "COMPTOIR_REDIS_URL is not set" in result.output


def test_serve_offers_the_scheduler_switch(app: Flask) -> None:
    from click.testing import CliRunner

    from comptoir.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--scheduler / --no-scheduler" in result.output
