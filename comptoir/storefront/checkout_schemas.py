"""marshmallow schemas of the checkout and checkout-forms API (allow-lists).

A checkout body names what the caller chooses (the method, the answers, staff choices); what
the server computes (prices, taxes, totals, change due) has no field here, so sending it is
refused as an unknown field.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from comptoir.billing.models import Method
from comptoir.storefront.checkout_forms import FIELD_TYPES, MAX_FIELDS, MAX_NAME, MAX_OPTIONS
from comptoir.tenants.api_support import ApiSchema, PaginationQuerySchema, Text, patch_schema

BIGINT_MAX = 2**63 - 1


def _id(**kwargs: Any) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True, validate=ma.validate.Range(min=1, max=BIGINT_MAX), **kwargs
    )


class TranslatedTextSchema(ApiSchema):
    fr = Text(multiline=True, load_default="", validate=ma.validate.Length(max=5000))
    en = Text(multiline=True, load_default="", validate=ma.validate.Length(max=5000))


class FieldOptionSchema(ApiSchema):
    value = Text(load_default="", validate=ma.validate.Length(max=100))
    label = ma.fields.Nested(TranslatedTextSchema, required=True)


class FormFieldSchema(ApiSchema):
    key = Text(
        required=True,
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        error="Use a lowercase letter, then letters, digits or _ (at most 40).",
    )
    type = ma.fields.String(required=True, validate=ma.validate.OneOf(list(FIELD_TYPES)))
    label = ma.fields.Nested(TranslatedTextSchema, required=True)
    help = ma.fields.Nested(TranslatedTextSchema, load_default=dict)
    required = ma.fields.Boolean(load_default=False)
    options = ma.fields.List(
        ma.fields.Nested(FieldOptionSchema),
        load_default=list,
        validate=ma.validate.Length(max=MAX_OPTIONS),
    )
    fixed = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "The account-owner block (first name, last name, e-mail): shown "
            "first on every form, not changeable; sent back, it is ignored."
        },
    )


class CheckoutFormSchema(ApiSchema):
    id = ma.fields.Integer(dump_only=True, required=True)
    name = Text(required=True, blank=False, validate=ma.validate.Length(max=MAX_NAME))
    version = ma.fields.Integer(dump_only=True, required=True)
    priority = ma.fields.Integer(
        strict=True,
        load_default=0,
        validate=ma.validate.Range(min=-1_000_000, max=1_000_000),
        metadata={"description": "The highest priority wins among a cart's articles' forms."},
    )
    # Not named ``fields``: that name is the schema's own attribute.
    field_list = ma.fields.List(
        ma.fields.Nested(FormFieldSchema),
        data_key="fields",
        load_default=list,
        validate=ma.validate.Length(max=MAX_FIELDS + 3),
        metadata={"description": "In order. Editing them makes a new version."},
    )


CheckoutFormUpdateSchema = patch_schema(CheckoutFormSchema, "CheckoutFormUpdateSchema")


class CheckoutQuerySchema(PaginationQuerySchema):
    pass


class CheckoutSchema(ApiSchema):
    payment_method = ma.fields.String(
        required=True, validate=ma.validate.OneOf([m.value for m in Method])
    )
    answers = ma.fields.Dict(
        keys=ma.fields.String(validate=ma.validate.Length(max=40)),
        values=ma.fields.Raw(allow_none=True),
        load_default=dict,
        metadata={
            "description": "Answers by field key: `first_name`, `last_name`, `email` (the "
            "account owner), then the form's own fields. A consent is "
            '`{"accepted": true, "signature_png": "data:image/png;base64,…"}` or with '
            '`"typed_name"`.'
        },
    )
    checkout_form_id = _id(
        allow_none=True,
        load_default=None,
        metadata={"description": "Staff only: another form of the organization."},
    )
    customer_id = _id(
        allow_none=True,
        load_default=None,
        metadata={"description": "Staff only: buy on behalf of this customer."},
    )
    counter_sale = ma.fields.Boolean(
        load_default=False, metadata={"description": "Staff only: no customer captured."}
    )
    cash_tendered = ma.fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=ma.validate.Range(min=0, max=100_000_000),
        metadata={"description": "Cash only: what was handed over (cents); change is computed."},
    )
    reference = Text(load_default="", validate=ma.validate.Length(max=200))
    reader_id = Text(allow_none=True, load_default=None, validate=ma.validate.Length(max=100))
