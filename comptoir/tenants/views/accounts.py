"""Sign-in pages for staff and operators: home, login, logout, password reset, invitations.

These pages live outside any organization (no ``/o/<slug>`` prefix); the invitation page enters
the invited organization's scope itself once the link's secret has found it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm

from comptoir.platform.db import db
from comptoir.platform.errors import DomainError, ValidationError
from comptoir.platform.extensions import limiter
from comptoir.platform.i18n import select_locale
from comptoir.platform.security import MIN_PASSWORD_LENGTH, token_hash
from comptoir.platform.settings import current_settings
from comptoir.tenants import services
from comptoir.tenants.context import OrganizationSuspendedError, bind_request_organization
from comptoir.tenants.forms import (
    ROLE_LABELS,
    AcceptInvitationForm,
    ForgotPasswordForm,
    LoginForm,
    NewPasswordForm,
    apply_service_error,
)

blueprint = Blueprint("tenants_accounts", __name__, template_folder="../templates")


# --------------------------------------------------------------------------- rate limits


def _guessing_limit() -> str:
    return current_settings().login_rate_limit


def _submitted_email_key() -> str:
    # Hashed: the limiter's keys live in Redis, which is no place for people's addresses.
    email = request.form.get("email", "").strip().lower()
    return "email:" + token_hash(email)


def _link_token_key() -> str:
    return "link:" + token_hash(str((request.view_args or {}).get("token", "")))


_per_ip = limiter.limit(_guessing_limit, methods=["POST"])
_per_email = limiter.limit(_guessing_limit, methods=["POST"], key_func=_submitted_email_key)
_per_link = limiter.limit(_guessing_limit, methods=["POST"], key_func=_link_token_key)


# --------------------------------------------------------------------------- helpers


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects).

    ``//host`` and ``/\\host`` are read by browsers as other sites; control characters can
    smuggle either past a naive check.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return None
    return target


def _status() -> int:
    """Pages re-shown after a refused POST say so in their status."""
    return 422 if request.method == "POST" else 200


@blueprint.context_processor
def _account_page_globals() -> dict[str, Any]:
    return {"min_password_length": MIN_PASSWORD_LENGTH}


# --------------------------------------------------------------------------- pages


@blueprint.get("/")
def home() -> Any:
    memberships = []
    if current_user.is_authenticated:
        memberships = sorted(
            services.memberships_of(current_user),
            key=lambda membership: membership.organization.name.lower(),
        )
    return render_template(
        "tenants/accounts/home.html", memberships=memberships, role_labels=ROLE_LABELS
    )


@blueprint.route("/login", methods=["GET", "POST"])
@_per_ip
@_per_email
def login() -> Any:
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(next_url or url_for(".home"))
    form = LoginForm()
    failed = False
    if form.validate_on_submit():
        user = services.authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            db.session.commit()
            login_user(user, remember=bool(form.remember.data))
            return redirect(next_url or url_for(".home"))
        db.session.rollback()
        failed = True
    return render_template(
        "tenants/accounts/login.html", form=form, failed=failed, next_url=next_url
    ), _status()


@blueprint.post("/logout")
def logout() -> Any:
    logout_user()
    flash(_("You are signed out."))
    return redirect(url_for(".login"))


@blueprint.route("/password/forgot", methods=["GET", "POST"])
@_per_ip
@_per_email
def forgot_password() -> Any:
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        services.request_password_reset(email=form.email.data or "", locale=select_locale())
        db.session.commit()
        # The same answer whether or not the address has an account.
        flash(
            _(
                "If an account exists for this address, we have sent it a link to choose a new "
                "password. Check your e-mail."
            )
        )
        return redirect(url_for(".login"))
    return render_template("tenants/accounts/forgot_password.html", form=form), _status()


def _dead_link(title: str, message: str) -> Any:
    return render_template("tenants/accounts/dead_link.html", title=title, message=message), 410


@blueprint.route("/password/reset/<token>", methods=["GET", "POST"])
@_per_ip
@_per_link
def reset_password(token: str) -> Any:
    try:
        services.check_password_reset_token(token)
    except ValidationError as error:
        db.session.rollback()
        return _dead_link(_("Choose a new password"), error.message)
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            user = services.reset_password(token=token, password=form.password.data or "")
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            db.session.commit()
            login_user(user)
            flash(_("Your password is changed. Your other sessions are signed out."))
            return redirect(url_for(".home"))
    return render_template("tenants/accounts/reset_password.html", form=form), _status()


@blueprint.route("/invitations/<token>", methods=["GET", "POST"])
@_per_ip
@_per_link
def invitation(token: str) -> Any:
    try:
        invitation = services.find_invitation(token)
    except ValidationError as error:
        return _dead_link(_("Invitation"), error.message)
    organization = invitation.organization
    if not organization.is_active:
        raise OrganizationSuspendedError(organization)
    # Accepting writes a membership: it must happen inside the invited organization's scope.
    bind_request_organization(organization)

    if current_user.is_authenticated:
        mode = "join" if current_user.email == invitation.email else "other_account"
    elif services.find_user_by_email(invitation.email) is not None:
        mode = "sign_in"
    else:
        mode = "create"
    account_form = AcceptInvitationForm() if mode == "create" else None
    form: FlaskForm = account_form or FlaskForm()

    if mode in {"join", "create"} and form.validate_on_submit():
        try:
            if account_form is not None:
                membership = services.accept_invitation(
                    token=token,
                    full_name=account_form.full_name.data or "",
                    password=account_form.password.data or "",
                )
            else:
                membership = services.accept_invitation(
                    token=token, user=current_user._get_current_object()
                )
            user = membership.user
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            db.session.commit()
            login_user(user)
            flash(_("Welcome to %(name)s.", name=organization.name))
            return redirect(url_for("tenants_admin.dashboard", org_slug=organization.slug))

    return render_template(
        "tenants/accounts/invitation.html",
        invitation=invitation,
        invited_organization=organization,
        role_label=ROLE_LABELS[invitation.role],
        mode=mode,
        form=form,
        login_url=url_for(".login", next=url_for(".invitation", token=token)),
    ), _status()
