"""Organizations, people and their roles, and each organization's customer database."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from comptoir.platform.db import (
    BigId,
    IdMixin,
    Model,
    TenantMixin,
    TimestampMixin,
    UtcDateTime,
    tenant_foreign_key,
)


class OrganizationStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Locale(StrEnum):
    FR = "fr"
    EN = "en"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    ATTENDANT = "attendant"


def _enum(enum_class: type[StrEnum], name: str) -> sa.Enum:
    # Stored as text with a CHECK constraint: adding a value is a migration, not a type change.
    return sa.Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Organization(IdMixin, TimestampMixin, Model):
    """The tenant itself: not a tenant row, it is what tenant rows point at."""

    __tablename__ = "organizations"

    slug: Mapped[str] = mapped_column(sa.String(63), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    status: Mapped[OrganizationStatus] = mapped_column(
        _enum(OrganizationStatus, "organization_status"),
        default=OrganizationStatus.ACTIVE,
        nullable=False,
    )
    suspended_reason: Mapped[str | None] = mapped_column(sa.Text)
    default_locale: Mapped[Locale] = mapped_column(
        _enum(Locale, "locale"), default=Locale.FR, nullable=False
    )
    currency: Mapped[str] = mapped_column(sa.String(3), default="CAD", nullable=False)
    timezone: Mapped[str] = mapped_column(sa.String(64), default="America/Toronto", nullable=False)
    address_line1: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    address_line2: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    city: Mapped[str] = mapped_column(sa.String(100), default="", nullable=False)
    province: Mapped[str] = mapped_column(sa.String(2), default="QC", nullable=False)
    postal_code: Mapped[str] = mapped_column(sa.String(10), default="", nullable=False)
    country: Mapped[str] = mapped_column(sa.String(2), default="CA", nullable=False)
    email: Mapped[str] = mapped_column(sa.String(254), default="", nullable=False)
    phone: Mapped[str] = mapped_column(sa.String(40), default="", nullable=False)
    # Registration numbers printed on invoices (GST/HST, QST, PST).
    gst_hst_number: Mapped[str] = mapped_column(sa.String(40), default="", nullable=False)
    qst_number: Mapped[str] = mapped_column(sa.String(40), default="", nullable=False)
    pst_number: Mapped[str] = mapped_column(sa.String(40), default="", nullable=False)
    # Owners and admins may always change a price in a cart; attendants only when this is on.
    attendant_can_override_prices: Mapped[bool] = mapped_column(
        sa.Boolean, default=False, nullable=False
    )
    # The platform's application fee on each card payment, set by operators: a percentage in
    # basis points (150 = 1.5 %) plus a fixed amount in minor units.
    application_fee_basis_points: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)
    application_fee_fixed: Mapped[int] = mapped_column(sa.Integer, default=0, nullable=False)
    # Whether a refund also gives back the platform's fee on the refunded part (operator setting).
    refund_application_fee: Mapped[bool] = mapped_column(sa.Boolean, default=False, nullable=False)

    @property
    def is_active(self) -> bool:
        return self.status is OrganizationStatus.ACTIVE

    def __repr__(self) -> str:
        return f"<Organization {self.slug}>"


class CustomDomain(IdMixin, TimestampMixin, Model):
    """A host name that serves one organization's microsite at ``/``.

    Looked up before any organization is known, so it is a platform table.
    """

    __tablename__ = "custom_domains"

    host: Mapped[str] = mapped_column(sa.String(253), unique=True, nullable=False)
    organization_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    organization: Mapped[Organization] = relationship()


class User(IdMixin, TimestampMixin, UserMixin, Model):
    """A person who signs in: staff of one or more organizations, or a platform operator."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(sa.String(254), unique=True, nullable=False)
    full_name: Mapped[str] = mapped_column(sa.String(200), default="", nullable=False)
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    is_operator: Mapped[bool] = mapped_column(sa.Boolean, default=False, nullable=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True, nullable=False)
    locale: Mapped[Locale | None] = mapped_column(_enum(Locale, "locale"))
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Bumped on password change so that other sessions of this user end (Flask-Login's id).
    session_version: Mapped[int] = mapped_column(sa.Integer, default=1, nullable=False)

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def display_name(self) -> str:
        return self.full_name or self.email

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class PasswordResetToken(IdMixin, TimestampMixin, Model):
    __tablename__ = "password_reset_tokens"

    user_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship()


class Membership(TenantMixin, TimestampMixin, Model):
    __tablename__ = "memberships"
    __table_args__ = TenantMixin.tenant_table_args(
        sa.UniqueConstraint("organization_id", "user_id", name="uq_memberships_org_user"),
    )

    user_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), nullable=False)

    user: Mapped[User] = relationship(lazy="joined")
    organization = relationship(Organization)


class Invitation(TenantMixin, TimestampMixin, Model):
    """A staff invitation sent by e-mail; accepting it creates the membership."""

    __tablename__ = "invitations"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["invited_by_membership_id"], "memberships"),
    )

    email: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), nullable=False)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    invited_by_membership_id: Mapped[int | None] = mapped_column(BigId)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    organization = relationship(Organization)


class Customer(TenantMixin, TimestampMixin, Model):
    """An account owner in the organization's customer database."""

    __tablename__ = "customers"
    __table_args__ = TenantMixin.tenant_table_args(
        sa.Index("uq_customers_org_email", "organization_id", "email_normalized", unique=True),
    )

    first_name: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    last_name: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    email: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    # Lower-cased copy: one customer per e-mail per organization, whatever the case typed.
    email_normalized: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    phone: Mapped[str] = mapped_column(sa.String(40), default="", nullable=False)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ApiKey(TenantMixin, TimestampMixin, Model):
    """A bearer key for the JSON API. Only a hash of the secret is kept."""

    __tablename__ = "api_keys"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["created_by_membership_id"], "memberships"),
    )

    name: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    # The public part of the key, used to find the row; the secret part is only hashed.
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True, nullable=False)
    secret_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), nullable=False)
    created_by_membership_id: Mapped[int | None] = mapped_column(BigId)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
