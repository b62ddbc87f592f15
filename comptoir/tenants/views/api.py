"""The JSON API for the customer database (stub)."""

from __future__ import annotations

from flask_smorest import Blueprint

blueprint = Blueprint("tenants_api", __name__, url_prefix="/api/v1/o/<org>")
