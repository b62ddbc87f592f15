"""The admin portal's sidebar, as data.

Each domain that adds an admin page points an entry at its endpoint with :func:`set_endpoint`
(from its blueprint module); entries without an endpoint show as "coming soon". An entry is shown
only to roles that carry its permission.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l

from comptoir.tenants.models import Role
from comptoir.tenants.permissions import Permission, role_can


@dataclass
class NavItem:
    key: str
    label: Any  # a lazy string, translated when rendered
    endpoint: str | None
    permission: Permission


@dataclass
class NavSection:
    key: str
    label: Any | None
    items: list[NavItem] = field(default_factory=list)


ADMIN_NAV: list[NavSection] = [
    NavSection(
        "overview",
        None,
        [NavItem("dashboard", _l("Overview"), "tenants_admin.dashboard", Permission.VIEW_ADMIN)],
    ),
    NavSection(
        "ecommerce",
        _l("E-Commerce"),
        [
            NavItem(
                "articles", _l("Articles"), "storefront_admin.articles", Permission.MANAGE_CATALOG
            ),
            NavItem("tags", _l("Tags"), "storefront_admin.tags", Permission.MANAGE_CATALOG),
            NavItem("checkout_forms", _l("Checkout forms"), None, Permission.MANAGE_SHOPS),
            NavItem("orders", _l("Orders"), None, Permission.SELL),
            NavItem(
                "customers", _l("Customers"), "tenants_admin.customers", Permission.VIEW_CUSTOMERS
            ),
        ],
    ),
    NavSection(
        "organization",
        None,
        [
            NavItem(
                "shop_settings",
                _l("Shop settings"),
                "storefront_admin.shops",
                Permission.MANAGE_SHOPS,
            ),
            NavItem("stripe", _l("Stripe"), None, Permission.MANAGE_STRIPE),
            NavItem("staff", _l("Staff"), "tenants_admin.staff", Permission.MANAGE_STAFF),
            NavItem(
                "api_keys", _l("API keys"), "tenants_admin.api_keys", Permission.MANAGE_API_KEYS
            ),
            NavItem(
                "settings",
                _l("Settings"),
                "tenants_admin.settings",
                Permission.MANAGE_ORGANIZATION,
            ),
        ],
    ),
]


def find_item(key: str) -> NavItem:
    for section in ADMIN_NAV:
        for item in section.items:
            if item.key == key:
                return item
    raise KeyError(key)


def set_endpoint(key: str, endpoint: str) -> None:
    """Turn a "coming soon" entry into a link to ``endpoint`` (an admin view under /o/<slug>/)."""
    find_item(key).endpoint = endpoint


def visible_sections(role: Role | str | None) -> list[NavSection]:
    """The sections and entries ``role`` may see; empty sections are left out."""
    sections = []
    for section in ADMIN_NAV:
        items = [item for item in section.items if role_can(role, item.permission)]
        if items:
            sections.append(NavSection(section.key, section.label, items))
    return sections
