"""The organization's admin portal: dashboard, staff, customers, API keys and settings.

Every route sits under ``/o/<org_slug>/admin``: the slug is resolved and the tenant scope entered
before the view runs, and ``staff_required`` answers 404 to anyone who is not staff here. Objects
are looked up by id inside that scope, so another organization's id is simply not found (404).
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm

from comptoir.platform.db import TenantMixin, db
from comptoir.platform.errors import DomainError
from comptoir.tenants import navigation, organization_settings, services
from comptoir.tenants.context import (
    current_actor,
    current_role,
    install_organization_url_handling,
)
from comptoir.tenants.forms import (
    ROLE_LABELS,
    ApiKeyForm,
    ChangeRoleForm,
    CustomerForm,
    InviteStaffForm,
    OrganizationSettingsForm,
    apply_service_error,
    role_choices,
)
from comptoir.tenants.guards import staff_required
from comptoir.tenants.models import ApiKey, Customer, Invitation, Membership, Role
from comptoir.tenants.permissions import Permission, grantable_roles, role_can

blueprint = Blueprint("tenants_admin", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)

CUSTOMERS_PER_PAGE = 50
Row = TypeVar("Row", bound=TenantMixin)


@blueprint.app_template_global("admin_nav")
def admin_nav() -> list[navigation.NavSection]:
    """The sidebar entries the caller's role may see (for every admin page, whatever its domain)."""
    return navigation.visible_sections(current_role())


@blueprint.context_processor
def _admin_page_globals() -> dict[str, Any]:
    role = current_role()
    return {
        "role_labels": ROLE_LABELS,
        "can": lambda permission: role_can(role, Permission(permission)),
    }


def _one_or_404(model: type[Row], object_id: int) -> Row:
    # The tenant guard already filters on the organization in scope; the condition says so here.
    row = db.session.execute(
        sa.select(model).where(
            model.id == object_id,
            model.organization_id == g.organization.id,
        )
    ).scalar_one_or_none()
    if row is None:
        abort(404)
    return row


def _all_roles(form: FlaskForm) -> None:
    """Parse any role; whether the caller may give it is the service's decision."""
    form.role.choices = role_choices(Role)


def _grantable_roles(form: FlaskForm) -> None:
    """Offer only the roles the caller may give."""
    form.role.choices = role_choices(grantable_roles(current_role()))


def _flash_refusal(error: DomainError) -> None:
    messages = [message for field in error.fields.values() for message in field]
    flash(" ".join(messages) or error.message, "error")


# --------------------------------------------------------------------------- dashboard


@blueprint.get("/")
@staff_required(Permission.VIEW_ADMIN)
def dashboard() -> Any:
    role = current_role()
    return render_template(
        "tenants/admin/dashboard.html", role_label=ROLE_LABELS[role] if role else ""
    )


# --------------------------------------------------------------------------- staff


def _render_staff(form: InviteStaffForm, status: int = 200) -> Any:
    _grantable_roles(form)
    organization = g.organization
    return render_template(
        "tenants/admin/staff.html",
        form=form,
        members=services.list_staff(organization=organization),
        invitations=services.pending_invitations(organization=organization),
        grantable=grantable_roles(current_role()),
    ), status


@blueprint.get("/staff/")
@staff_required(Permission.MANAGE_STAFF)
def staff() -> Any:
    return _render_staff(InviteStaffForm(formdata=None))


