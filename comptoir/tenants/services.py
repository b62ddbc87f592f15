"""Services for organizations, people, staff, customers and API keys.

Each function takes explicit arguments (the organization, the actor, the objects), validates,
changes state, writes an audit entry and flushes. The caller (a view, a CLI command, a job)
commits once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _

from comptoir.platform import audit, mail
from comptoir.platform.audit import Actor
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from comptoir.platform.security import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    new_token,
    password_needs_rehash,
    token_hash,
    verify_password,
)
from comptoir.platform.settings import current_settings
from comptoir.platform.tenancy import tenant_scope, unscoped
from comptoir.tenants.models import (
    ApiKey,
    CustomDomain,
    Customer,
    Invitation,
    Locale,
    Membership,
    Organization,
    OrganizationStatus,
    PasswordResetToken,
    Role,
    User,
)
from comptoir.tenants.permissions import ROLE_LABELS, Permission, ensure, grantable_roles

INVITATION_LIFETIME = timedelta(days=7)
PASSWORD_RESET_LIFETIME = timedelta(hours=1)
API_KEY_PREFIX = "cpt"
# last_used_at is a hint for staff, not an audit: write it at most once a minute per key.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_SLUGS = frozenset(
    {"admin", "api", "static", "operators", "login", "logout", "webhooks", "o", "www", "_dev"}
)


def absolute_url(path: str) -> str:
    return current_settings().base_url.rstrip("/") + path


def normalize_email(email: str) -> str:
    """Validate an e-mail address and return it in its normalized form, or raise."""
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValidationError(
            _("Enter a valid e-mail address."),
            fields={"email": [_("Enter a valid e-mail address.")]},
        ) from None


def _required(value: str | None, field: str, label: str) -> str:
    cleaned = (value or "").strip()
    if not cleaned:
        message = _("%(label)s is required.", label=label)
        raise ValidationError(message, fields={field: [message]})
    return cleaned


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        message = _("Use at least %(count)d characters.", count=MIN_PASSWORD_LENGTH)
        raise ValidationError(message, fields={"password": [message]})


# --------------------------------------------------------------------------- organizations


@dataclass(frozen=True)
class NewOrganization:
    organization: Organization
    invitation: Invitation
    invitation_url: str


def create_organization(
    *,
    actor: Actor,
    slug: str,
    name: str,
    owner_email: str,
    locale: Locale | str = Locale.FR,
    currency: str = "CAD",
) -> NewOrganization:
    """Create an organization and invite its first owner by e-mail (operators, CLI)."""
    slug = slug.strip().lower()
    if not SLUG_PATTERN.match(slug) or slug in RESERVED_SLUGS:
        message = _("Use lowercase letters, digits and dashes (not a reserved word).")
        raise ValidationError(message, fields={"slug": [message]})
    name = _required(name, "name", _("Name"))
    owner_email = normalize_email(owner_email)
    with unscoped():
        taken = db.session.execute(
            sa.select(Organization.id).where(Organization.slug == slug)
        ).scalar_one_or_none()
    if taken is not None:
        message = _("This address is already taken.")
        raise ValidationError(message, fields={"slug": [message]})
    organization = Organization(
        slug=slug, name=name, default_locale=Locale(locale), currency=currency.upper()
    )
    db.session.add(organization)
    db.session.flush()
    with tenant_scope(organization.id):
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="organization.created",
            target=organization,
            after={"slug": slug, "name": name, "owner_email": owner_email},
        )
        invitation, url = invite_staff(
            organization=organization,
            actor=actor,
            email=owner_email,
            role=Role.OWNER,
            inviter_role=Role.OWNER,
        )
    return NewOrganization(organization=organization, invitation=invitation, invitation_url=url)


def _set_status(
    *, organization: Organization, actor: Actor, status: OrganizationStatus, reason: str | None
) -> Organization:
    if organization.status is status:
        return organization  # idempotent: suspending a suspended organization changes nothing
    before = {"status": organization.status.value}
    organization.status = status
    organization.suspended_reason = reason if status is OrganizationStatus.SUSPENDED else None
    with tenant_scope(organization.id):
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action=(
                "organization.suspended"
                if status is OrganizationStatus.SUSPENDED
                else "organization.reactivated"
            ),
            target=organization,
            before=before,
            after={"status": status.value, "reason": reason},
        )
        db.session.flush()
    return organization


def suspend_organization(*, organization: Organization, actor: Actor, reason: str) -> Organization:
    if not actor.is_operator:
        raise ForbiddenError(_("Only platform operators can suspend an organization."))
    return _set_status(
        organization=organization,
        actor=actor,
        status=OrganizationStatus.SUSPENDED,
        reason=_required(reason, "reason", _("Reason")),
    )


def reactivate_organization(*, organization: Organization, actor: Actor) -> Organization:
    if not actor.is_operator:
        raise ForbiddenError(_("Only platform operators can reactivate an organization."))
    return _set_status(
        organization=organization, actor=actor, status=OrganizationStatus.ACTIVE, reason=None
    )


HOST_PATTERN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def add_custom_domain(*, organization: Organization, actor: Actor, host: str) -> CustomDomain:
    """Serve the organization's microsite at ``https://<host>/`` (operators)."""
    if not actor.is_operator:
        raise ForbiddenError(_("Only platform operators can change custom domains."))
    host = (host or "").strip().lower().rstrip(".")
    platform_host = (urlsplit(current_settings().base_url).hostname or "").lower()
    if not HOST_PATTERN.match(host) or host == platform_host:
        message = _("Enter a host name such as boutique.example.org.")
        raise ValidationError(message, fields={"host": [message]})
    with unscoped():
        taken = db.session.execute(
            sa.select(CustomDomain.id).where(CustomDomain.host == host)
        ).scalar_one_or_none()
    if taken is not None:
        message = _("This host name is already in use.")
        raise ValidationError(message, fields={"host": [message]})
    domain = CustomDomain(host=host, organization_id=organization.id)
    db.session.add(domain)
    db.session.flush()
    with tenant_scope(organization.id):
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="custom_domain.added",
            target=domain,
            after={"host": host},
        )
        db.session.flush()
    return domain


