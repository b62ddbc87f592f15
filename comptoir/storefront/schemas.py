"""marshmallow schemas of the catalog and shop API (allow-lists: unknown fields answer 422).

They check shapes (types, ranges, characters) and publish them in the OpenAPI document; the
services check meaning (a name in at least one language, unique SKUs, tags of the organization).
Answers are built as plain dictionaries by :mod:`comptoir.storefront.presenters`.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_babel import lazy_gettext as _l

from comptoir.billing.schemas import CommunicationSettingsSchema, EtransferSettingsSchema
from comptoir.storefront.services import TAX_CATEGORIES
from comptoir.storefront.shops import MAX_CART_MINUTES, MAX_CART_RENEWALS, PAYMENT_METHODS
from comptoir.storefront.validation import COLOR_PATTERN, MAX_PRICE, MAX_QUANTITY
from comptoir.tenants.api_support import ApiSchema, PaginationQuerySchema, Text, patch_schema

BIGINT_MAX = 2**63 - 1
ACCESS_VALUES = ("public", "password", "staff")


class WholeNumber(ma.fields.Integer):
    """A JSON integer: ``12`` or ``12.0``; never ``12.5``, ``"12"`` or ``true``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return int(super()._validated(value))


def _id(**kwargs: Any) -> ma.fields.Integer:
    return WholeNumber(validate=ma.validate.Range(min=1, max=BIGINT_MAX), **kwargs)


def _query_id(**kwargs: Any) -> ma.fields.Integer:
    """An id in the query string (text there, so not strict)."""
    return ma.fields.Integer(validate=ma.validate.Range(min=1, max=BIGINT_MAX), **kwargs)


def _ids(**kwargs: Any) -> ma.fields.List:
    return ma.fields.List(_id(), validate=ma.validate.Length(max=200), **kwargs)


def _money(
    description: str = "Minor units (cents) of the organization's currency.", **kwargs: Any
) -> ma.fields.Integer:
    return WholeNumber(
        validate=ma.validate.Range(min=0, max=MAX_PRICE),
        metadata={"description": description},
        **kwargs,
    )


def _quantity(minimum: int = 0, **kwargs: Any) -> ma.fields.Integer:
    return WholeNumber(validate=ma.validate.Range(min=minimum, max=MAX_QUANTITY), **kwargs)


def _translated(name: str, max_length: int, *, multiline: bool = False) -> type[ma.Schema]:
    return type(
        name,
        (ApiSchema,),
        {
            "fr": Text(multiline=multiline, validate=ma.validate.Length(max=max_length)),
            "en": Text(multiline=multiline, validate=ma.validate.Length(max=max_length)),
        },
    )


Name100Schema = _translated("ShortNameSchema", 100)
Name200Schema = _translated("NameSchema", 200)
DescriptionSchema = _translated("DescriptionSchema", 20_000, multiline=True)
IntroSchema = _translated("IntroSchema", 5_000, multiline=True)
AltSchema = _translated("ImageAltSchema", 200)
TRANSLATED_HELP = "French and English; give at least one of them for a name."


def _sku(**kwargs: Any) -> Text:
    return Text(
        allow_none=True,
        validate=ma.validate.Length(max=64),
        metadata={"description": "Unique in the organization, articles and variants together."},
        **kwargs,
    )


# --------------------------------------------------------------------------- tags


class TagSchema(ApiSchema):
    id = _id(dump_only=True, required=True)
    name = ma.fields.Nested(Name100Schema, required=True, metadata={"description": TRANSLATED_HELP})
    color = Text(
        required=True, pattern=COLOR_PATTERN.pattern, error=_l("Enter a colour such as #0b57d0.")
    )


class TagCreateSchema(ApiSchema):
    name = ma.fields.Nested(Name100Schema, required=True, metadata={"description": TRANSLATED_HELP})
    color = Text(
        load_default="#0b57d0",
        pattern=COLOR_PATTERN.pattern,
        error=_l("Enter a colour such as #0b57d0."),
    )


TagUpdateSchema = patch_schema(TagCreateSchema, "TagUpdateSchema")


# --------------------------------------------------------------------------- articles


class VariantSchema(ApiSchema):
    id = _id(metadata={"description": "Give it to change an existing variant; omit it to add one."})
    name = ma.fields.Nested(Name100Schema, required=True, metadata={"description": TRANSLATED_HELP})
    sku = _sku(load_default=None)
    price = _money(allow_none=True, load_default=None)
    stock = _quantity(allow_none=True, load_default=None)


class ArticleVariantSchema(VariantSchema):
    id = _id(required=True)
    sku = _sku(required=True)
    price = _money(allow_none=True, required=True)
    stock = _quantity(allow_none=True, required=True)


class ArticleSchema(ApiSchema):
    id = _id(dump_only=True, required=True)
    name = ma.fields.Nested(Name200Schema, required=True)
    description = ma.fields.Nested(DescriptionSchema, required=True)
    price = _money(required=True)
    currency = Text(required=True)
    tax_category = Text(required=True)
    sku = _sku(required=True)
    tag_ids = _ids(required=True)
    active = ma.fields.Boolean(required=True)
    stock = _quantity(allow_none=True, required=True)
    max_per_order = _quantity(1, allow_none=True, required=True)
    checkout_form_id = _id(allow_none=True, required=True)
    variants = ma.fields.List(ma.fields.Nested(ArticleVariantSchema), required=True)


