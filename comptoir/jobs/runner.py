"""The function RQ calls for every outbox message (``comptoir.platform.queue.RUN_MESSAGE``)."""

from __future__ import annotations

from flask import Flask, has_app_context

from comptoir.platform import outbox
from comptoir.platform.db import db

_app: Flask | None = None


def _worker_app() -> Flask:
    global _app  # noqa: PLW0603 - one app per worker process, built on first job
    if _app is None:
        from comptoir.app import create_app

        _app = create_app()
    return _app


def run_outbox_message(message_id: int) -> str:
    if has_app_context():
        try:
            return outbox.run_message(message_id)
        finally:
            db.session.remove()
    with _worker_app().app_context():
        try:
            return outbox.run_message(message_id)
        finally:
            db.session.remove()
