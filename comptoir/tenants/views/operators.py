"""The operator console: organizations, their staff, their audit trail; suspend and reactivate.

Every view runs across organizations (``operator_required`` enters the unscoped context), so the
tenancy guard adds no filter here: each query on a tenant table names its organization itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length
from wtforms.validators import ValidationError as WTFormsValidationError

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import DomainError
from comptoir.tenants import services
from comptoir.tenants.context import current_actor
from comptoir.tenants.guards import operator_required
from comptoir.tenants.models import (
    CustomDomain,
    Invitation,
    Membership,
    Organization,
    OrganizationStatus,
    Role,
    User,
)
from comptoir.tenants.permissions import ROLE_LABELS

blueprint = Blueprint("tenants_operators", __name__, template_folder="../templates")

PAGE_SIZE = 50
AUDIT_ENTRIES = 50
CURRENCIES = ("CAD", "USD", "EUR")


# Every domain's operator page, in sidebar order; pages of domains not mounted are left out.
_SECTIONS = (
    ("organizations", _l("Organizations"), "tenants_operators.index"),
    ("payments", _l("Payments"), "billing_operators.index"),
    ("webhooks", _l("Webhooks"), "billing_operators.webhooks"),
    ("jobs", _l("Jobs"), "jobs_operators.index"),
)


@dataclass(frozen=True)
class Section:
    key: str
    label: str
    endpoint: str


@blueprint.app_template_global("operator_sections")
def operator_sections() -> list[Section]:
    return [
        Section(key=key, label=str(label), endpoint=endpoint)
        for key, label, endpoint in _SECTIONS
        if endpoint in current_app.view_functions
    ]


# --------------------------------------------------------------------------- forms


class OrganizationForm(FlaskForm):
    slug = StringField(
        _l("Address (slug)"),
        validators=[DataRequired(), Length(max=63)],
        filters=[lambda value: (value or "").strip().lower()],
        description=_l(
            "Lowercase letters, digits and dashes. The microsite will be at /o/ followed by it."
        ),
    )
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    owner_email = StringField(
        _l("Owner's e-mail"),
        validators=[
            DataRequired(),
            Length(max=254),
            Email(message=_l("Enter a valid e-mail address.")),
        ],
        description=_l("The first owner receives an invitation by e-mail."),
    )
    default_locale = SelectField(
        _l("Default language"),
        choices=[SelectChoice("fr", _l("French")), SelectChoice("en", _l("English"))],
        default="fr",
    )
    currency = SelectField(
        _l("Currency"), choices=[SelectChoice(code) for code in CURRENCIES], default="CAD"
    )

    def validate_slug(self, field: StringField) -> None:
        # The same rule the service applies, checked here too so that every field's error shows
        # at once; whether the slug is taken is left to the service.
        if (
            not services.SLUG_PATTERN.match(field.data or "")
            or field.data in services.RESERVED_SLUGS
        ):
            raise WTFormsValidationError(
                _("Use lowercase letters, digits and dashes (not a reserved word).")
            )


class SuspendForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason"),
        validators=[DataRequired(), Length(max=2000)],
        description=_l("Kept in the audit trail. Staff and customers see the suspended page."),
    )


class ReactivateForm(FlaskForm):
    pass


class CustomDomainForm(FlaskForm):
    host = StringField(
        _l("Host name"),
        validators=[DataRequired(), Length(max=253)],
        description=_l("Point its DNS at this platform first, e.g. boutique.example.org."),
    )


class RemoveDomainForm(FlaskForm):
    pass


class ApplicationFeeForm(FlaskForm):
    # Text fields: the service checks the numbers and says what is wrong in the operator's words.
    application_fee_basis_points = StringField(
        _l("Percentage, in basis points"),
        filters=[lambda value: (value or "").strip()],
        description=_l("Hundredths of a percent: 150 is 1.5 %, 10000 is 100 %."),
    )
    application_fee_fixed = StringField(
        _l("Fixed amount, in cents"),
        filters=[lambda value: (value or "").strip()],
        description=_l(
            "Added to the percentage on each card payment, in the organization's currency."
        ),
    )
    refund_application_fee = BooleanField(
        _l("Give back the fee's share of what is refunded"),
    )


# The services name some fields after the model; the forms name them after what operators type.
_FIELD_ALIASES = {"email": "owner_email", "locale": "default_locale"}


def _apply_errors(form: FlaskForm, error: DomainError) -> None:
    """Put a service's refusal on the form: on its fields when it names them, else on the form."""
    placed = False
    for name, messages in error.fields.items():
        field_name = _FIELD_ALIASES.get(name, name)
        if field_name in form:
            field = form[field_name]
            field.errors = [*field.errors, *messages]
            placed = True
    if not placed:
        form.form_errors.append(error.message)