def remove_custom_domain(*, organization: Organization, actor: Actor, domain: CustomDomain) -> None:
    if not actor.is_operator:
        raise ForbiddenError(_("Only platform operators can change custom domains."))
    if domain.organization_id != organization.id:
        raise NotFoundError(_("Custom domain not found."))
    with tenant_scope(organization.id):
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="custom_domain.removed",
            target=domain,
            before={"host": domain.host},
        )
        db.session.delete(domain)
        db.session.flush()


# --------------------------------------------------------------------------- application fee

MAX_FEE_BASIS_POINTS = 10_000  # 100 %
# A fixed part above this is a typing mistake (minor units: 1 000 000 is 10 000.00).
MAX_FEE_FIXED = 1_000_000
WHOLE_NUMBER_PATTERN = re.compile(r"-?[0-9]{1,11}")
APPLICATION_FEE_FIELDS = (
    "application_fee_basis_points",
    "application_fee_fixed",
    "refund_application_fee",
)


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value if value is not None else "").strip()
    return int(text) if WHOLE_NUMBER_PATTERN.fullmatch(text) else None


def set_application_fee(
    *,
    organization: Organization,
    actor: Actor,
    basis_points: Any,
    fixed: Any,
    refund_application_fee: bool,
) -> Organization:
    """The platform's fee on each card payment of the organization (operators only): a
    percentage in basis points (150 = 1.5 %) plus a fixed amount in minor units; and whether a
    refund gives back the fee's share of what is refunded."""
    if not actor.is_operator:
        raise ForbiddenError(_("Only platform operators can change the application fee."))
    errors: dict[str, list[str]] = {}
    points = _whole_number(basis_points)
    if points is None or not 0 <= points <= MAX_FEE_BASIS_POINTS:
        errors["application_fee_basis_points"] = [
            _(
                "Enter a whole number of basis points from 0 to %(max)d (150 is 1.5 %%).",
                max=MAX_FEE_BASIS_POINTS,
            )
        ]
    amount = _whole_number(fixed)
    if amount is None or not 0 <= amount <= MAX_FEE_FIXED:
        errors["application_fee_fixed"] = [
            _(
                "Enter a whole number of cents from 0 to %(max)d (50 is 0.50).",
                max=MAX_FEE_FIXED,
            )
        ]
    if errors:
        raise ValidationError(_("Check the application fee."), fields=errors)
    assert points is not None
    assert amount is not None
    before = audit.snapshot(organization, APPLICATION_FEE_FIELDS)
    organization.application_fee_basis_points = points
    organization.application_fee_fixed = amount
    organization.refund_application_fee = bool(refund_application_fee)
    after = audit.snapshot(organization, APPLICATION_FEE_FIELDS)
    if after != before:
        with tenant_scope(organization.id):
            audit.record(
                organization_id=organization.id,
                actor=actor,
                action="organization.application_fee_changed",
                target=organization,
                before=before,
                after=after,
            )
            db.session.flush()
    return organization


