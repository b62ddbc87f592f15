"""What Comptoir keeps about Stripe: each organization's connected account, the events Stripe
sent, and the Terminal readers registered on the organization's account.

Stripe stays the source of truth for its own objects; these rows are what we need to find an
organization from an event, to show state without a round trip, and to never process an event
twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

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


class StripeAccount(TenantMixin, TimestampMixin, Model):
    """The organization's connected account (a Standard account, direct charges).

    One per organization. Disconnecting deletes the row (the audit trail keeps its history); the
    account itself stays the organization's at Stripe.
    """

    __tablename__ = "stripe_accounts"
    __table_args__ = TenantMixin.tenant_table_args(
        sa.UniqueConstraint("organization_id", name="uq_stripe_accounts_organization"),
        sa.UniqueConstraint("account_id", name="uq_stripe_accounts_account"),
    )

    account_id: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    details_submitted: Mapped[bool] = mapped_column(sa.Boolean, default=False, nullable=False)
    charges_enabled: Mapped[bool] = mapped_column(sa.Boolean, default=False, nullable=False)
    payouts_enabled: Mapped[bool] = mapped_column(sa.Boolean, default=False, nullable=False)
    requirements_due: Mapped[list[str]] = mapped_column(JsonColumn, default=list, nullable=False)
    disabled_reason: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    # Where readers are registered: created on the account with the organization's address.
    terminal_location_id: Mapped[str] = mapped_column(sa.String(255), default="", nullable=False)
    # Stripe's ``created`` of the newest account.updated applied: older news never wins.
    synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When the reconciliation sweep last asked Stripe for this account's undelivered events: the
    # next run asks from there (less a margin), not from the beginning.
    reconciled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=utcnow)


class EventState(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    # For an account no organization owns, or a type nothing handles: kept, logged, not acted on.
    IGNORED = "ignored"
    FAILED = "failed"


class StripeEvent(Model):
    """An event Stripe sent (or the reconciliation sweep fetched), stored once by its id.

    A platform table: an event may name an account no organization owns, and it is stored before
    anyone knows whose it is. ``organization_id`` is filled when the account is known.
    """

    __tablename__ = "stripe_events"
    __table_args__ = (
        sa.Index("ix_stripe_events_state", "state", "received_at"),
        sa.Index("ix_stripe_events_organization", "organization_id", "received_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    account_id: Mapped[str] = mapped_column(sa.String(255), default="", nullable=False)
    organization_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("organizations.id", ondelete="SET NULL")
    )
    # Stripe's own time of the event (unix seconds): orders news about one object.
    created: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    livemode: Mapped[bool] = mapped_column(sa.Boolean, default=False, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict, nullable=False)
    # "webhook" or "reconciliation": how it reached us.
    source: Mapped[str] = mapped_column(sa.String(20), default="webhook", nullable=False)
    state: Mapped[str] = mapped_column(sa.String(20), default=EventState.RECEIVED, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)
    last_error: Mapped[str] = mapped_column(sa.Text, default="", nullable=False)


class TerminalReader(TenantMixin, TimestampMixin, Model):
    """A Stripe Terminal reader registered on the organization's account.

    ``payment_id`` is the payment the reader is working on, so a second cashier cannot send
    another payment to a busy reader and a reader's events find their payment.
    """

    __tablename__ = "terminal_readers"
    __table_args__ = TenantMixin.tenant_table_args(
        sa.UniqueConstraint("reader_id", name="uq_terminal_readers_reader"),
        tenant_foreign_key(["payment_id"], "payments"),
        tenant_foreign_key(["refund_id"], "refunds"),
    )

    reader_id: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    label: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    location_id: Mapped[str] = mapped_column(sa.String(255), default="", nullable=False)
    device_type: Mapped[str] = mapped_column(sa.String(50), default="", nullable=False)
    serial_number: Mapped[str] = mapped_column(sa.String(100), default="", nullable=False)
    status: Mapped[str] = mapped_column(sa.String(20), default="", nullable=False)
    # The reader's current action as the last event or poll told it: type, status, failure.
    action: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict, nullable=False)
    payment_id: Mapped[int | None] = mapped_column(BigId)
    refund_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=utcnow)


__all__ = ["EventState", "StripeAccount", "StripeEvent", "TerminalReader"]
