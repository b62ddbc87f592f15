"""The organization's microsite (stub)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from comptoir.tenants.context import install_organization_url_handling

blueprint = Blueprint("storefront_shop", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)


@blueprint.get("/")
def microsite() -> Any:
    return render_template("base.html")
