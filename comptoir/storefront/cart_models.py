"""Carts, their lines, and the stock holds that keep a cart's units for it until it expires.

A cart belongs to one shop and is reached by an unguessable token (only its hash is stored) or
by staff of the organization. Each line holds its units with one :class:`StockHold` row that
carries the cart's expiry: availability counts a hold only while ``expires_at`` is in the future,
so an expired cart frees its stock at once, whether or not the sweep has deleted the row yet.
Lines stay when their holds go, so that a customer whose cart expired sees what they had.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from comptoir.platform.db import (
    BigId,
    Model,
    TenantMixin,
    TimestampMixin,
    UtcDateTime,
    tenant_foreign_key,
    utcnow,
)


class CartStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CHECKED_OUT = "checked_out"


_CART_STATUS = sa.Enum(
    CartStatus,
    name="cart_status",
    native_enum=False,
    create_constraint=True,
    length=20,
    values_callable=lambda members: [m.value for m in members],
    validate_strings=True,
)


class Cart(TenantMixin, TimestampMixin, Model):
    __tablename__ = "carts"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["shop_id"], "shops", ondelete="CASCADE"),
        tenant_foreign_key(["customer_id"], "customers"),
        sa.CheckConstraint("renewals >= 0", name="renewals_not_negative"),
        # The sweep looks for active carts whose time is up.
        sa.Index("ix_carts_status_expires_at", "status", "expires_at"),
    )

    shop_id: Mapped[int] = mapped_column(BigId, nullable=False)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    status: Mapped[CartStatus] = mapped_column(
        _CART_STATUS, default=CartStatus.ACTIVE, nullable=False
    )
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    renewals: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)
    # The customer's language (invoices are written in it), kept from their last visit.
    locale: Mapped[str] = mapped_column(sa.String(2), default="fr", nullable=False)
    currency: Mapped[str] = mapped_column(sa.String(3), default="CAD", nullable=False)
    # Known once the checkout form names the customer, or when staff buy on their behalf.
    customer_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=utcnow)

    lines: Mapped[list[CartLine]] = relationship(
        primaryjoin="Cart.id == foreign(CartLine.cart_id)",
        order_by="CartLine.id",
        cascade="all, delete-orphan",
        back_populates="cart",
    )

    def __repr__(self) -> str:
        return f"<Cart {self.id} {self.status.value}>"


class CartLine(TenantMixin, TimestampMixin, Model):
    __tablename__ = "cart_lines"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["cart_id"], "carts", ondelete="CASCADE"),
        tenant_foreign_key(["article_id"], "articles", ondelete="CASCADE"),
        tenant_foreign_key(["variant_id"], "article_variants", ondelete="CASCADE"),
        sa.CheckConstraint("quantity >= 1", name="quantity_positive"),
        sa.CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        sa.CheckConstraint("original_unit_price >= 0", name="original_unit_price_not_negative"),
        # One line per stock unit in a cart: adding the same unit again raises its quantity.
        sa.Index(
            "uq_cart_lines_cart_unit",
            "cart_id",
            "article_id",
            sa.text("COALESCE(variant_id, 0)"),
            unique=True,
        ),
    )

    cart_id: Mapped[int] = mapped_column(BigId, nullable=False)
    article_id: Mapped[int] = mapped_column(BigId, nullable=False)
    variant_id: Mapped[int | None] = mapped_column(BigId)
    quantity: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # What the customer pays per unit (minor units, before tax): the catalog price, or staff's.
    unit_price: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # The catalog price when the line was added; invoices show the difference as a discount.
    original_unit_price: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    price_override_reason: Mapped[str | None] = mapped_column(sa.Text)

    cart: Mapped[Cart] = relationship(
        primaryjoin="Cart.id == foreign(CartLine.cart_id)", back_populates="lines"
    )
    article = relationship(
        "Article", primaryjoin="Article.id == foreign(CartLine.article_id)", viewonly=True
    )
    variant = relationship(
        "ArticleVariant",
        primaryjoin="ArticleVariant.id == foreign(CartLine.variant_id)",
        viewonly=True,
    )

    @property
    def total(self) -> int:
        return self.unit_price * self.quantity

    @property
    def is_overridden(self) -> bool:
        return self.unit_price != self.original_unit_price or bool(self.price_override_reason)


class StockHold(TenantMixin, Model):
    """Units of one stock unit (an article, or one variant) kept for a cart line until expiry."""

    __tablename__ = "stock_holds"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["cart_id"], "carts", ondelete="CASCADE"),
        tenant_foreign_key(["cart_line_id"], "cart_lines", ondelete="CASCADE"),
        sa.UniqueConstraint("cart_line_id", name="uq_stock_holds_cart_line"),
        sa.CheckConstraint("quantity >= 1", name="quantity_positive"),
        # SUM(quantity) per stock unit WHERE expires_at > now: answered from the index alone.
        sa.Index(
            "ix_stock_holds_unit",
            "article_id",
            "variant_id",
            "expires_at",
            postgresql_include=["quantity", "organization_id"],
        ),
        sa.Index("ix_stock_holds_expires_at", "expires_at"),
        sa.Index("ix_stock_holds_cart", "cart_id"),
    )

    cart_id: Mapped[int] = mapped_column(BigId, nullable=False)
    cart_line_id: Mapped[int] = mapped_column(BigId, nullable=False)
    # Copies of the line's unit (no foreign keys: the line has them, and the hot path stays lean).
    article_id: Mapped[int] = mapped_column(BigId, nullable=False)
    variant_id: Mapped[int | None] = mapped_column(BigId)
    quantity: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
