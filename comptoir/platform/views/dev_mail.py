"""The development mailbox (stub)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("dev_mail", __name__, template_folder="../templates")
