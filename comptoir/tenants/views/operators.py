"""The operator console (stub)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("tenants_operators", __name__, template_folder="../templates")
