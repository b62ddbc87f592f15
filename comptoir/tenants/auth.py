"""Flask-Login wiring: which user a session cookie stands for, and where to send strangers."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, request, url_for

from comptoir.platform.db import db
from comptoir.platform.errors import wants_json
from comptoir.platform.extensions import login_manager
from comptoir.tenants.models import User


def load_user(session_id: str) -> User | None:
    """The user behind ``"<user id>:<session version>"`` (see ``User.get_id``).

    A session minted before the user's last password change carries an older version and is
    refused, which signs that browser out.
    """
    user_id, separator, version = session_id.partition(":")
    if not separator or not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user


def unauthorized() -> Any:
    # The JSON API answers for itself; a redirect to an HTML form would only confuse a client.
    if wants_json():
        abort(401)
    return redirect(url_for("tenants_accounts.login", next=request.full_path.rstrip("?")))


def init_auth() -> None:
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(unauthorized)
    login_manager.login_view = "tenants_accounts.login"
    login_manager.session_protection = "basic"
