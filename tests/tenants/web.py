"""Page test helpers: sign in through the real form, touch the database between requests.

Requests must run without an outer app context: Flask would reuse it, and ``g`` (the request's
organization, membership and user) would leak from one request into the next.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from comptoir.platform.db import db
from comptoir.platform.mail import MailMessage
from comptoir.platform.tenancy import unscoped
from tests.factories import DEFAULT_PASSWORD


@contextmanager
def database(app: Flask) -> Iterator[None]:
    """An app context across organizations, for set-up and for checking what a request changed."""
    with app.app_context(), unscoped():
        try:
            yield
        finally:
            db.session.remove()


def sign_in(client: FlaskClient, email: str, password: str = DEFAULT_PASSWORD) -> TestResponse:
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def sent_link(app: Flask, to: str, path_prefix: str) -> str:
    """The path of the last link starting with ``path_prefix`` mailed (and sent) to ``to``."""
    with database(app):
        bodies = db.session.execute(
            sa.select(MailMessage.text_body)
            .where(MailMessage.to_address == to, MailMessage.sent_at.is_not(None))
            .order_by(MailMessage.id.desc())
        ).scalars()
        for body in bodies:
            match = re.search(rf"https?://[^/\s]+({re.escape(path_prefix)}\S+)", body)
            if match:
                return match.group(1)
    message = f"no sent mail to {to} with a link to {path_prefix}"
    raise AssertionError(message)
