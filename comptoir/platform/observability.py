"""Logs with a request id and the organization, Sentry without customer data."""

from __future__ import annotations

import logging
import secrets
import sys
from typing import Any

import structlog
from flask import Flask, g, request

from comptoir.platform.settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"


def configure_logging(settings: Settings) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_comptoir", False)]
    handler._comptoir = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """No customer data leaves for Sentry: drop bodies, cookies, query strings and user details."""
    request_data = event.get("request")
    if isinstance(request_data, dict):
        for key in ("data", "cookies", "query_string", "env"):
            request_data.pop(key, None)
        headers = request_data.get("headers")
        if isinstance(headers, dict):
            for header in list(headers):
                if header.lower() in {"authorization", "cookie", "x-cart-token", "x-order-token"}:
                    headers[header] = "[removed]"
    event.pop("user", None)
    return event


def init_sentry(settings: Settings) -> None:
    if not settings.sentry_dsn:
        return
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.env.value,
        integrations=[FlaskIntegration()],
        send_default_pii=False,
        before_send=_scrub_event,  # type: ignore[arg-type]
        traces_sample_rate=0.0,
    )


def bind_request_context() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if incoming.isalnum() and len(incoming) <= 64 else secrets.token_hex(8)
    g.request_id = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, path=request.path)


def bind_organization(slug: str) -> None:
    """Called once the organization of the request is known."""
    structlog.contextvars.bind_contextvars(organization=slug)
    try:
        import sentry_sdk

        sentry_sdk.set_tag("organization", slug)
    except ImportError:  # pragma: no cover - sentry-sdk is a dependency
        pass


def init_request_logging(app: Flask) -> None:
    app.before_request(bind_request_context)

    @app.after_request
    def add_request_id(response: Any) -> Any:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        return response