class ArticleCreateSchema(ApiSchema):
    name = ma.fields.Nested(Name200Schema, required=True, metadata={"description": TRANSLATED_HELP})
    description = ma.fields.Nested(DescriptionSchema, load_default=dict)
    price = _money(required=True)
    tax_category = Text(load_default="standard", validate=ma.validate.OneOf(list(TAX_CATEGORIES)))
    sku = _sku(load_default=None)
    tag_ids = _ids(load_default=list)
    active = ma.fields.Boolean(load_default=True)
    stock = _quantity(
        allow_none=True,
        load_default=None,
        metadata={"description": "Null is unlimited. With variants, each variant has its stock."},
    )
    max_per_order = _quantity(1, allow_none=True, load_default=None)
    checkout_form_id = _id(allow_none=True, load_default=None)
    variants = ma.fields.List(
        ma.fields.Nested(VariantSchema),
        load_default=list,
        validate=ma.validate.Length(max=100),
        metadata={"description": "In a PATCH, the whole list: variants left out are removed."},
    )


ArticleUpdateSchema = patch_schema(ArticleCreateSchema, "ArticleUpdateSchema")


class ArticleQuerySchema(PaginationQuerySchema):
    q = Text(load_default="", validate=ma.validate.Length(max=100))
    tag = _query_id(load_default=None, metadata={"description": "Only articles with this tag."})
    status = Text(load_default="all", validate=ma.validate.OneOf(["active", "archived", "all"]))


# --------------------------------------------------------------------------- shops


class ShopSchema(ApiSchema):
    slug = Text(required=True)
    name = ma.fields.Nested(Name200Schema, required=True)
    intro = ma.fields.Nested(IntroSchema, required=True)
    access = Text(required=True, validate=ma.validate.OneOf(ACCESS_VALUES))
    has_password = ma.fields.Boolean(required=True)
    customer_tag_ids = _ids(required=True)
    staff_tag_ids = _ids(required=True)
    cart_minutes = ma.fields.Integer(required=True)
    max_cart_renewals = ma.fields.Integer(required=True)
    payment_methods = ma.fields.List(Text(), required=True)
    default_checkout_form_id = _id(allow_none=True, required=True)
    etransfer = ma.fields.Nested(EtransferSettingsSchema, required=True)
    communication = ma.fields.Nested(CommunicationSettingsSchema, required=True)


class ShopCreateSchema(ApiSchema):
    slug = Text(
        required=True,
        validate=ma.validate.Length(max=63),
        metadata={"description": "Lowercase letters, digits and dashes: /o/{org}/{slug}/."},
    )
    name = ma.fields.Nested(Name200Schema, required=True, metadata={"description": TRANSLATED_HELP})
    intro = ma.fields.Nested(IntroSchema, load_default=dict)
    access = Text(load_default="public", validate=ma.validate.OneOf(ACCESS_VALUES))
    password = Text(
        load_only=True,
        allow_none=True,
        load_default=None,
        validate=ma.validate.Length(max=200),
        metadata={"description": "Write-only; needed for a password shop. Null keeps it."},
    )
    customer_tag_ids = _ids(load_default=list, metadata={"description": "Ordered categories."})
    staff_tag_ids = _ids(load_default=list, metadata={"description": "Ordered staff categories."})
    cart_minutes = WholeNumber(
        load_default=20, validate=ma.validate.Range(min=1, max=MAX_CART_MINUTES)
    )
    max_cart_renewals = WholeNumber(
        load_default=2,
        validate=ma.validate.Range(min=0, max=MAX_CART_RENEWALS),
        metadata={
            "description": "How many times a customer may renew a cart when fewer than "
            "5 minutes remain; each renewal gives `cart_minutes` again."
        },
    )
    payment_methods = ma.fields.List(
        Text(validate=ma.validate.OneOf(PAYMENT_METHODS)),
        load_default=lambda: ["offline"],
        validate=ma.validate.Length(min=1, max=len(PAYMENT_METHODS)),
    )
    default_checkout_form_id = _id(allow_none=True, load_default=None)
    etransfer = ma.fields.Nested(EtransferSettingsSchema, load_default=dict)
    communication = ma.fields.Nested(CommunicationSettingsSchema, load_default=dict)


ShopUpdateSchema = patch_schema(ShopCreateSchema, "ShopUpdateSchema")


class UnlockSchema(ApiSchema):
    password = Text(required=True, load_only=True, validate=ma.validate.Length(max=200))


class AccessTokenSchema(ApiSchema):
    access_token = Text(
        required=True,
        metadata={"description": "Send it as `X-Shop-Access` to read this shop."},
    )
    expires_in = ma.fields.Integer(required=True, metadata={"description": "Seconds."})


# --------------------------------------------------------------------------- what a shop shows


class PublicVariantSchema(ApiSchema):
    id = _id(required=True)
    name = ma.fields.Nested(Name100Schema, required=True)
    price = _money(required=True)
    available = ma.fields.Integer(
        allow_none=True, required=True, metadata={"description": "Null when unlimited."}
    )


class PublicImageSchema(ApiSchema):
    id = _id(required=True)
    url = Text(required=True)
    card_url = Text(required=True)
    alt = ma.fields.Nested(AltSchema, required=True)


class ShopArticleSchema(ApiSchema):
    id = _id(required=True)
    name = ma.fields.Nested(Name200Schema, required=True)
    description = ma.fields.Nested(DescriptionSchema, required=True)
    price = _money("The lowest price in minor units (variants may differ).", required=True)
    currency = Text(required=True)
    tag_ids = _ids(required=True)
    available = ma.fields.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "Stock minus sold minus active holds; null when unlimited."},
    )
    max_per_order = ma.fields.Integer(allow_none=True, required=True)
    variants = ma.fields.List(ma.fields.Nested(PublicVariantSchema), required=True)
    images = ma.fields.List(ma.fields.Nested(PublicImageSchema), required=True)


class ShopArticleQuerySchema(PaginationQuerySchema):
    tag = _query_id(load_default=None, metadata={"description": "Only this category."})
    q = Text(load_default="", validate=ma.validate.Length(max=100))
