"""Errors: one shape for the JSON API, friendly pages for people, and no 500 for bad input.

API errors are ``{"error": {"code", "message", "fields"}}`` with the right 4xx status
(``../shared/API.md``). Services raise :class:`DomainError` subclasses; the same exception becomes a
form error in a page or a JSON error in the API.
"""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal a person can understand: bad input, a forbidden action, a conflict."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class ValidationError(DomainError):
    status = 422
    code = "validation_error"


class NotFoundError(DomainError):
    status = 404
    code = "not_found"


class ForbiddenError(DomainError):
    status = 403
    code = "forbidden"


class ConflictError(DomainError):
    status = 409
    code = "conflict"


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class ErrorDetailSchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "snake_case, for programs"})
    message = ma.fields.String(required=True, metadata={"description": "for people"})
    field_messages = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        required=True,
        data_key="fields",
        metadata={"description": "messages by input field name; empty when none applies"},
    )


class ErrorSchema(ma.Schema):
    """The body of every JSON API error (the OpenAPI document's error responses)."""

    error = ma.fields.Nested(ErrorDetailSchema, required=True)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/webhooks/")


def json_error(
    status: int, code: str, message: str, fields: dict[str, Any] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    response.status_code = status
    return response


def _flatten_messages(messages: Any, prefix: str, into: dict[str, list[str]]) -> None:
    """Nested schemas say ``{"lines": {0: {"quantity": [..]}}}``: that is ``lines.0.quantity``."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            _flatten_messages(value, f"{prefix}.{key}" if prefix else str(key), into)
    elif isinstance(messages, list | tuple):
        for message in messages:
            if isinstance(message, dict):
                _flatten_messages(message, prefix, into)
            else:
                into.setdefault(prefix or "_schema", []).append(str(message))
    else:
        into.setdefault(prefix or "_schema", []).append(str(messages))


def _fields_from_webargs(error: HTTPException) -> dict[str, Any]:
    """webargs puts ``{"json": {"field": [..]}}`` on 422s; flatten the location away."""
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or {}
    fields: dict[str, list[str]] = {}
    for location_messages in messages.values():
        if isinstance(location_messages, dict):
            _flatten_messages(location_messages, "", fields)
    return fields


def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("errors/error.html", status=status, title=title, message=message), status


def _json_http_error(error: HTTPException, status: int) -> Response:
    code = _STATUS_CODES.get(status, "error")
    if status == 422:
        response = json_error(
            status, code, _("Some fields are not valid."), _fields_from_webargs(error)
        )
    elif status == 429:
        response = json_error(status, code, _("Too many requests; try again in a moment."))
    elif status == 400 and (getattr(error, "data", None) or {}).get("messages"):
        # webargs answers a body it cannot decode with a 400 carrying its own messages.
        response = json_error(status, code, _("The request body is not valid JSON."))
    else:
        response = json_error(status, code, error.description or error.name)
    # Keep what the exception says about the protocol (Allow on 405, WWW-Authenticate on 401,
    # Retry-After on 429); only the body is ours.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers.add(name, value)
    if status == 401 and "WWW-Authenticate" not in response.headers:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def handle_http_exception(error: HTTPException) -> Any:
    status = error.code or 500
    if wants_json():
        return _json_http_error(error, status)
    titles = {
        404: _("Page not found"),
        403: _("Access refused"),
        429: _("Too many attempts"),
    }
    messages = {
        404: _("This page does not exist or is not available to you."),
        429: _("Too many attempts in a short time. Wait a minute and try again."),
    }
    return _error_page(
        status, titles.get(status, error.name), messages.get(status, error.description or "")
    )


def handle_domain_error(error: DomainError) -> Any:
    if wants_json():
        return json_error(error.status, error.code, error.message, error.fields)
    return _error_page(error.status, error.message, "")


def handle_csrf_error(error: CSRFError) -> Any:
    message = _("The form expired or was sent from elsewhere. Reload the page and try again.")
    if wants_json():
        return json_error(400, "csrf_failed", message)
    return _error_page(400, _("Form expired"), message)


def handle_unexpected(error: Exception) -> Any:
    logger.error("unhandled error", exc_info=error)
    message = _("Something went wrong on our side. The team has been told.")
    if wants_json():
        return json_error(500, "internal_error", message)
    return _error_page(500, _("Unexpected error"), message)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DomainError, handle_domain_error)
    if not app.testing:
        # In tests an unexpected error must fail the test loudly, not become a page.
        app.register_error_handler(Exception, handle_unexpected)