# --------------------------------------------------------------------------- users and sign-in


def find_user_by_email(email: str) -> User | None:
    return db.session.execute(
        sa.select(User).where(User.email == email.strip().lower())
    ).scalar_one_or_none()


def create_operator(*, email: str, password: str, full_name: str = "") -> User:
    email = normalize_email(email).lower()
    validate_password(password)
    user = find_user_by_email(email)
    if user is None:
        user = User(email=email, full_name=full_name.strip())
        db.session.add(user)
    user.is_operator = True
    user.password_hash = hash_password(password)
    db.session.flush()
    return user


def authenticate(email: str, password: str) -> User | None:
    """The user for these credentials, or None; the same cost whether or not the e-mail exists."""
    user = find_user_by_email(email)
    valid = verify_password(user.password_hash if user else None, password)
    if user is None or not valid or not user.active:
        return None
    assert user.password_hash is not None
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    db.session.flush()
    return user


def request_password_reset(*, email: str, locale: str) -> None:
    """E-mail a single-use reset link when the account exists; say nothing either way."""
    user = find_user_by_email(email)
    if user is None or not user.active:
        return
    token = new_token()
    db.session.add(
        PasswordResetToken(
            user_id=user.id,
            token_hash=token_hash(token),
            expires_at=utcnow() + PASSWORD_RESET_LIFETIME,
        )
    )
    db.session.flush()
    mail.queue_mail(
        to=user.email,
        template="password_reset",
        context={
            "name": user.display_name,
            "url": absolute_url(f"/password/reset/{token}"),
            "hours": int(PASSWORD_RESET_LIFETIME.total_seconds() // 3600),
        },
        locale=str(user.locale or locale),
    )


def _valid_reset_token(token: str) -> PasswordResetToken:
    row = db.session.execute(
        sa.select(PasswordResetToken)
        .where(PasswordResetToken.token_hash == token_hash(token))
        .with_for_update()
    ).scalar_one_or_none()
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise ValidationError(
            _("This reset link has expired or was already used. Ask for a new one.")
        )
    return row


def check_password_reset_token(token: str) -> None:
    _valid_reset_token(token)


def reset_password(*, token: str, password: str) -> User:
    row = _valid_reset_token(token)
    validate_password(password)
    user = row.user
    user.password_hash = hash_password(password)
    user.session_version += 1  # signs out every other session of this user
    row.used_at = utcnow()
    db.session.flush()
    return user


# --------------------------------------------------------------------------- staff


def memberships_of(user: User) -> list[Membership]:
    """Every organization a user is staff of (their own rows across organizations)."""
    with unscoped():
        return list(
            db.session.execute(
                sa.select(Membership)
                .where(Membership.user_id == user.id)
                .options(sa.orm.joinedload(Membership.organization))
            ).scalars()
        )


def list_staff(*, organization: Organization) -> list[Membership]:
    return list(
        db.session.execute(
            sa.select(Membership)
            .where(Membership.organization_id == organization.id)
            .join(User)
            .order_by(User.email)
        ).scalars()
    )


def pending_invitations(*, organization: Organization) -> list[Invitation]:
    return list(
        db.session.execute(
            sa.select(Invitation)
            .where(
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .order_by(Invitation.created_at.desc())
        ).scalars()
    )


def _membership_for(actor: Actor) -> Membership | None:
    if actor.user_id is None:
        return None
    return db.session.execute(
        sa.select(Membership).where(Membership.user_id == actor.user_id)
    ).scalar_one_or_none()


def invite_staff(
    *,
    organization: Organization,
    actor: Actor,
    email: str,
    role: Role | str,
    inviter_role: Role | str | None = None,
) -> tuple[Invitation, str]:
    """Invite someone to the staff; returns the invitation and its (secret) link."""
    inviter_role = inviter_role or actor.role
    ensure(inviter_role, Permission.MANAGE_STAFF)
    role = Role(role)
    if role not in grantable_roles(inviter_role):
        message = _("You cannot give this role.")
        raise ValidationError(message, fields={"role": [message]})
    email = normalize_email(email).lower()
    existing_user = find_user_by_email(email)
    if existing_user is not None:
        already = db.session.execute(
            sa.select(Membership.id).where(Membership.user_id == existing_user.id)
        ).scalar_one_or_none()
        if already is not None:
            message = _("This person is already on the staff.")
            raise ValidationError(message, fields={"email": [message]})
    # A new invitation replaces a pending one for the same address.
    for previous in db.session.execute(
        sa.select(Invitation).where(
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    ).scalars():
        previous.revoked_at = utcnow()
    token = new_token()
    inviter = _membership_for(actor)
    invitation = Invitation(
        organization_id=organization.id,
        email=email,
        role=role,
        token_hash=token_hash(token),
        invited_by_membership_id=inviter.id if inviter else None,
        expires_at=utcnow() + INVITATION_LIFETIME,
    )
    db.session.add(invitation)
    db.session.flush()
    url = absolute_url(f"/invitations/{token}")
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="staff.invited",
        target=invitation,
        after={"email": email, "role": role.value},
    )
    mail.queue_mail(
        to=email,
        template="invitation",
        context={
            "organization_name": organization.name,
            "inviter": actor.label,
            "role": ROLE_LABELS[role],
            "url": url,
            "days": INVITATION_LIFETIME.days,
        },
        locale=organization.default_locale.value,
    )
    return invitation, url


def find_invitation(token: str) -> Invitation:
    """The pending invitation behind a link (looked up across organizations by its secret)."""
    with unscoped():
        invitation = db.session.execute(
            sa.select(Invitation)
            .where(Invitation.token_hash == token_hash(token))
            .options(sa.orm.joinedload(Invitation.organization))
        ).scalar_one_or_none()
    if (
        invitation is None
        or invitation.accepted_at is not None
        or invitation.revoked_at is not None
        or invitation.expires_at <= utcnow()
    ):
        raise ValidationError(
            _("This invitation has expired or was already used. Ask for a new one.")
        )
    return invitation


def accept_invitation(
    *,
    token: str,
    user: User | None = None,
    full_name: str = "",
    password: str = "",
) -> Membership:
    """Join the organization: as the signed-in ``user``, or as a new account with a password.

    The caller has entered the invitation's organization scope.
    """
    invitation = find_invitation(token)
    if user is None:
        existing = find_user_by_email(invitation.email)
        if existing is not None:
            raise ValidationError(
                _("An account with this e-mail exists: sign in first, then open the link again.")
            )
        validate_password(password)
        user = User(
            email=invitation.email,
            full_name=_required(full_name, "full_name", _("Full name")),
            password_hash=hash_password(password),
        )
        db.session.add(user)
        db.session.flush()
    elif user.email != invitation.email:
        raise ForbiddenError(_("This invitation was sent to another e-mail address."))
    already = db.session.execute(
        sa.select(Membership).where(Membership.user_id == user.id)
    ).scalar_one_or_none()
    if already is not None:
        invitation.accepted_at = utcnow()
        return already
    membership = Membership(
        organization_id=invitation.organization_id, user_id=user.id, role=invitation.role
    )
    db.session.add(membership)
    invitation.accepted_at = utcnow()
    db.session.flush()
    audit.record(
        organization_id=invitation.organization_id,
        actor=Actor(label=user.email, user_id=user.id, role=invitation.role.value),
        action="staff.joined",
        target=membership,
        after={"email": user.email, "role": invitation.role.value},
    )
    return membership


def revoke_invitation(*, organization: Organization, actor: Actor, invitation: Invitation) -> None:
    ensure(actor.role, Permission.MANAGE_STAFF)
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = utcnow()
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="staff.invitation_revoked",
            target=invitation,
            before={"email": invitation.email},
        )
        db.session.flush()


def _owner_count() -> int:
    return int(
        db.session.execute(
            sa.select(sa.func.count(Membership.id)).where(Membership.role == Role.OWNER)
        ).scalar_one()
    )


def change_role(
    *, organization: Organization, actor: Actor, membership: Membership, role: Role | str
) -> Membership:
    ensure(actor.role, Permission.MANAGE_STAFF)
    role = Role(role)
    allowed = grantable_roles(actor.role)
    if role not in allowed or membership.role not in allowed:
        raise ForbiddenError(_("You cannot change this person's role."))
    if membership.role is role:
        return membership
    if membership.role is Role.OWNER and _owner_count() <= 1:
        raise ConflictError(_("The organization needs at least one owner."))
    before = {"role": membership.role.value}
    membership.role = role
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="staff.role_changed",
        target=membership,
        before=before,
        after={"role": role.value, "email": membership.user.email},
    )
    db.session.flush()
    return membership


