"""marshmallow schemas of the cart API (allow-lists: unknown fields answer 422).

Prices never come from customers: a line is an article, an optional variant and a quantity. Only
staff may send ``unit_price`` (with a ``reason``) or move ``expires_at``.
"""

from __future__ import annotations

import marshmallow as ma

from comptoir.storefront.carts import MAX_QUANTITY, MAX_REASON_LENGTH, MAX_UNIT_PRICE
from comptoir.tenants.api_support import BIGINT_MAX, ApiSchema, Instant, Text

_ID = ma.validate.Range(min=1, max=BIGINT_MAX)


def _quantity(**kwargs: object) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True,
        validate=ma.validate.Range(min=1, max=MAX_QUANTITY),
        metadata={"description": "Units, a whole number from 1."},
        **kwargs,  # type: ignore[arg-type]
    )


class CartTaxSchema(ApiSchema):
    code = ma.fields.String(required=True, metadata={"example": "QST"})
    name = ma.fields.String(required=True, metadata={"description": "In the caller's language."})
    rate = ma.fields.String(
        required=True,
        metadata={
            "description": "Percent, exact (a string): `9.975` is 9.975 %.",
            "pattern": r"^[0-9]+(\.[0-9]+)?$",
            "example": "9.975",
        },
    )
    amount = ma.fields.Integer(required=True, metadata={"description": "Minor units."})


class CartLineSchema(ApiSchema):
    id = ma.fields.Integer(required=True, dump_only=True)
    article_id = ma.fields.Integer(required=True)
    variant_id = ma.fields.Integer(required=True, allow_none=True)
    name = ma.fields.String(required=True)
    quantity = ma.fields.Integer(required=True)
    unit_price = ma.fields.Integer(
        required=True, metadata={"description": "Charged per unit, minor units before tax."}
    )
    original_unit_price = ma.fields.Integer(
        required=True, metadata={"description": "The catalog price when the line was added."}
    )
    price_override_reason = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "Why staff changed the price."}
    )
    total = ma.fields.Integer(required=True, metadata={"description": "unit_price times quantity."})


class CartSchema(ApiSchema):
    id = ma.fields.Integer(required=True, dump_only=True)
    shop = ma.fields.String(required=True, metadata={"description": "The shop's slug."})
    status = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["active", "expired", "checked_out"]),
        metadata={"description": "`expired` as soon as `expires_at` has passed."},
    )
    expires_at = Instant(required=True)
    renewals_left = ma.fields.Integer(required=True)
    can_renew = ma.fields.Boolean(
        required=True,
        metadata={"description": "Fewer than 5 minutes remain and the shop allows a renewal."},
    )
    lines = ma.fields.List(ma.fields.Nested(CartLineSchema), required=True)
    subtotal = ma.fields.Integer(required=True)
    taxes = ma.fields.List(ma.fields.Nested(CartTaxSchema), required=True)
    total = ma.fields.Integer(required=True)
    currency = ma.fields.String(required=True, metadata={"example": "CAD"})


class CreatedCartSchema(CartSchema):
    token = ma.fields.String(
        required=True,
        metadata={
            "description": "Send it as `X-Cart-Token` to reach this cart; it is shown only once."
        },
    )


class CartUpdateSchema(ApiSchema):
    """Staff only: move the expiry to any time (a past time ends the cart now)."""

    expires_at = Instant(required=True)


class CartLineCreateSchema(ApiSchema):
    article_id = ma.fields.Integer(strict=True, required=True, validate=_ID)
    variant_id = ma.fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=_ID,
        metadata={"description": "Required when the article has variants."},
    )
    quantity = _quantity(required=True)


class CartLineUpdateSchema(ApiSchema):
    """Anyone: ``quantity``. Staff only: ``unit_price`` with ``reason`` (403 for others)."""

    quantity = _quantity()
    unit_price = ma.fields.Integer(
        strict=True,
        validate=ma.validate.Range(min=0, max=MAX_UNIT_PRICE),
        metadata={"description": "Staff only. Minor units before tax; needs `reason`."},
    )
    reason = Text(
        validate=ma.validate.Length(max=MAX_REASON_LENGTH),
        metadata={"description": "Staff only. Why the price changes (kept on the line)."},
    )

    @ma.validates_schema
    def _something(self, data: dict[str, object], **kwargs: object) -> None:
        if not data:
            message = "Send quantity, or unit_price with reason."
            raise ma.ValidationError(message, field_name="_schema")
