"""HTML forms of the accounts pages and the admin portal.

Forms parse and shape input; the services decide what is valid (e-mail syntax, duplicates, roles
one may give). :func:`apply_service_error` puts a service's refusal back on the form's fields.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import flash
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, Field, PasswordField, SelectField, StringField
from wtforms.validators import EqualTo, InputRequired, Length

from comptoir.platform.errors import DomainError
from comptoir.tenants.models import Role
from comptoir.tenants.permissions import ROLE_LABELS


def role_choices(roles: Iterable[Role]) -> list[tuple[str, str]]:
    return [(role.value, str(ROLE_LABELS[role])) for role in roles]


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[InputRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[InputRequired(), Length(max=1024)])
    remember = BooleanField(_l("Keep me signed in on this device"))


class ForgotPasswordForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[InputRequired(), Length(max=254)])


class NewPasswordForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=[InputRequired(), Length(max=1024)])
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[InputRequired(), EqualTo("password", message=_l("The passwords differ."))],
    )


class AcceptInvitationForm(FlaskForm):
    full_name = StringField(_l("Full name"), validators=[InputRequired(), Length(max=200)])
    password = PasswordField(_l("Password"), validators=[InputRequired(), Length(max=1024)])
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[InputRequired(), EqualTo("password", message=_l("The passwords differ."))],
    )


class InviteStaffForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[InputRequired(), Length(max=254)])
    role = SelectField(_l("Role"), validators=[InputRequired()])


class ChangeRoleForm(FlaskForm):
    role = SelectField(_l("Role"), validators=[InputRequired()])


class MarkedRequired:
    """Marks a field required (label, ``required``) and leaves the check to the service.

    The service validates every field in one pass, so the page lists all the mistakes at once.
    """

    field_flags = {"required": True}

    def __call__(self, form: FlaskForm, field: Field) -> None:
        return None


class CustomerForm(FlaskForm):
    first_name = StringField(_l("First name"), validators=[MarkedRequired()])
    last_name = StringField(_l("Last name"), validators=[MarkedRequired()])
    email = EmailField(_l("E-mail"), validators=[MarkedRequired()])
    phone = StringField(_l("Phone"))


class OrganizationSettingsForm(FlaskForm):
    attendant_can_override_prices = BooleanField(_l("Attendants may change prices in carts"))


class ApiKeyForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=100)])
    role = SelectField(_l("Role"), validators=[InputRequired()])


def apply_service_error(form: FlaskForm, error: DomainError) -> None:
    """Show a service's refusal: on the fields it names, else as a flashed message."""
    unplaced = []
    for name, messages in error.fields.items():
        if name in form:
            form[name].errors = [*form[name].errors, *messages]
        else:
            unplaced.extend(messages)
    if unplaced or not error.fields:
        flash(" ".join(unplaced) or error.message, "error")
