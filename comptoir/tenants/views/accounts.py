"""Sign-in pages for staff and operators (stub: completed by the accounts work)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, url_for
from flask_login import logout_user

blueprint = Blueprint("tenants_accounts", __name__, template_folder="../templates")


@blueprint.get("/")
def home() -> Any:
    return render_template("base.html")


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    return render_template("base.html")


@blueprint.post("/logout")
def logout() -> Any:
    logout_user()
    return redirect(url_for("tenants_accounts.home"))
