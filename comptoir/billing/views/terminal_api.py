"""The readers API under ``/api/v1/o/{org}``: Stripe Terminal readers of the organization.

Every seller lists them (to choose one for a payment: ``POST /orders/{id}/payments`` with
``method: "terminal"`` and ``reader_id``); owners and admins register, rename and remove them
(``manage_shops``). A reader of another organization is ``404``.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa

from comptoir.billing import stripe_terminal
from comptoir.billing.stripe_gateway import current_gateway
from comptoir.billing.stripe_models import TerminalReader
from comptoir.platform.db import db
from comptoir.tenants.api_support import (
    ApiSchema,
    PaginationQuerySchema,
    Text,
    current_organization,
    organization_api_blueprint,
    page_schema,
    paginate,
    require_permission,
)
from comptoir.tenants.context import current_actor
from comptoir.tenants.permissions import Permission

blueprint = organization_api_blueprint(
    "readers",
    __name__,
    "Stripe Terminal readers of the organization, registered on its connected Stripe account. "
    "Sellers list them and take payments on them (`POST /orders/{id}/payments` with "
    '`{"method": "terminal", "reader_id": …}`); registering, renaming and removing need '
    "`manage_shops`. Registering needs Stripe connected with charges enabled.",
)


class ReaderSchema(ApiSchema):
    id = ma.fields.Integer(dump_only=True, required=True)
    label = Text(
        required=True,
        blank=False,
        validate=ma.validate.Length(max=stripe_terminal.MAX_LABEL),
        metadata={"description": "Where the reader is, for example “Front desk”."},
    )
    registration_code = Text(
        load_only=True,
        required=True,
        blank=False,
        validate=ma.validate.Length(max=stripe_terminal.MAX_CODE),
        metadata={
            "description": "The pairing code the reader shows (Settings, Generate pairing "
            "code). With simulated payments, `simulated-wpe` registers a simulated reader."
        },
    )
    status = ma.fields.String(
        dump_only=True,
        required=True,
        metadata={"description": "`online` or `offline` as Stripe last said; empty if unknown."},
    )
    stripe_id = ma.fields.String(
        dump_only=True, required=True, metadata={"description": "Stripe's id (`tmr_…`)."}
    )
    device_type = ma.fields.String(dump_only=True, required=True)
    serial_number = ma.fields.String(dump_only=True, required=True)
    busy = ma.fields.Boolean(
        dump_only=True,
        required=True,
        metadata={"description": "An action (a payment, a refund) is in progress on it."},
    )


class ReaderUpdateSchema(ApiSchema):
    label = Text(
        required=True, blank=False, validate=ma.validate.Length(max=stripe_terminal.MAX_LABEL)
    )


def reader_dict(reader: TerminalReader) -> dict[str, Any]:
    return {
        "id": reader.id,
        "label": reader.label,
        "status": reader.status,
        "stripe_id": reader.reader_id,
        "device_type": reader.device_type,
        "serial_number": reader.serial_number,
        "busy": stripe_terminal.is_busy(reader),
    }


def _reader(reader_id: int) -> TerminalReader:
    return stripe_terminal.get_reader(reader_id)


@blueprint.route("/readers", methods=["GET"])
@require_permission(Permission.SELL)
@blueprint.query_arguments(PaginationQuerySchema)
@blueprint.response(200, page_schema(ReaderSchema))
def list_readers(arguments: dict[str, Any]) -> dict[str, Any]:
    """List readers

    By name. `status` is what Stripe said last (the readers tab and payments refresh it).
    """
    query = sa.select(TerminalReader).order_by(TerminalReader.label, TerminalReader.id)
    page = paginate(query, page=arguments["page"], per_page=arguments["per_page"])
    return {**page, "items": [reader_dict(reader) for reader in page["items"]]}


@blueprint.route("/readers", methods=["POST"])
@require_permission(Permission.MANAGE_SHOPS)
@blueprint.arguments(ReaderSchema)
@blueprint.response(201, ReaderSchema)
@blueprint.alt_response(409, description="`conflict`: Stripe is not connected or cannot charge.")
def register_reader(values: dict[str, Any]) -> dict[str, Any]:
    """Register a reader

    With the pairing code it shows, at the organization's Terminal location (made from the
    organization's address the first time). A code that is not valid or expired is `422` on
    `registration_code`.
    """
    reader = stripe_terminal.register_reader(
        organization=current_organization(),
        actor=current_actor(),
        gateway=current_gateway(),
        registration_code=values["registration_code"],
        label=values["label"],
    )
    db.session.commit()
    return reader_dict(reader)


@blueprint.route("/readers/<id:reader_id>", methods=["GET"])
@require_permission(Permission.SELL)
@blueprint.response(200, ReaderSchema)
def get_reader(reader_id: int) -> dict[str, Any]:
    """Get a reader"""
    return reader_dict(_reader(reader_id))


@blueprint.route("/readers/<id:reader_id>", methods=["PATCH"])
@require_permission(Permission.MANAGE_SHOPS)
@blueprint.arguments(ReaderUpdateSchema)
@blueprint.response(200, ReaderSchema)
def rename_reader(changes: dict[str, Any], reader_id: int) -> dict[str, Any]:
    """Rename a reader"""
    reader = stripe_terminal.rename_reader(
        organization=current_organization(),
        actor=current_actor(),
        gateway=current_gateway(),
        reader=_reader(reader_id),
        label=changes["label"],
    )
    db.session.commit()
    return reader_dict(reader)


@blueprint.route("/readers/<id:reader_id>", methods=["DELETE"])
@require_permission(Permission.MANAGE_SHOPS)
@blueprint.response(204)
@blueprint.alt_response(409, description="`conflict`: the reader is taking a payment.")
def remove_reader(reader_id: int) -> None:
    """Remove a reader

    Here and at Stripe; registering it again takes a new pairing code.
    """
    stripe_terminal.remove_reader(
        organization=current_organization(),
        actor=current_actor(),
        gateway=current_gateway(),
        reader=_reader(reader_id),
    )
    db.session.commit()
