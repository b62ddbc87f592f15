"""Orders, their lines, payments, refunds, invoices, credit notes, number sequences, idempotency.

Money is integer minor units of the order's currency. Payments and refunds are append-only rows:
their amounts never change, only their state moves forward; an order's paid, refunded and balance
figures are derived from them (:mod:`comptoir.billing.orders`), never stored as the truth.

Orders copy what they sold (names, prices, overrides, taxes) and the checkout form they were
placed with, so later edits of the catalog or of the form never change a past order.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from comptoir.platform.db import (
    BigId,
    JsonColumn,
    Model,
    TenantMixin,
    TimestampMixin,
    UtcDateTime,
    tenant_foreign_key,
    utcnow,
)


class OrderState(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


class MoneyState(StrEnum):
    """States of a payment or a refund row."""

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Method(StrEnum):
    """Every payment method the API names; which ones work is the registry's business."""

    OFFLINE = "offline"
    ETRANSFER = "etransfer"
    CARD = "card"
    TERMINAL = "terminal"
    CASH = "cash"
    LATER = "later"
    OTHER = "other"


def _enum(enum_class: type[StrEnum], name: str) -> sa.Enum:
    # Text with a CHECK constraint, like the other domains: a new value is a migration.
    return sa.Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class NumberSequence(TenantMixin, Model):
    """A per-organization counter (orders, invoices, credit notes), locked while a number is taken.

    The row is read ``FOR UPDATE`` in the transaction that uses the number, so a rollback gives
    the number back and two transactions never take the same one (:mod:`.numbering`).
    """

    __tablename__ = "sequences"
    __table_args__ = TenantMixin.tenant_table_args(
        sa.UniqueConstraint("organization_id", "name", name="uq_sequences_org_name"),
        sa.CheckConstraint("next_value >= 1", name="next_value_positive"),
    )

    name: Mapped[str] = mapped_column(sa.String(30), nullable=False)
    next_value: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=1)


class Order(TenantMixin, TimestampMixin, Model):
    __tablename__ = "orders"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["customer_id"], "customers"),
        tenant_foreign_key(["shop_id"], "shops"),
        sa.UniqueConstraint("organization_id", "number", name="uq_orders_org_number"),
        sa.UniqueConstraint("token_hash", name="uq_orders_token_hash"),
        sa.CheckConstraint("subtotal >= 0 AND tax_total >= 0 AND total >= 0", name="totals"),
        sa.CheckConstraint(
            "NOT counter_sale OR customer_id IS NULL", name="counter_sale_has_no_customer"
        ),
        sa.Index("ix_orders_org_created", "organization_id", "created_at"),
        sa.Index("ix_orders_org_state", "organization_id", "state"),
        sa.Index("ix_orders_state_due", "state", "checkout_method", "remind_at", "expires_at"),
    )

    number: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    # SHA-256 of the customer's order token (X-Order-Token, the confirmation page's link).
    token_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    state: Mapped[OrderState] = mapped_column(
        _enum(OrderState, "order_state"), nullable=False, default=OrderState.AWAITING_PAYMENT
    )
    currency: Mapped[str] = mapped_column(sa.String(3), nullable=False)
    locale: Mapped[str] = mapped_column(sa.String(5), nullable=False)
    shop_id: Mapped[int | None] = mapped_column(BigId)
    # The method chosen at checkout; payments may later come by other methods (split tender).
    checkout_method: Mapped[Method] = mapped_column(_enum(Method, "method"), nullable=False)
    counter_sale: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    customer_id: Mapped[int | None] = mapped_column(BigId)
    # The account owner as entered at checkout (the customer row may change later).
    customer_first_name: Mapped[str] = mapped_column(sa.String(100), default="", nullable=False)
    customer_last_name: Mapped[str] = mapped_column(sa.String(100), default="", nullable=False)
    customer_email: Mapped[str] = mapped_column(sa.String(254), default="", nullable=False)
    customer_phone: Mapped[str] = mapped_column(sa.String(40), default="", nullable=False)
    # The checkout form as answered: its id, version, name and field definitions.
    form_id: Mapped[int | None] = mapped_column(BigId)
    form_version: Mapped[int | None] = mapped_column(sa.Integer)
    form_snapshot: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict, nullable=False)
    answers: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict, nullable=False)
    # One entry per consent signed: the text accepted, a drawn PNG or a typed name, when, where.
    consents: Mapped[list[dict[str, Any]]] = mapped_column(JsonColumn, default=list, nullable=False)
    subtotal: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    tax_total: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    # Per tax: code, names in both languages, rate, registration number, amount.
    taxes: Mapped[list[dict[str, Any]]] = mapped_column(JsonColumn, default=list, nullable=False)
    # What the customer was told to pay with (the shop's e-Transfer settings at checkout).
    payment_details: Mapped[dict[str, Any]] = mapped_column(
        JsonColumn, default=dict, nullable=False
    )
    # Unpaid e-Transfer orders: when to send the reminder, and when to cancel automatically.
    remind_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_reason: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)
    placed_by_label: Mapped[str] = mapped_column(sa.String(254), default="", nullable=False)
    placed_by_user_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    # Set when the confirmation e-mail was queued: it goes out once.
    confirmation_queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=utcnow)

    lines: Mapped[list[OrderLine]] = relationship(
        primaryjoin="Order.id == foreign(OrderLine.order_id)",
        order_by="OrderLine.position, OrderLine.id",
        cascade="all, delete-orphan",
        back_populates="order",
    )
    payments: Mapped[list[Payment]] = relationship(
        primaryjoin="Order.id == foreign(Payment.order_id)",
        order_by="Payment.id",
        viewonly=True,
    )
    refunds: Mapped[list[Refund]] = relationship(
        primaryjoin="Order.id == foreign(Refund.order_id)",
        order_by="Refund.id",
        viewonly=True,
    )
    invoice: Mapped[Invoice | None] = relationship(
        primaryjoin="Order.id == foreign(Invoice.order_id)", viewonly=True, uselist=False
    )
    credit_notes: Mapped[list[CreditNote]] = relationship(
        primaryjoin="Order.id == foreign(CreditNote.order_id)",
        order_by="CreditNote.id",
        viewonly=True,
    )

    @property
    def code(self) -> str:
        """What people quote: on the confirmation, in an e-Transfer message, on the phone."""
        return f"C-{self.number}"

    @property
    def customer_name(self) -> str:
        return f"{self.customer_first_name} {self.customer_last_name}".strip()

    def __repr__(self) -> str:
        return f"<Order {self.number} {self.state}>"


