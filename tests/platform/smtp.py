"""A real SMTP server for tests (aiosmtpd on loopback) and an app that sends mail to it."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from flask import Blueprint, Flask

from comptoir.app import create_app
from comptoir.platform.settings import Settings
from tests.conftest import make_settings

TEMPLATES = Path(__file__).parent / "templates"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class CollectingHandler:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.received.append(
                Received(
                    sender=envelope.mail_from,
                    recipients=list(envelope.rcpt_tos),
                    message=parsed,
                )
            )
        return "250 Message accepted for delivery"


class SMTPServer:
    def __init__(self) -> None:
        self.handler = CollectingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=5"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                break
            time.sleep(0.02)
        return self.received

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def another_app(settings: Settings, *, limits_url: str) -> Flask:
    """A second app in this process, beside the session's ``app``.

    Flask-Limiter's extension object is shared: every ``create_app`` points its storage at that
    app's settings. Keeping it on the test Redis (flushed after each test) leaves the session
    app's rate limits as they were, whatever Redis URL this app is given.
    """
    return create_app(
        replace(settings, extra={**settings.extra, "RATELIMIT_STORAGE_URI": limits_url})
    )


def mail_app(
    database_url: str,
    redis_url: str,
    instance: Path,
    *,
    mail_url: str,
    limits_url: str,
    **overrides: Any,
) -> Flask:
    """An app on the test database whose mail goes to ``mail_url``, with the test templates."""
    settings = replace(make_settings(database_url, redis_url, instance), mail_url=mail_url)
    if overrides:
        settings = replace(settings, **overrides)
    application = another_app(settings, limits_url=limits_url)
    application.register_blueprint(
        Blueprint("test_mail_templates", __name__, template_folder=str(TEMPLATES))
    )
    return application
