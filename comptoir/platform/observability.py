"""Logs with a request id and the organization, Sentry without customer data.

Every log line (ours, the libraries', RQ's) goes through one structlog formatter on the root
logger: JSON in production (``COMPTOIR_LOG_JSON``), readable key=value lines elsewhere. A request
binds ``request_id`` (taken from ``X-Request-ID`` when the proxy sends a sane one, echoed back)
and, once known, ``organization``; a job binds ``job``, ``outbox_message`` and ``organization_id``.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from flask import Flask, g, request

from comptoir.platform.settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from proxies and load balancers: hex, UUIDs, dotted or dashed tokens. Anything else is
# replaced, so a client cannot inject text into the logs.
_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")

request_logger = structlog.get_logger("comptoir.request")


def configure_logging(settings: Settings) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_comptoir", False)]
    handler._comptoir = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def comptoir_log_handler() -> logging.Handler | None:
    """The root handler :func:`configure_logging` installed (tests point its stream elsewhere)."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_comptoir", False):
            return handler
    return None


# --------------------------------------------------------------------------- Sentry

_REMOVED = "[removed]"
_SECRET_HEADERS = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-cart-token",
    "x-order-token",
    "x-shop-access",
    "x-csrftoken",
    "stripe-signature",
}


def _without_query(url: Any) -> Any:
    if not isinstance(url, str) or ("?" not in url and "#" not in url):
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """No customer data leaves for Sentry: drop bodies, cookies, query strings and user details.

    What stays is what finds the bug: the path, the method, the stack (without local variables,
    see :func:`init_sentry`), the organization tag and the request id.
    """
    request_data = event.get("request")
    if isinstance(request_data, dict):
        for key in ("data", "cookies", "query_string", "env"):
            request_data.pop(key, None)
        if "url" in request_data:
            request_data["url"] = _without_query(request_data["url"])
        headers = request_data.get("headers")
        if isinstance(headers, dict):
            for header in list(headers):
                if header.lower() in _SECRET_HEADERS:
                    headers[header] = _REMOVED
    event.pop("user", None)
    breadcrumbs = event.get("breadcrumbs")
    values = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else breadcrumbs
    if isinstance(values, list):
        for crumb in values:
            if not isinstance(crumb, dict):
                continue
            data = crumb.get("data")
            if isinstance(data, dict):
                # HTTP breadcrumbs carry URLs with query strings (tokens, e-mails).
                for key in ("url", "http.query", "http.fragment"):
                    if key in data:
                        data[key] = _without_query(data[key]) if key == "url" else _REMOVED
    return event


def init_sentry(settings: Settings) -> None:
    """Report errors to Sentry when ``COMPTOIR_SENTRY_DSN`` is set; do nothing otherwise."""
    if not settings.sentry_dsn:
        return
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.env.value,
        integrations=[FlaskIntegration()],
        # Collect nothing about people: frame locals hold customers' names, e-mails and carts;
        # bodies, cookies and query strings hold the same and tokens. _scrub_event double-checks.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "denylist"}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "database_query_data": False,
            "queues": False,
            "stack_frame_variables": False,
            "gen_ai": {"inputs": False, "outputs": False},
        },
        before_send=_scrub_event,  # type: ignore[arg-type]
        traces_sample_rate=0.0,
    )


def _set_sentry_tag(key: str, value: str) -> None:
    try:
        import sentry_sdk
    except ImportError:  # pragma: no cover - sentry-sdk is a dependency
        return
    sentry_sdk.set_tag(key, value)


# --------------------------------------------------------------------------- requests


def _request_id_from(header: str) -> str:
    if _REQUEST_ID_PATTERN.fullmatch(header):
        return header
    return secrets.token_hex(8)


def bind_request_context() -> None:
    request_id = _request_id_from(request.headers.get(REQUEST_ID_HEADER, ""))
    g.request_id = request_id
    g.request_started = time.perf_counter()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, path=request.path)
    _set_sentry_tag("request_id", request_id)


def bind_organization(slug: str) -> None:
    """Called once the organization of the request is known."""
    structlog.contextvars.bind_contextvars(organization=slug)
    _set_sentry_tag("organization", slug)


def current_request_id() -> str | None:
    request_id: str | None = g.get("request_id")
    return request_id


def _bind_first(endpoint: str | None, values: dict[str, Any] | None) -> None:
    bind_request_context()


def init_request_logging(app: Flask) -> None:
    # The app's URL value preprocessors run before everything else of a request, blueprints'
    # preprocessors included (which is where the organization is resolved and bound).
    app.url_value_preprocessor(_bind_first)

    @app.after_request
    def log_request(response: Any) -> Any:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        started = g.get("request_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 1) if started else None
        # The path without its query string: tokens and e-mails travel in query strings.
        request_logger.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=duration_ms,
        )
        return response

    @app.teardown_request
    def forget_request_context(error: BaseException | None) -> None:
        # Worker threads serve many requests; the next one must not inherit this one's ids.
        structlog.contextvars.clear_contextvars()


# --------------------------------------------------------------------------- jobs


@contextmanager
def job_context(
    *, job: str, message_id: int | None = None, organization_id: int | None = None
) -> Iterator[None]:
    """Bind a job's identity to the logs (and Sentry) while it runs."""
    values: dict[str, Any] = {"job": job}
    if message_id is not None:
        values["outbox_message"] = message_id
    if organization_id is not None:
        values["organization_id"] = organization_id
    try:
        import sentry_sdk
    except ImportError:  # pragma: no cover - sentry-sdk is a dependency
        sentry_sdk = None  # type: ignore[assignment]
    with structlog.contextvars.bound_contextvars(**values):
        if sentry_sdk is None:
            yield
            return
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("job", job)
            if organization_id is not None:
                scope.set_tag("organization_id", str(organization_id))
            yield