def remove_member(*, organization: Organization, actor: Actor, membership: Membership) -> None:
    ensure(actor.role, Permission.MANAGE_STAFF)
    if membership.role not in grantable_roles(actor.role):
        raise ForbiddenError(_("You cannot remove this person."))
    if membership.role is Role.OWNER and _owner_count() <= 1:
        raise ConflictError(_("The organization needs at least one owner."))
    # Keys and invitations stay the organization's; only the link to their author goes.
    db.session.execute(
        sa.update(ApiKey)
        .where(ApiKey.created_by_membership_id == membership.id)
        .values(created_by_membership_id=None)
    )
    db.session.execute(
        sa.update(Invitation)
        .where(Invitation.invited_by_membership_id == membership.id)
        .values(invited_by_membership_id=None)
    )
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="staff.removed",
        target=membership,
        before={"email": membership.user.email, "role": membership.role.value},
    )
    db.session.delete(membership)
    db.session.flush()


# --------------------------------------------------------------------------- customers

CUSTOMER_FIELDS = ("first_name", "last_name", "email", "phone")


def _clean_customer(values: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    for field, label in (("first_name", _("First name")), ("last_name", _("Last name"))):
        if field in values:
            value = (values[field] or "").strip()
            if not value:
                errors[field] = [_("%(label)s is required.", label=label)]
            elif len(value) > 100:
                errors[field] = [_("Use at most %(count)d characters.", count=100)]
            cleaned[field] = value
    if "email" in values:
        try:
            cleaned["email"] = normalize_email(values["email"] or "")
        except ValidationError as error:
            errors.update(error.fields)
    if "phone" in values:
        phone = (values["phone"] or "").strip()
        if phone and not re.fullmatch(r"[0-9+().\- ]{7,40}", phone):
            errors["phone"] = [_("Enter a phone number (digits, spaces, + - ( ) .).")]
        cleaned["phone"] = phone
    if errors:
        raise ValidationError(_("Some fields are not valid."), fields=errors)
    return cleaned


def _ensure_unique_customer_email(email: str, *, excluding: int | None = None) -> None:
    query = sa.select(Customer.id).where(Customer.email_normalized == email.lower())
    if excluding is not None:
        query = query.where(Customer.id != excluding)
    if db.session.execute(query).first() is not None:
        message = _("A customer with this e-mail already exists.")
        raise ValidationError(message, fields={"email": [message]})


def create_customer(
    *,
    organization: Organization,
    actor: Actor,
    first_name: str,
    last_name: str,
    email: str,
    phone: str = "",
) -> Customer:
    ensure(actor.role, Permission.MANAGE_CUSTOMERS)
    values = _clean_customer(
        {"first_name": first_name, "last_name": last_name, "email": email, "phone": phone}
    )
    _ensure_unique_customer_email(values["email"])
    customer = Customer(
        organization_id=organization.id, email_normalized=values["email"].lower(), **values
    )
    db.session.add(customer)
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="customer.created",
        target=customer,
        after=values,
    )
    return customer