@blueprint.post("/staff/invitations/")
@staff_required(Permission.MANAGE_STAFF)
def invite_staff() -> Any:
    form = InviteStaffForm()
    _all_roles(form)
    if form.validate_on_submit():
        try:
            invitation, _url = services.invite_staff(
                organization=g.organization,
                actor=current_actor(),
                email=form.email.data or "",
                role=form.role.data,
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            email = invitation.email
            db.session.commit()
            flash(_("Invitation sent to %(email)s.", email=email))
            return redirect(url_for(".staff"))
    return _render_staff(form, 422)


@blueprint.post("/staff/<int:membership_id>/role")
@staff_required(Permission.MANAGE_STAFF)
def change_role(membership_id: int) -> Any:
    membership = _one_or_404(Membership, membership_id)
    form = ChangeRoleForm()
    _all_roles(form)
    if not form.validate_on_submit():
        flash(_("Choose a role."), "error")
        return redirect(url_for(".staff"))
    try:
        services.change_role(
            organization=g.organization,
            actor=current_actor(),
            membership=membership,
            role=form.role.data,
        )
    except DomainError as error:
        db.session.rollback()
        _flash_refusal(error)
    else:
        name = membership.user.display_name
        db.session.commit()
        flash(_("%(name)s's role is changed.", name=name))
    return redirect(url_for(".staff"))


@blueprint.post("/staff/<int:membership_id>/remove")
@staff_required(Permission.MANAGE_STAFF)
def remove_member(membership_id: int) -> Any:
    membership = _one_or_404(Membership, membership_id)
    name = membership.user.display_name
    leaving_myself = membership.user_id == current_user.id
    try:
        services.remove_member(
            organization=g.organization, actor=current_actor(), membership=membership
        )
    except DomainError as error:
        db.session.rollback()
        _flash_refusal(error)
        return redirect(url_for(".staff"))
    db.session.commit()
    flash(_("%(name)s is no longer on the staff.", name=name))
    if leaving_myself:
        return redirect(url_for("tenants_accounts.home"))
    return redirect(url_for(".staff"))


@blueprint.post("/staff/invitations/<int:invitation_id>/revoke")
@staff_required(Permission.MANAGE_STAFF)
def revoke_invitation(invitation_id: int) -> Any:
    invitation = _one_or_404(Invitation, invitation_id)
    email = invitation.email
    try:
        services.revoke_invitation(
            organization=g.organization, actor=current_actor(), invitation=invitation
        )
    except DomainError as error:
        db.session.rollback()
        _flash_refusal(error)
    else:
        db.session.commit()
        flash(_("The invitation to %(email)s is withdrawn.", email=email))
    return redirect(url_for(".staff"))


# --------------------------------------------------------------------------- customers


@blueprint.get("/customers/")
@staff_required(Permission.VIEW_CUSTOMERS)
def customers() -> Any:
    q = request.args.get("q", "").strip()[:200]
    query = services.search_customers_query(q).where(Customer.organization_id == g.organization.id)
    total = db.session.execute(
        sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    pages = max(1, math.ceil(total / CUSTOMERS_PER_PAGE))
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    rows = (
        db.session.execute(query.limit(CUSTOMERS_PER_PAGE).offset((page - 1) * CUSTOMERS_PER_PAGE))
        .scalars()
        .all()
    )
    return render_template(
        "tenants/admin/customers.html", customers=rows, q=q, page=page, pages=pages, total=total
    )


@blueprint.route("/customers/new", methods=["GET", "POST"])
@staff_required(Permission.MANAGE_CUSTOMERS)
def new_customer() -> Any:
    form = CustomerForm()
    if form.validate_on_submit():
        try:
            customer = services.create_customer(
                organization=g.organization,
                actor=current_actor(),
                first_name=form.first_name.data or "",
                last_name=form.last_name.data or "",
                email=form.email.data or "",
                phone=form.phone.data or "",
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            name = customer.full_name
            db.session.commit()
            flash(_("Customer %(name)s is added.", name=name))
            return redirect(url_for(".customers"))
    status = 422 if request.method == "POST" else 200
    return render_template("tenants/admin/customer_form.html", form=form, customer=None), status


@blueprint.route("/customers/<int:customer_id>/edit", methods=["GET", "POST"])
@staff_required(Permission.MANAGE_CUSTOMERS)
def edit_customer(customer_id: int) -> Any:
    customer = _one_or_404(Customer, customer_id)
    form = CustomerForm(obj=customer)
    if form.validate_on_submit():
        try:
            services.update_customer(
                organization=g.organization,
                actor=current_actor(),
                customer=customer,
                changes={
                    "first_name": form.first_name.data or "",
                    "last_name": form.last_name.data or "",
                    "email": form.email.data or "",
                    "phone": form.phone.data or "",
                },
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            name = customer.full_name
            db.session.commit()
            flash(_("Customer %(name)s is saved.", name=name))
            return redirect(url_for(".customers"))
    status = 422 if request.method == "POST" else 200
    return render_template("tenants/admin/customer_form.html", form=form, customer=customer), status


# --------------------------------------------------------------------------- API keys


def _render_api_keys(form: ApiKeyForm, status: int = 200) -> Any:
    _grantable_roles(form)
    keys = db.session.execute(
        sa.select(ApiKey)
        .where(ApiKey.organization_id == g.organization.id)
        .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc())
    ).scalars()
    return render_template("tenants/admin/api_keys.html", form=form, keys=list(keys)), status


@blueprint.get("/api-keys/")
@staff_required(Permission.MANAGE_API_KEYS)
def api_keys() -> Any:
    return _render_api_keys(ApiKeyForm(formdata=None))


@blueprint.post("/api-keys/")
@staff_required(Permission.MANAGE_API_KEYS)
def create_api_key() -> Any:
    form = ApiKeyForm()
    _all_roles(form)
    if form.validate_on_submit():
        try:
            key, plaintext = services.create_api_key(
                organization=g.organization,
                actor=current_actor(),
                name=form.name.data or "",
                role=form.role.data,
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            db.session.commit()
            # The key exists only in this response: no redirect could carry it without storing it.
            response = render_template(
                "tenants/admin/api_key_created.html", key=key, plaintext=plaintext
            )
            return response, 201, {"Cache-Control": "no-store", "Pragma": "no-cache"}
    return _render_api_keys(form, 422)


@blueprint.post("/api-keys/<int:key_id>/revoke")
@staff_required(Permission.MANAGE_API_KEYS)
def revoke_api_key(key_id: int) -> Any:
    key = _one_or_404(ApiKey, key_id)
    name = key.name
    try:
        services.revoke_api_key(organization=g.organization, actor=current_actor(), key=key)
    except DomainError as error:
        db.session.rollback()
        _flash_refusal(error)
    else:
        db.session.commit()
        flash(_("The key %(name)s is revoked; it no longer opens the API.", name=name))
    return redirect(url_for(".api_keys"))


# --------------------------------------------------------------------------- settings


@blueprint.route("/settings/", methods=["GET", "POST"])
@staff_required(Permission.MANAGE_ORGANIZATION)
def settings() -> Any:
    organization = g.organization
    # The form as posted, even empty: an unticked box is all a form with one box may send.
    form = OrganizationSettingsForm(
        formdata=request.form if request.method == "POST" else None,
        data=organization_settings.settings_of(organization),
    )
    if form.validate_on_submit():
        try:
            organization_settings.update_settings(
                organization=organization,
                actor=current_actor(),
                changes={
                    "attendant_can_override_prices": bool(form.attendant_can_override_prices.data)
                },
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            db.session.commit()
            flash(_("The settings are saved."))
            return redirect(url_for(".settings"))
    status = 422 if request.method == "POST" else 200
    return render_template("tenants/admin/settings.html", form=form), status