class OrderLine(TenantMixin, Model):
    __tablename__ = "order_lines"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["order_id"], "orders", ondelete="CASCADE"),
        sa.CheckConstraint("quantity >= 1", name="quantity_positive"),
        sa.CheckConstraint(
            "unit_price >= 0 AND original_unit_price >= 0", name="prices_not_negative"
        ),
        sa.Index("ix_order_lines_order", "order_id", "position"),
    )

    order_id: Mapped[int] = mapped_column(BigId, nullable=False)
    position: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    # What was sold, for restocking; not foreign keys: the catalog may archive or delete it.
    article_id: Mapped[int | None] = mapped_column(BigId)
    variant_id: Mapped[int | None] = mapped_column(BigId)
    name: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    sku: Mapped[str] = mapped_column(sa.String(64), default="", nullable=False)
    unit_price: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    original_unit_price: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    override_reason: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)
    quantity: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    tax_category: Mapped[str] = mapped_column(sa.String(30), nullable=False)
    # [{"code", "amount"}] for the whole line
    taxes: Mapped[list[dict[str, Any]]] = mapped_column(JsonColumn, default=list, nullable=False)
    subtotal: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    tax_total: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)

    order: Mapped[Order] = relationship(
        primaryjoin="Order.id == foreign(OrderLine.order_id)", back_populates="lines"
    )

    @property
    def overridden(self) -> bool:
        return self.unit_price != self.original_unit_price


class Payment(TenantMixin, TimestampMixin, Model):
    """Money received (or being received) for an order. Never deleted; its amount never changes."""

    __tablename__ = "payments"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["order_id"], "orders"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("cash_tendered IS NULL OR cash_tendered >= amount", name="tendered"),
        sa.CheckConstraint("change_due >= 0", name="change_not_negative"),
        sa.Index("ix_payments_order", "order_id"),
        sa.Index("ix_payments_org_state", "organization_id", "state"),
    )

    order_id: Mapped[int] = mapped_column(BigId, nullable=False)
    method: Mapped[Method] = mapped_column(_enum(Method, "method"), nullable=False)
    state: Mapped[MoneyState] = mapped_column(_enum(MoneyState, "money_state"), nullable=False)
    amount: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(sa.String(3), nullable=False)
    reference: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    cash_tendered: Mapped[int | None] = mapped_column(sa.BigInteger)
    change_due: Mapped[int] = mapped_column(sa.BigInteger, default=0, nullable=False)
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # An outside system's id (a Stripe PaymentIntent) for methods that have one.
    provider_reference: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict, nullable=False)
    failure_message: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)
    # Set when the provider's figures disagree with ours (amount, currency, organization): the
    # payment does not count until a person has looked.
    review_reason: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)
    recorded_by_label: Mapped[str] = mapped_column(sa.String(254), default="", nullable=False)
    recorded_by_user_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=utcnow)


