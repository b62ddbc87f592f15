"""marshmallow schemas of the orders API (allow-lists: unknown fields answer 422).

Amounts the server computes (totals, taxes, change due, balances) appear only in answers: a body
that sends one is refused as an unknown field, so a client can never set what it owes.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from comptoir.billing.models import Method, MoneyState, OrderState
from comptoir.tenants.api_support import (
    ApiSchema,
    EmailAddress,
    Instant,
    PaginationQuerySchema,
    Text,
)

BIGINT_MAX = 2**63 - 1
MAX_AMOUNT = 100_000_000


def _id(**kwargs: Any) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True, validate=ma.validate.Range(min=1, max=BIGINT_MAX), **kwargs
    )


def _amount(**kwargs: Any) -> ma.fields.Integer:
    metadata = {
        "description": "Minor units (cents) of the organization's currency.",
        **kwargs.pop("metadata", {}),
    }
    return ma.fields.Integer(
        strict=True, validate=ma.validate.Range(min=0, max=MAX_AMOUNT), metadata=metadata, **kwargs
    )


def _out(**kwargs: Any) -> ma.fields.Integer:
    return ma.fields.Integer(dump_only=True, **kwargs)


# --------------------------------------------------------------------------- answers


class TaxAmountSchema(ApiSchema):
    code = ma.fields.String(dump_only=True, required=True)
    amount = _out(required=True)


class TaxTotalSchema(ApiSchema):
    code = ma.fields.String(dump_only=True, required=True)
    name = ma.fields.String(dump_only=True, required=True)
    rate = ma.fields.String(dump_only=True, required=True, metadata={"description": "Percent."})
    registration_number = ma.fields.String(dump_only=True, required=True)
    amount = _out(required=True)


class OrderLineSchema(ApiSchema):
    id = _out(required=True)
    article_id = ma.fields.Integer(dump_only=True, allow_none=True, required=True)
    variant_id = ma.fields.Integer(dump_only=True, allow_none=True, required=True)
    name = ma.fields.String(dump_only=True, required=True)
    sku = ma.fields.String(dump_only=True, required=True)
    quantity = _out(required=True)
    refunded_quantity = _out(required=True)
    unit_price = _out(required=True)
    original_unit_price = _out(required=True)
    price_override_reason = ma.fields.String(dump_only=True, required=True)
    tax_category = ma.fields.String(dump_only=True, required=True)
    taxes = ma.fields.List(ma.fields.Nested(TaxAmountSchema), dump_only=True, required=True)
    subtotal = _out(required=True)
    total = _out(required=True)


class PaymentSchema(ApiSchema):
    id = _out(required=True)
    method = ma.fields.String(
        dump_only=True, required=True, validate=ma.validate.OneOf([m.value for m in Method])
    )
    state = ma.fields.String(
        dump_only=True, required=True, validate=ma.validate.OneOf([s.value for s in MoneyState])
    )
    amount = _out(required=True)
    reference = ma.fields.String(dump_only=True, required=True)
    cash_tendered = ma.fields.Integer(dump_only=True, allow_none=True, required=True)
    change_due = _out(required=True)
    received_at = ma.fields.DateTime(dump_only=True, allow_none=True, required=True)
    created_at = ma.fields.DateTime(dump_only=True, required=True)


class RefundSchema(ApiSchema):
    id = _out(required=True)
    method = ma.fields.String(dump_only=True, required=True)
    state = ma.fields.String(dump_only=True, required=True)
    amount = _out(required=True)
    reason = ma.fields.String(dump_only=True, required=True)
    reference = ma.fields.String(dump_only=True, required=True)
    line_ids = ma.fields.List(ma.fields.Integer(), dump_only=True, required=True)
    restocked = ma.fields.Boolean(dump_only=True, required=True)
    created_at = ma.fields.DateTime(dump_only=True, required=True)


class OrderCustomerSchema(ApiSchema):
    id = ma.fields.Integer(dump_only=True, allow_none=True, required=True)
    first_name = ma.fields.String(dump_only=True, required=True)
    last_name = ma.fields.String(dump_only=True, required=True)
    email = ma.fields.String(dump_only=True, required=True)
    phone = ma.fields.String(dump_only=True, required=True)


class OrderFormSchema(ApiSchema):
    id = ma.fields.Integer(dump_only=True, allow_none=True, required=True)
    version = ma.fields.Integer(dump_only=True, allow_none=True, required=True)
    name = ma.fields.String(dump_only=True, required=True)
    answers = ma.fields.Dict(dump_only=True, required=True)


class DocumentLinkSchema(ApiSchema):
    number = ma.fields.String(dump_only=True, required=True)
    pdf_url = ma.fields.String(dump_only=True, required=True)
    total = ma.fields.Integer(dump_only=True)
    issued_at = ma.fields.DateTime(dump_only=True)


class OrderSchema(ApiSchema):
    id = _out(required=True)
    number = _out(required=True)
    code = ma.fields.String(dump_only=True, required=True)
    state = ma.fields.String(
        dump_only=True, required=True, validate=ma.validate.OneOf([s.value for s in OrderState])
    )
    currency = ma.fields.String(dump_only=True, required=True)
    locale = ma.fields.String(dump_only=True, required=True)
    created_at = ma.fields.DateTime(dump_only=True, required=True)
    payment_method = ma.fields.String(dump_only=True, required=True)
    counter_sale = ma.fields.Boolean(dump_only=True, required=True)
    lines = ma.fields.List(ma.fields.Nested(OrderLineSchema), dump_only=True, required=True)
    subtotal = _out(required=True)
    taxes = ma.fields.List(ma.fields.Nested(TaxTotalSchema), dump_only=True, required=True)
    total = _out(required=True)
    paid = _out(required=True)
    refunded = _out(required=True)
    credited = _out(required=True)
    balance = _out(required=True)
    payments = ma.fields.List(ma.fields.Nested(PaymentSchema), dump_only=True, required=True)
    refunds = ma.fields.List(ma.fields.Nested(RefundSchema), dump_only=True, required=True)
    customer = ma.fields.Nested(OrderCustomerSchema, dump_only=True, allow_none=True, required=True)
    form = ma.fields.Nested(OrderFormSchema, dump_only=True, allow_none=True, required=True)
    invoice = ma.fields.Nested(DocumentLinkSchema, dump_only=True, allow_none=True, required=True)
    credit_notes = ma.fields.List(
        ma.fields.Nested(DocumentLinkSchema), dump_only=True, required=True
    )
    payment_instructions = ma.fields.Dict(
        dump_only=True,
        allow_none=True,
        metadata={"description": "e-Transfer instructions while the payment is pending."},
    )
    next_action = ma.fields.Dict(
        dump_only=True,
        allow_none=True,
        metadata={"description": "What the payer must do next (card and reader payments)."},
    )
    token = ma.fields.String(
        dump_only=True,
        metadata={
            "description": "On creation only: the customer's key to the order, sent back in "
            "`X-Order-Token` to read it."
        },
    )


class PaymentResultSchema(PaymentSchema):
    order = ma.fields.Nested(OrderSchema, dump_only=True, required=True)
    next_action = ma.fields.Dict(
        dump_only=True,
        allow_none=True,
        metadata={"description": "What the payer must do next (card and reader payments)."},
    )


class RefundResultSchema(RefundSchema):
    order = ma.fields.Nested(OrderSchema, dump_only=True, required=True)


# --------------------------------------------------------------------------- requests


class OrderQuerySchema(PaginationQuerySchema):
    state = ma.fields.String(validate=ma.validate.OneOf([s.value for s in OrderState]))
    method = ma.fields.String(validate=ma.validate.OneOf([m.value for m in Method]))
    q = Text(load_default="", validate=ma.validate.Length(max=200))
    pending = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "Only orders awaiting payment or with a payment in progress."},
    )
    counter_sale = ma.fields.Boolean(allow_none=True, load_default=None)
    date_from = ma.fields.Date(metadata={"description": "Placed on or after this day."})
    date_to = ma.fields.Date(metadata={"description": "Placed on or before this day."})


class PaymentCreateSchema(ApiSchema):
    method = ma.fields.String(required=True, validate=ma.validate.OneOf([m.value for m in Method]))
    amount = _amount(
        allow_none=True,
        load_default=None,
        metadata={"description": "Minor units; omitted or null: the balance."},
    )
    reference = Text(load_default="", validate=ma.validate.Length(max=200))
    cash_tendered = _amount(allow_none=True, load_default=None)
    received_at = Instant(allow_none=True, load_default=None)
    reader_id = Text(allow_none=True, load_default=None, validate=ma.validate.Length(max=100))


class RefundLineSchema(ApiSchema):
    line_id = _id(required=True)
    quantity = ma.fields.Integer(
        strict=True, validate=ma.validate.Range(min=1, max=1_000_000), load_default=None
    )


class RefundCreateSchema(ApiSchema):
    reason = Text(required=True, blank=False, multiline=True, validate=ma.validate.Length(max=2000))
    amount = _amount(allow_none=True, load_default=None)
    line_ids = ma.fields.List(
        _id(),
        load_default=None,
        validate=ma.validate.Length(min=1, max=200),
        metadata={"description": "Lines refunded whole (what is left of each)."},
    )
    lines = ma.fields.List(
        ma.fields.Nested(RefundLineSchema),
        load_default=None,
        validate=ma.validate.Length(min=1, max=200),
        metadata={"description": "Lines with a quantity each, for part of a line."},
    )
    method = ma.fields.String(
        allow_none=True,
        load_default=None,
        validate=ma.validate.OneOf([m.value for m in Method]),
        metadata={"description": "How the money goes back; omitted: the last payment's method."},
    )
    reference = Text(load_default="", validate=ma.validate.Length(max=200))
    restock = ma.fields.Boolean(load_default=True)


class CancelSchema(ApiSchema):
    reason = Text(required=True, blank=False, multiline=True, validate=ma.validate.Length(max=2000))
    method = ma.fields.String(
        allow_none=True, load_default=None, validate=ma.validate.OneOf([m.value for m in Method])
    )
    reference = Text(load_default="", validate=ma.validate.Length(max=200))


class SendInvoiceSchema(ApiSchema):
    email = EmailAddress(required=True)
    locale = ma.fields.String(
        allow_none=True, load_default=None, validate=ma.validate.OneOf(["fr", "en"])
    )


class SendInvoiceResultSchema(ApiSchema):
    email = ma.fields.String(dump_only=True, required=True)
    queued = ma.fields.Boolean(dump_only=True, required=True)


# --------------------------------------------------------------------------- shop settings


class EtransferSettingsSchema(ApiSchema):
    """A shop's Interac e-Transfer settings (its Payment tab)."""

    email = Text(
        load_default="",
        validate=ma.validate.Length(max=254),
        metadata={"description": "The address that receives the transfers."},
    )
    instructions_fr = Text(multiline=True, load_default="", validate=ma.validate.Length(max=4000))
    instructions_en = Text(multiline=True, load_default="", validate=ma.validate.Length(max=4000))
    security_question = Text(load_default="", validate=ma.validate.Length(max=4000))
    security_answer = Text(load_default="", validate=ma.validate.Length(max=4000))
    auto_deposit = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "The address deposits transfers automatically (no question)."},
    )
    reminder_hours = ma.fields.Integer(
        strict=True, load_default=48, validate=ma.validate.Range(min=1, max=1440)
    )
    cancel_hours = ma.fields.Integer(
        strict=True,
        load_default=120,
        validate=ma.validate.Range(min=1, max=1440),
        metadata={"description": "Unpaid orders are cancelled after this; more than the reminder."},
    )


class TemplatePairSchema(ApiSchema):
    subject = Text(load_default="", validate=ma.validate.Length(max=200))
    body = Text(multiline=True, load_default="", validate=ma.validate.Length(max=20_000))


class TemplateLanguagesSchema(ApiSchema):
    fr = ma.fields.Nested(TemplatePairSchema)
    en = ma.fields.Nested(TemplatePairSchema)


class TemplatesSchema(ApiSchema):
    confirmation = ma.fields.Nested(TemplateLanguagesSchema)
    cancellation = ma.fields.Nested(TemplateLanguagesSchema)


class CommunicationSettingsSchema(ApiSchema):
    """A shop's e-mail settings (its Communication tab). Empty templates use the defaults."""

    templates = ma.fields.Nested(TemplatesSchema, load_default=dict)
    notify_user_ids = ma.fields.List(
        _id(),
        load_default=list,
        validate=ma.validate.Length(max=200),
        metadata={"description": "Users (staff of the organization) notified of each purchase."},
    )
    forced_copy = Text(
        load_default="",
        validate=ma.validate.Length(max=254),
        metadata={"description": "An address in copy of every confirmation and cancellation."},
    )
