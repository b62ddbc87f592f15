"""The organization's admin portal (stub)."""

from __future__ import annotations

from flask import Blueprint

from comptoir.tenants.context import install_organization_url_handling

blueprint = Blueprint("tenants_admin", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)
