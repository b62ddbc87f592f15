"""marshmallow schemas of the tenants domain's JSON API (allow-lists: unknown fields answer 422).

They check shapes (types, lengths, characters) and publish them in the OpenAPI document; the
services check meaning (a real e-mail address, one customer per address in an organization).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_babel import lazy_gettext as _l

from comptoir.tenants.api_support import (
    ApiSchema,
    EmailAddress,
    PaginationQuerySchema,
    Text,
    patch_schema,
)

# Empty, or 7 to 40 of these characters once the surrounding spaces are trimmed.
PHONE_PATTERN = r"^ *(?:[0-9+().\-][0-9+().\- ]{5,38}[0-9+().\-])? *$"


def _name(**kwargs: Any) -> Text:
    return Text(blank=False, validate=ma.validate.Length(max=100), **kwargs)


def _phone(**kwargs: Any) -> Text:
    return Text(
        pattern=PHONE_PATTERN,
        error=_l("Enter a phone number (digits, spaces, + - ( ) .)."),
        validate=ma.validate.Length(max=40),
        metadata={"description": "Empty when unknown."},
        **kwargs,
    )


class CustomerSchema(ApiSchema):
    """A customer of the organization, as the API answers it."""

    id = ma.fields.Integer(dump_only=True, required=True)
    first_name = _name(required=True)
    last_name = _name(required=True)
    email = EmailAddress(required=True)
    phone = _phone(required=True)


class CustomerCreateSchema(ApiSchema):
    """A new customer: names and e-mail address required, phone optional."""

    first_name = _name(required=True)
    last_name = _name(required=True)
    email = EmailAddress(required=True)
    phone = _phone(load_default="")


CustomerUpdateSchema = patch_schema(CustomerCreateSchema, "CustomerUpdateSchema")


class CustomerQuerySchema(PaginationQuerySchema):
    q = Text(
        load_default="",
        validate=ma.validate.Length(max=200),
        metadata={"description": "Words to find in names, e-mail addresses and phone numbers."},
    )


class StrictBoolean(ma.fields.Boolean):
    """A JSON ``true`` or ``false``; never ``1``, ``"yes"`` or ``"true"``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class OrganizationSettingsSchema(ApiSchema):
    """The settings owners and administrators change for the whole organization."""

    attendant_can_override_prices = StrictBoolean(
        required=True,
        metadata={
            "description": "Whether attendants may change a line's unit price in a cart "
            "(owners and administrators always may)."
        },
    )


OrganizationSettingsUpdateSchema = patch_schema(
    OrganizationSettingsSchema, "OrganizationSettingsUpdateSchema"
)
