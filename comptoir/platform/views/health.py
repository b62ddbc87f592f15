"""Probes for load balancers: ``/healthz`` (process up), ``/readyz`` (able to serve)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from comptoir.platform.db import db
from comptoir.platform.queue import redis_connection
from comptoir.platform.settings import current_settings

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


def _database_problems() -> list[str]:
    problems: list[str] = []
    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            if connection.dialect.name == "postgresql":
                privileged = connection.execute(
                    sa.text(
                        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
                    )
                ).scalar()
                if privileged and current_settings().is_production:
                    problems.append(
                        "database: connected as a superuser or a role with BYPASSRLS; "
                        "row-level security does not apply to it. Connect as the app's own role."
                    )
    except sa.exc.SQLAlchemyError as error:
        problems.append(f"database: {type(error).__name__}")
    return problems


def _redis_problems() -> list[str]:
    url = current_settings().redis_url
    if not url:
        return []
    try:
        redis_connection(url).ping()
    except Exception as error:  # noqa: BLE001 - any failure means not ready, reported by name
        return [f"redis: {type(error).__name__}"]
    return []


@blueprint.get("/readyz")
def readyz() -> Any:
    problems = _database_problems() + _redis_problems()
    current_app.logger.debug("readiness problems: %s", problems)
    response = jsonify(status="ok" if not problems else "unavailable", problems=problems)
    response.status_code = 200 if not problems else 503
    return response
