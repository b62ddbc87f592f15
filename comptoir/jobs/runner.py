"""The functions RQ calls: every outbox message (``comptoir.platform.queue.RUN_MESSAGE``) and
every scheduled entry sent to a queue (``comptoir.jobs.scheduler.RUN_SCHEDULED_ENTRY``).

``comptoir worker`` runs them inside its app context. A bare ``rq worker`` has none: the first
job then builds the app from the environment, once per process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, has_app_context

from comptoir.platform import outbox
from comptoir.platform.db import db
from comptoir.platform.observability import job_context

_app: Flask | None = None


def _worker_app() -> Flask:
    global _app  # noqa: PLW0603 - one app per worker process, built on first job
    if _app is None:
        from comptoir.app import create_app

        _app = create_app()
    return _app


@contextmanager
def _app_context() -> Iterator[None]:
    if has_app_context():
        try:
            yield
        finally:
            db.session.remove()
        return
    with _worker_app().app_context():
        try:
            yield
        finally:
            db.session.remove()


def run_outbox_message(message_id: int) -> str:
    with _app_context():
        return outbox.run_message(message_id)


def run_scheduled_entry(name: str) -> str:
    from comptoir.jobs.schedules import schedule_entry

    entry = schedule_entry(name)
    with _app_context(), job_context(job=f"schedule:{name}"):
        return _commit_once(entry.function)


def _commit_once(function: Callable[[], Any]) -> str:
    try:
        outcome = function()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return "" if outcome is None else str(outcome)
