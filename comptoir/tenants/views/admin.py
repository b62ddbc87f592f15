"""The organization's admin portal: dashboard, staff, customers and API keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from comptoir.tenants import navigation
from comptoir.tenants.context import current_role, install_organization_url_handling
from comptoir.tenants.guards import staff_required
from comptoir.tenants.permissions import Permission

blueprint = Blueprint("tenants_admin", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)


@blueprint.app_template_global("admin_nav")
def admin_nav() -> list[navigation.NavSection]:
    """The sidebar entries the caller's role may see (for every admin page, whatever its domain)."""
    return navigation.visible_sections(current_role())


def role_label(role: Any) -> str:
    from flask_babel import gettext as _

    labels = {"owner": _("owner"), "admin": _("administrator"), "attendant": _("attendant")}
    return labels.get(str(role), str(role))


@blueprint.get("/")
@staff_required(Permission.VIEW_ADMIN)
def dashboard() -> Any:
    return render_template("tenants/admin/dashboard.html", role_label=role_label(current_role()))
