"""Helpers for the JSON API tests.

Requests run without an outer app context: Flask would reuse it for the request, and ``g`` (the
organization, the key, the membership) would carry over from one request to the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask, session
from flask.testing import FlaskClient
from flask_wtf.csrf import generate_csrf
from hypothesis import reject

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db
from comptoir.platform.tenancy import unscoped
from comptoir.tenants.models import Customer


@contextmanager
def database(app: Flask) -> Iterator[None]:
    """An app context across organizations, for set-up and for checking what requests changed."""
    with app.app_context(), unscoped():
        try:
            yield
        finally:
            db.session.remove()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assume_sent_as_generated(case: Any) -> None:
    """Skip a fuzzed case whose query holds an empty list or object: it is serialised to
    nothing, so an "unknown parameter" the case counts on to be refused is never sent and the
    request the server sees is valid."""
    if any(value in ([], {}) for value in (case.query or {}).values()):
        reject()


def sign_in_session(client: FlaskClient, user_id: str) -> None:
    """What Flask-Login keeps in the session cookie after a successful sign-in."""
    with client.session_transaction() as cookie_session:
        cookie_session["_user_id"] = user_id
        cookie_session["_fresh"] = True


def csrf_token(app: Flask, client: FlaskClient) -> str:
    """A CSRF token valid for ``client``'s session, as a page would render it."""
    with app.test_request_context():
        token = generate_csrf()
        raw = session[app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")]
    with client.session_transaction() as cookie_session:
        cookie_session[app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")] = raw
    return str(token)


def customers_of(app: Flask, organization_id: int) -> list[dict[str, Any]]:
    """Every customer row of an organization, as plain values (ordered by id)."""
    with database(app):
        rows = db.session.execute(
            sa.select(Customer)
            .where(Customer.organization_id == organization_id)
            .order_by(Customer.id)
        ).scalars()
        return [
            {
                "id": row.id,
                "first_name": row.first_name,
                "last_name": row.last_name,
                "email": row.email,
                "email_normalized": row.email_normalized,
                "phone": row.phone,
            }
            for row in rows
        ]


def audit_actions(app: Flask, organization_id: int) -> list[tuple[str, str]]:
    """``(action, actor label)`` of an organization's audit entries, oldest first."""
    with database(app):
        return [
            (entry.action, entry.actor_label)
            for entry in db.session.execute(
                sa.select(AuditLog)
                .where(AuditLog.organization_id == organization_id)
                .order_by(AuditLog.id)
            ).scalars()
        ]