# --------------------------------------------------------------------------- queries


def _organization_or_404(slug: str) -> Organization:
    organization = db.session.execute(
        sa.select(Organization).where(Organization.slug == slug.lower())
    ).scalar_one_or_none()
    if organization is None:
        abort(404)
    return organization


def _staff_count() -> Any:
    return (
        sa.select(sa.func.count(Membership.id))
        .where(Membership.organization_id == Organization.id)
        .correlate(Organization)
        .scalar_subquery()
    )


_ROLE_ORDER = sa.case(
    {Role.OWNER.value: 0, Role.ADMIN.value: 1, Role.ATTENDANT.value: 2}, value=Membership.role
)


def _staff_of(organization: Organization) -> list[Membership]:
    return list(
        db.session.execute(
            sa.select(Membership)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organization_id == organization.id)
            .order_by(_ROLE_ORDER, User.email)
        ).scalars()
    )


def _pending_invitations_of(organization: Organization) -> list[Invitation]:
    return list(
        db.session.execute(
            sa.select(Invitation)
            .where(
                Invitation.organization_id == organization.id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .order_by(Invitation.created_at.desc())
        ).scalars()
    )


def _recent_audit_of(organization: Organization) -> list[AuditLog]:
    return list(
        db.session.execute(
            sa.select(AuditLog)
            .where(AuditLog.organization_id == organization.id)
            .order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
            .limit(AUDIT_ENTRIES)
        ).scalars()
    )


def _domains_of(organization: Organization) -> list[CustomDomain]:
    return list(
        db.session.execute(
            sa.select(CustomDomain)
            .where(CustomDomain.organization_id == organization.id)
            .order_by(CustomDomain.host)
        ).scalars()
    )


# --------------------------------------------------------------------------- views


@blueprint.get("/")
@operator_required
def index() -> Any:
    q = (request.args.get("q") or "").strip()
    status = request.args.get("status") or ""
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    query = sa.select(Organization, _staff_count().label("staff_count"))
    if q:
        like = f"%{q.lower()}%"
        query = query.where(
            sa.or_(
                Organization.slug.like(like),
                sa.func.lower(Organization.name).like(like),
                sa.func.lower(Organization.email).like(like),
            )
        )
    if status in {s.value for s in OrganizationStatus}:
        query = query.where(Organization.status == OrganizationStatus(status))
    total = db.session.execute(
        sa.select(sa.func.count()).select_from(query.subquery())
    ).scalar_one()
    rows = db.session.execute(
        query.order_by(Organization.slug).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    return render_template(
        "tenants/operators/index.html",
        rows=rows,
        q=q,
        status=status,
        statuses=list(OrganizationStatus),
        page=page,
        total=total,
        has_next=page * PAGE_SIZE < total,
    )


@blueprint.route("/organizations/new", methods=["GET", "POST"])
@operator_required
def new_organization() -> Any:
    form = OrganizationForm()
    if form.validate_on_submit():
        try:
            created = services.create_organization(
                actor=current_actor(),
                slug=form.slug.data or "",
                name=form.name.data or "",
                owner_email=form.owner_email.data or "",
                locale=form.default_locale.data or "fr",
                currency=form.currency.data or "CAD",
            )
        except DomainError as error:
            db.session.rollback()
            _apply_errors(form, error)
        else:
            slug = created.organization.slug
            db.session.commit()
            flash(
                _(
                    "Organization %(slug)s created; its owner was invited by e-mail.",
                    slug=slug,
                ),
                "success",
            )
            return redirect(url_for(".organization", slug=slug))
    status = 422 if form.is_submitted() else 200
    return render_template("tenants/operators/new.html", form=form), status


def _render_detail(organization: Organization, status: int = 200, **forms: Any) -> Any:
    return (
        render_template(
            "tenants/operators/organization.html",
            org=organization,
            staff=_staff_of(organization),
            invitations=_pending_invitations_of(organization),
            audit_entries=_recent_audit_of(organization),
            domains=_domains_of(organization),
            suspend_form=forms.get("suspend_form") or SuspendForm(formdata=None),
            reactivate_form=ReactivateForm(formdata=None),
            domain_form=forms.get("domain_form") or CustomDomainForm(formdata=None),
            remove_domain_form=RemoveDomainForm(formdata=None),
            fee_form=forms.get("fee_form") or _fee_form(organization),
            role_labels=ROLE_LABELS,
        ),
        status,
    )


def _fee_form(organization: Organization) -> ApplicationFeeForm:
    return ApplicationFeeForm(
        formdata=None,
        data={
            "application_fee_basis_points": str(organization.application_fee_basis_points),
            "application_fee_fixed": str(organization.application_fee_fixed),
            "refund_application_fee": organization.refund_application_fee,
        },
    )


@blueprint.get("/organizations/<slug>")
@operator_required
def organization(slug: str) -> Any:
    return _render_detail(_organization_or_404(slug))


@blueprint.post("/organizations/<slug>/suspend")
@operator_required
def suspend(slug: str) -> Any:
    target = _organization_or_404(slug)
    form = SuspendForm()
    if form.validate_on_submit():
        try:
            services.suspend_organization(
                organization=target, actor=current_actor(), reason=form.reason.data or ""
            )
        except DomainError as error:
            db.session.rollback()
            _apply_errors(form, error)
        else:
            db.session.commit()
            flash(_("%(name)s is suspended.", name=target.name), "success")
            return redirect(url_for(".organization", slug=target.slug))
    return _render_detail(target, 422, suspend_form=form)


@blueprint.post("/organizations/<slug>/reactivate")
@operator_required
def reactivate(slug: str) -> Any:
    target = _organization_or_404(slug)
    form = ReactivateForm()
    if not form.validate_on_submit():
        abort(400)
    services.reactivate_organization(organization=target, actor=current_actor())
    db.session.commit()
    flash(_("%(name)s is active again.", name=target.name), "success")
    return redirect(url_for(".organization", slug=target.slug))


@blueprint.post("/organizations/<slug>/domains")
@operator_required
def add_domain(slug: str) -> Any:
    target = _organization_or_404(slug)
    form = CustomDomainForm()
    if form.validate_on_submit():
        try:
            domain = services.add_custom_domain(
                organization=target, actor=current_actor(), host=form.host.data or ""
            )
        except DomainError as error:
            db.session.rollback()
            _apply_errors(form, error)
        else:
            host = domain.host
            db.session.commit()
            flash(_("%(host)s now serves this organization's microsite.", host=host), "success")
            return redirect(url_for(".organization", slug=target.slug))
    return _render_detail(target, 422, domain_form=form)


@blueprint.post("/organizations/<slug>/domains/<int:domain_id>/remove")
@operator_required
def remove_domain(slug: str, domain_id: int) -> Any:
    target = _organization_or_404(slug)
    form = RemoveDomainForm()
    if not form.validate_on_submit():
        abort(400)
    domain = db.session.get(CustomDomain, domain_id)
    if domain is None or domain.organization_id != target.id:
        abort(404)
    host = domain.host
    services.remove_custom_domain(organization=target, actor=current_actor(), domain=domain)
    db.session.commit()
    flash(_("%(host)s no longer serves this organization.", host=host), "success")
    return redirect(url_for(".organization", slug=target.slug))


@blueprint.post("/organizations/<slug>/application-fee")
@operator_required
def application_fee(slug: str) -> Any:
    target = _organization_or_404(slug)
    form = ApplicationFeeForm()
    if form.validate_on_submit():
        try:
            services.set_application_fee(
                organization=target,
                actor=current_actor(),
                basis_points=form.application_fee_basis_points.data,
                fixed=form.application_fee_fixed.data,
                refund_application_fee=bool(form.refund_application_fee.data),
            )
        except DomainError as error:
            db.session.rollback()
            _apply_errors(form, error)
        else:
            db.session.commit()
            flash(_("The application fee of %(name)s is saved.", name=target.name), "success")
            return redirect(url_for(".organization", slug=target.slug))
    return _render_detail(target, 422, fee_form=form)