def update_customer(
    *, organization: Organization, actor: Actor, customer: Customer, changes: dict[str, Any]
) -> Customer:
    ensure(actor.role, Permission.MANAGE_CUSTOMERS)
    unknown = set(changes) - set(CUSTOMER_FIELDS)
    if unknown:
        raise ValidationError(
            _("Some fields are not valid."),
            fields={name: [_("Unknown field.")] for name in sorted(unknown)},
        )
    values = _clean_customer(changes)
    if "email" in values:
        _ensure_unique_customer_email(values["email"], excluding=customer.id)
    before = audit.snapshot(customer, CUSTOMER_FIELDS)
    for field, value in values.items():
        setattr(customer, field, value)
    if "email" in values:
        customer.email_normalized = values["email"].lower()
    customer.updated_at = utcnow()
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="customer.updated",
        target=customer,
        before=before,
        after=audit.snapshot(customer, CUSTOMER_FIELDS),
    )
    return customer


def find_or_create_customer(
    *,
    organization: Organization,
    actor: Actor,
    first_name: str,
    last_name: str,
    email: str,
    phone: str = "",
) -> Customer:
    """The customer with this e-mail address, else a new one: how a checkout names its buyer.

    Customers capture themselves at checkout, so no staff permission is asked; an existing
    customer's details are left as they are (the order keeps what was typed). Two checkouts
    creating the same new customer at once end with one row.
    """
    values = _clean_customer(
        {"first_name": first_name, "last_name": last_name, "email": email, "phone": phone}
    )
    query = sa.select(Customer).where(Customer.email_normalized == values["email"].lower())
    existing = db.session.execute(query).scalar_one_or_none()
    if existing is not None:
        return existing
    try:
        with db.session.begin_nested():
            customer = Customer(
                organization_id=organization.id, email_normalized=values["email"].lower(), **values
            )
            db.session.add(customer)
            db.session.flush()
    except sa.exc.IntegrityError:
        return db.session.execute(query).scalar_one()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="customer.created",
        target=customer,
        after={**values, "source": "checkout"},
    )
    return customer


