"""The JSON API of the tenants domain: the organization's customer database
(``/api/v1/o/{org}/customers``) and its settings (``/api/v1/o/{org}/settings``)."""

from __future__ import annotations

from typing import Any

from comptoir.platform.db import db
from comptoir.tenants import organization_settings, services
from comptoir.tenants.api_support import (
    Page,
    current_organization,
    organization_api_blueprint,
    page_schema,
    paginate,
    require_permission,
)
from comptoir.tenants.context import current_actor
from comptoir.tenants.models import Customer
from comptoir.tenants.permissions import Permission
from comptoir.tenants.schemas import (
    CustomerCreateSchema,
    CustomerQuerySchema,
    CustomerSchema,
    CustomerUpdateSchema,
    OrganizationSettingsSchema,
    OrganizationSettingsUpdateSchema,
)

blueprint = organization_api_blueprint(
    "customers",
    __name__,
    "The organization's customer database. Reading needs the `view_customers` permission, "
    "writing `manage_customers` (every staff role has both).",
)


@blueprint.route("/customers", methods=["GET"])
@require_permission(Permission.VIEW_CUSTOMERS)
@blueprint.query_arguments(CustomerQuerySchema)
@blueprint.response(200, page_schema(CustomerSchema))
def list_customers(arguments: dict[str, Any]) -> Page:
    """List customers

    Sorted by last name, then first name; `q` keeps those whose name, e-mail address or phone
    number contains every word of it.
    """
    query = services.search_customers_query(arguments["q"])
    return paginate(query, page=arguments["page"], per_page=arguments["per_page"])


@blueprint.route("/customers", methods=["POST"])
@require_permission(Permission.MANAGE_CUSTOMERS)
@blueprint.arguments(CustomerCreateSchema)
@blueprint.response(201, CustomerSchema)
def create_customer(values: dict[str, Any]) -> Customer:
    """Create a customer

    The e-mail address must be valid and not used by another customer of the organization
    (compared without regard to case).
    """
    customer = services.create_customer(
        organization=current_organization(), actor=current_actor(), **values
    )
    db.session.commit()
    return customer


@blueprint.route("/customers/<id:customer_id>", methods=["GET"])
@require_permission(Permission.VIEW_CUSTOMERS)
@blueprint.response(200, CustomerSchema)
def get_customer(customer_id: int) -> Customer:
    """Get a customer"""
    return services.get_customer(customer_id)


@blueprint.route("/customers/<id:customer_id>", methods=["PATCH"])
@require_permission(Permission.MANAGE_CUSTOMERS)
@blueprint.arguments(CustomerUpdateSchema)
@blueprint.response(200, CustomerSchema)
def update_customer(changes: dict[str, Any], customer_id: int) -> Customer:
    """Change a customer

    Only the fields sent change; the answer is the whole customer.
    """
    customer = services.update_customer(
        organization=current_organization(),
        actor=current_actor(),
        customer=services.get_customer(customer_id),
        changes=changes,
    )
    db.session.commit()
    return customer


settings_blueprint = organization_api_blueprint(
    "settings",
    __name__,
    "The organization's settings. Every staff role reads them; changing them needs the "
    "`manage_organization` permission (owners and administrators).",
)


@settings_blueprint.route("/settings", methods=["GET"])
@require_permission(Permission.VIEW_ADMIN)
@settings_blueprint.response(200, OrganizationSettingsSchema)
def get_settings() -> dict[str, Any]:
    """Get the organization's settings"""
    return organization_settings.settings_of(current_organization())


@settings_blueprint.route("/settings", methods=["PATCH"])
@require_permission(Permission.MANAGE_ORGANIZATION)
@settings_blueprint.arguments(OrganizationSettingsUpdateSchema)
@settings_blueprint.response(200, OrganizationSettingsSchema)
def update_settings(changes: dict[str, Any]) -> dict[str, Any]:
    """Change the organization's settings

    Only the fields sent change; the answer is every setting. Each change is audited.
    """
    organization = current_organization()
    organization_settings.update_settings(
        organization=organization, actor=current_actor(), changes=changes
    )
    db.session.commit()
    return organization_settings.settings_of(organization)
