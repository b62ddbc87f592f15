"""Who may do what: the one table of role permissions, and the checks that read it."""

from __future__ import annotations

from enum import StrEnum

from flask_babel import lazy_gettext as _l

from comptoir.platform.errors import ForbiddenError
from comptoir.tenants.models import Role

# Shown to people (pages, e-mails); lazy so that each renders in its reader's language.
ROLE_LABELS = {
    Role.OWNER: _l("Owner"),
    Role.ADMIN: _l("Administrator"),
    Role.ATTENDANT: _l("Attendant"),
}


class Permission(StrEnum):
    VIEW_ADMIN = "view_admin"
    MANAGE_STAFF = "manage_staff"
    # The organization's own settings (what attendants may do, for one).
    MANAGE_ORGANIZATION = "manage_organization"
    VIEW_CUSTOMERS = "view_customers"
    MANAGE_CUSTOMERS = "manage_customers"
    MANAGE_API_KEYS = "manage_api_keys"
    MANAGE_CATALOG = "manage_catalog"
    MANAGE_SHOPS = "manage_shops"
    SELL = "sell"
    OVERRIDE_PRICES = "override_prices"
    MANAGE_ORDERS = "manage_orders"
    REFUND = "refund"
    MANAGE_STRIPE = "manage_stripe"
    VIEW_AUDIT = "view_audit"


_ATTENDANT = frozenset(
    {Permission.VIEW_ADMIN, Permission.SELL, Permission.VIEW_CUSTOMERS, Permission.MANAGE_CUSTOMERS}
)
_ADMIN = frozenset(Permission) - {Permission.MANAGE_STRIPE}
_OWNER = frozenset(Permission)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: _OWNER,
    Role.ADMIN: _ADMIN,
    Role.ATTENDANT: _ATTENDANT,
}


def role_can(role: Role | str | None, permission: Permission) -> bool:
    if role is None:
        return False
    return permission in ROLE_PERMISSIONS.get(Role(role), frozenset())


def ensure(role: Role | str | None, permission: Permission) -> None:
    """Raise :class:`ForbiddenError` unless the role carries the permission."""
    if not role_can(role, permission):
        from flask_babel import gettext as _

        raise ForbiddenError(_("Your role does not allow this action."))


def grantable_roles(role: Role | str | None) -> list[Role]:
    """Roles a staff member may give: only owners make owners."""
    if role is None:
        return []
    if Role(role) is Role.OWNER:
        return [Role.OWNER, Role.ADMIN, Role.ATTENDANT]
    if Role(role) is Role.ADMIN:
        return [Role.ADMIN, Role.ATTENDANT]
    return []