class Refund(TenantMixin, TimestampMixin, Model):
    """Money given back. Never deleted; its amount never changes."""

    __tablename__ = "refunds"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["order_id"], "orders"),
        tenant_foreign_key(["payment_id"], "payments"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.Index("ix_refunds_order", "order_id"),
    )

    order_id: Mapped[int] = mapped_column(BigId, nullable=False)
    # The payment given back, for methods that refund a particular payment (cards).
    payment_id: Mapped[int | None] = mapped_column(BigId)
    method: Mapped[Method] = mapped_column(_enum(Method, "method"), nullable=False)
    state: Mapped[MoneyState] = mapped_column(_enum(MoneyState, "money_state"), nullable=False)
    amount: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(sa.String(3), nullable=False)
    reason: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)
    reference: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    # [{"line_id", "quantity", "subtotal", "taxes": [{"code", "amount"}], "total"}]
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JsonColumn, default=list, nullable=False)
    restocked: Mapped[bool] = mapped_column(sa.Boolean, default=False, nullable=False)
    provider_reference: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict, nullable=False)
    recorded_by_label: Mapped[str] = mapped_column(sa.String(254), default="", nullable=False)
    recorded_by_user_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=utcnow)


class Invoice(TenantMixin, TimestampMixin, Model):
    """An order's invoice: one per order, numbered without gaps when the order is placed."""

    __tablename__ = "invoices"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["order_id"], "orders"),
        sa.UniqueConstraint("organization_id", "number", name="uq_invoices_org_number"),
        sa.UniqueConstraint("organization_id", "order_id", name="uq_invoices_org_order"),
    )

    order_id: Mapped[int] = mapped_column(BigId, nullable=False)
    number: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    locale: Mapped[str] = mapped_column(sa.String(5), nullable=False)
    # Where the PDF lives in the file storage; empty until the job has built it.
    pdf_key: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    pdf_generated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Bumped whenever the PDF must be built again (a payment changes "paid" and "balance").
    pdf_revision: Mapped[int] = mapped_column(sa.Integer, default=1, nullable=False)
    pdf_built_revision: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)

    order: Mapped[Order] = relationship(
        primaryjoin="Order.id == foreign(Invoice.order_id)", viewonly=True
    )

    @property
    def code(self) -> str:
        return f"F-{self.number}"


class CreditNote(TenantMixin, TimestampMixin, Model):
    """What a cancellation or a refund takes off an invoice; numbered in its own sequence."""

    __tablename__ = "credit_notes"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["order_id"], "orders"),
        tenant_foreign_key(["invoice_id"], "invoices"),
        tenant_foreign_key(["refund_id"], "refunds"),
        sa.UniqueConstraint("organization_id", "number", name="uq_credit_notes_org_number"),
        sa.CheckConstraint("total > 0", name="total_positive"),
        sa.Index("ix_credit_notes_order", "order_id"),
    )

    order_id: Mapped[int] = mapped_column(BigId, nullable=False)
    invoice_id: Mapped[int] = mapped_column(BigId, nullable=False)
    refund_id: Mapped[int | None] = mapped_column(BigId)
    number: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    kind: Mapped[str] = mapped_column(sa.String(20), nullable=False)  # "refund" | "cancellation"
    reason: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)
    locale: Mapped[str] = mapped_column(sa.String(5), nullable=False)
    # Per line credited: its order line, name, quantity, unit price, subtotal, taxes and total.
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JsonColumn, default=list, nullable=False)
    subtotal: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    taxes: Mapped[list[dict[str, Any]]] = mapped_column(JsonColumn, default=list, nullable=False)
    tax_total: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    pdf_key: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    pdf_generated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set when its e-mail (the cancellation or refund notice) was queued: it goes out once.
    mail_queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    invoice: Mapped[Invoice] = relationship(
        primaryjoin="Invoice.id == foreign(CreditNote.invoice_id)", viewonly=True
    )

    @property
    def code(self) -> str:
        return f"AV-{self.number}"


class IdempotencyKey(TenantMixin, TimestampMixin, Model):
    """A POST that created money records, remembered by its ``Idempotency-Key``.

    Written in the same transaction as the records, so the key exists exactly when they do.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = TenantMixin.tenant_table_args(
        sa.UniqueConstraint("organization_id", "key", name="uq_idempotency_keys_org_key"),
        sa.Index("ix_idempotency_keys_created", "created_at"),
    )

    key: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # SHA-256 of the method, the route and the canonical body.
    fingerprint: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    response_status: Mapped[int | None] = mapped_column(sa.Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JsonColumn)


BILLING_TENANT_TABLES = (
    "sequences",
    "orders",
    "order_lines",
    "payments",
    "refunds",
    "invoices",
    "credit_notes",
    "idempotency_keys",
)
