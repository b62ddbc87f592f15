"""The checkout and checkout-forms API under ``/api/v1/o/{org}``.

``POST /carts/{id}/checkout`` places the cart's order in one call (steps 2 and 3 of the pages):
customers with the cart's token in ``X-Cart-Token``, staff of the organization with their extras
(``counter_sale``, ``customer_id``, ``checkout_form_id``, staff payment methods). It honours
``Idempotency-Key``; a second checkout of the same cart is ``409``.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _

from comptoir.billing.presenters import order_dict
from comptoir.billing.schemas import OrderSchema
from comptoir.billing.views.api import IDEMPOTENCY_DOC, idempotent
from comptoir.platform.db import db
from comptoir.platform.errors import NotFoundError
from comptoir.platform.i18n import select_locale
from comptoir.storefront import carts, checkout_forms
from comptoir.storefront import checkout as checkout_services
from comptoir.storefront.checkout_schemas import (
    CheckoutFormSchema,
    CheckoutFormUpdateSchema,
    CheckoutQuerySchema,
    CheckoutSchema,
)
from comptoir.storefront.models import Shop
from comptoir.storefront.views.cart_api import CART_TOKEN_HEADER
from comptoir.storefront.visibility import view_shop
from comptoir.tenants.api_support import (
    current_organization,
    organization_api_blueprint,
    page_schema,
    paginate,
    public_endpoint,
    require_permission,
)
from comptoir.tenants.context import current_actor, current_role
from comptoir.tenants.permissions import Permission

blueprint = organization_api_blueprint(
    "checkout",
    __name__,
    "The checkout of a cart, and the organization's checkout forms. Customers check out with "
    "the cart's token in `X-Cart-Token` and may use only the shop's payment methods; staff "
    "(`sell`) may also sell at the counter (`counter_sale`), on behalf of a customer "
    "(`customer_id`), with another form (`checkout_form_id`) and take cash, pay later or other "
    "payments. Checkout forms need `manage_shops`.",
)

_CART_TOKEN_DOC = {
    "in": "header",
    "name": CART_TOKEN_HEADER,
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "The cart's token (from its creation). Staff of the organization omit it.",
}


def _json(status: int, body: Any) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


# --------------------------------------------------------------------------- checkout


@blueprint.route("/carts/<id:cart_id>/checkout", methods=["POST"])
@public_endpoint
@blueprint.doc(parameters=[_CART_TOKEN_DOC, IDEMPOTENCY_DOC])
@blueprint.arguments(CheckoutSchema)
@blueprint.response(201, OrderSchema)
@blueprint.alt_response(
    409,
    description="`out_of_stock`: the cart expired and its units were sold meanwhile; "
    "`conflict`: the cart was checked out already.",
)
def checkout(values: dict[str, Any], cart_id: int) -> Response:
    """Check out a cart

    Checks the answers against the checkout form (the highest priority among the cart's
    articles' forms, else the shop's default), finds or creates the customer by e-mail, turns
    the cart's holds into sales and places the order with its invoice. Answers `201` with the
    order and its `token` (the customer's key to it, in `X-Order-Token`). Cash (staff) takes
    `cash_tendered`; less than the total leaves a balance to pay by another method.
    """
    is_staff = carts.can_manage_carts(current_role())
    cart = carts.reachable_cart(
        cart_id, token=request.headers.get(CART_TOKEN_HEADER), is_staff=is_staff
    )
    shop = db.session.get(Shop, cart.shop_id)
    view = view_shop(shop.slug) if shop is not None else None
    if shop is None or view is None:
        raise NotFoundError(_("This cart does not exist."))
    if not view.unlocked:
        raise carts.ShopLockedError(_("This shop is protected by a password: unlock it first."))

    def run() -> tuple[int, dict[str, Any]]:
        placed = checkout_services.checkout(
            organization=current_organization(),
            actor=current_actor(),
            cart=cart,
            shop=shop,
            is_staff=is_staff,
            request=checkout_services.CheckoutRequest(
                payment_method=values["payment_method"],
                answers=values["answers"],
                checkout_form_id=values["checkout_form_id"],
                customer_id=values["customer_id"],
                counter_sale=values["counter_sale"],
                cash_tendered=values["cash_tendered"],
                reference=values["reference"],
                reader_id=values["reader_id"],
            ),
            ip=request.remote_addr or "",
        )
        answer = OrderSchema().dump(
            order_dict(
                placed.order,
                locale=select_locale(),
                token=placed.token,
                next_action=placed.next_action,
            )
        )
        return 201, answer

    return idempotent(request.get_json(silent=True) or {}, run)


# --------------------------------------------------------------------------- checkout forms


def form_dict(form: checkout_forms.CheckoutForm) -> dict[str, Any]:
    version = checkout_forms.version_of(form)
    return {
        "id": form.id,
        "name": form.name,
        "version": form.current_version,
        "priority": form.priority,
        "field_list": [*checkout_forms.owner_fields(), *version.fields],
    }


@blueprint.route("/checkout-forms", methods=["GET"])
@require_permission(Permission.MANAGE_SHOPS)
@blueprint.query_arguments(CheckoutQuerySchema)
@blueprint.response(200, page_schema(CheckoutFormSchema))
def list_checkout_forms(arguments: dict[str, Any]) -> dict[str, Any]:
    """List checkout forms

    Highest priority first. Each lists its fields in order, the account-owner block first.
    """
    page = paginate(
        checkout_forms.forms_query(), page=arguments["page"], per_page=arguments["per_page"]
    )
    return {**page, "items": [form_dict(form) for form in page["items"]]}


@blueprint.route("/checkout-forms", methods=["POST"])
@require_permission(Permission.MANAGE_SHOPS)
@blueprint.arguments(CheckoutFormSchema)
@blueprint.response(201, CheckoutFormSchema)
def create_checkout_form(values: dict[str, Any]) -> dict[str, Any]:
    """Create a checkout form

    Field keys are unique in the form; `first_name`, `last_name` and `email` belong to the
    account-owner block. Choice fields need options; a consent field needs its text in `help`.
    """
    form = checkout_forms.create_form(
        organization=current_organization(),
        actor=current_actor(),
        name=values["name"],
        priority=values["priority"],
        fields=values["field_list"],
    )
    db.session.commit()
    return form_dict(form)


@blueprint.route("/checkout-forms/<id:form_id>", methods=["GET"])
@require_permission(Permission.MANAGE_SHOPS)
@blueprint.response(200, CheckoutFormSchema)
def get_checkout_form(form_id: int) -> dict[str, Any]:
    """Get a checkout form"""
    return form_dict(checkout_forms.get_form(form_id))


@blueprint.route("/checkout-forms/<id:form_id>", methods=["PATCH"])
@require_permission(Permission.MANAGE_SHOPS)
@blueprint.arguments(CheckoutFormUpdateSchema)
@blueprint.response(200, CheckoutFormSchema)
def update_checkout_form(changes: dict[str, Any], form_id: int) -> dict[str, Any]:
    """Change a checkout form

    New `fields` make a new version; orders keep the version they were placed with.
    """
    form = checkout_forms.update_form(
        organization=current_organization(),
        actor=current_actor(),
        form=checkout_forms.get_form(form_id),
        name=changes.get("name"),
        priority=changes.get("priority"),
        fields=changes.get("field_list"),
    )
    db.session.commit()
    return form_dict(form)