def get_customer(customer_id: int) -> Customer:
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError(_("Customer not found."))
    return customer


def search_customers_query(q: str | None = None) -> sa.Select[Any]:
    """Customers of the organization in scope matching ``q`` (name, e-mail or phone)."""
    query = sa.select(Customer).order_by(Customer.last_name, Customer.first_name, Customer.id)
    terms = (q or "").strip().split()
    for term in terms[:5]:
        like = f"%{term.lower()}%"
        digits = re.sub(r"\D", "", term)
        conditions = [
            sa.func.lower(Customer.first_name).like(like),
            sa.func.lower(Customer.last_name).like(like),
            Customer.email_normalized.like(like),
        ]
        if len(digits) >= 3:
            # Phones are typed in many shapes: compare digits only.
            conditions.append(
                sa.func.regexp_replace(Customer.phone, "[^0-9]", "", "g").like(f"%{digits}%")
                if db.engine.dialect.name == "postgresql"
                else Customer.phone.like(f"%{term}%")
            )
        query = query.where(sa.or_(*conditions))
    return query


# --------------------------------------------------------------------------- API keys


def create_api_key(
    *, organization: Organization, actor: Actor, name: str, role: Role | str
) -> tuple[ApiKey, str]:
    """Create a key; returns it with its plaintext, which is shown once and never stored."""
    ensure(actor.role, Permission.MANAGE_API_KEYS)
    role = Role(role)
    if actor.role is not None and role not in grantable_roles(actor.role):
        message = _("You cannot give this role.")
        raise ValidationError(message, fields={"role": [message]})
    name = _required(name, "name", _("Name"))
    prefix = new_token(6)[:8].replace("-", "a").replace("_", "b")
    secret = new_token(32)
    inviter = _membership_for(actor)
    key = ApiKey(
        organization_id=organization.id,
        name=name,
        prefix=prefix,
        secret_hash=token_hash(secret),
        role=role,
        created_by_membership_id=inviter.id if inviter else None,
    )
    db.session.add(key)
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="api_key.created",
        target=key,
        after={"name": name, "role": role.value, "prefix": prefix},
    )
    return key, f"{API_KEY_PREFIX}_{prefix}_{secret}"


def revoke_api_key(*, organization: Organization, actor: Actor, key: ApiKey) -> ApiKey:
    ensure(actor.role, Permission.MANAGE_API_KEYS)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="api_key.revoked",
            target=key,
            before={"name": key.name, "prefix": key.prefix},
        )
        db.session.flush()
    return key


def authenticate_api_key(organization: Organization, presented: str) -> ApiKey | None:
    """The live key of ``organization`` matching a bearer token, or None."""
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    _scheme, prefix, secret = parts
    key = db.session.execute(
        sa.select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.organization_id == organization.id)
    ).scalar_one_or_none()
    if key is None or key.is_revoked:
        return None
    from comptoir.platform.security import constant_time_equals

    if not constant_time_equals(key.secret_hash, token_hash(secret)):
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > API_KEY_TOUCH_INTERVAL:
        key.last_used_at = now
    return key
