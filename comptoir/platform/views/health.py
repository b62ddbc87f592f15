"""Probes for load balancers and orchestrators.

``/healthz``: the process is up (no dependency checked, so a database outage does not get every
web process restarted). ``/readyz``: this process can serve: the database answers (and, in
production, not as a role that escapes row-level security) and, when configured, Redis answers.
Both answer over plain HTTP even in production: probes talk to the process directly, not
through the TLS-terminating proxy.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from comptoir.platform.db import db
from comptoir.platform.queue import redis_connection
from comptoir.platform.settings import current_settings

blueprint = Blueprint("health", __name__)

# Seconds a probe waits for Redis before calling it unreachable.
PROBE_TIMEOUT = 2.0
# Read by Flask-Talisman for these views only: no redirect to https.
_PROBE_OPTIONS = {"force_https": False}


@blueprint.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


healthz.talisman_view_options = dict(_PROBE_OPTIONS)  # type: ignore[attr-defined]


def _database_problems() -> list[str]:
    problems: list[str] = []
    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            if connection.dialect.name == "postgresql" and current_settings().is_production:
                privileged = connection.execute(
                    sa.text(
                        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
                    )
                ).scalar()
                if privileged:
                    problems.append(
                        "database: connected as a superuser or a role with BYPASSRLS; "
                        "row-level security does not apply to it. Connect as the app's own role."
                    )
    except sa.exc.SQLAlchemyError as error:
        problems.append(f"database: unreachable ({type(error).__name__})")
    return problems


def _redis_problems() -> list[str]:
    url = current_settings().redis_url
    if not url:
        return []
    connection = redis_connection(url, timeout=PROBE_TIMEOUT)
    try:
        connection.ping()
    except Exception as error:  # noqa: BLE001 - any failure means not ready, reported by name
        return [f"redis: unreachable ({type(error).__name__})"]
    finally:
        connection.close()
    return []


@blueprint.get("/readyz")
def readyz() -> Any:
    problems = _database_problems() + _redis_problems()
    if problems:
        current_app.logger.warning("not ready: %s", "; ".join(problems))
    response = jsonify(status="ok" if not problems else "unavailable", problems=problems)
    response.status_code = 200 if not problems else 503
    return response


readyz.talisman_view_options = dict(_PROBE_OPTIONS)  # type: ignore[attr-defined]
