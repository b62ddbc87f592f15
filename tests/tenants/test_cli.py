"""The bootstrap commands: what they print, what they save, and how they refuse bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db
from comptoir.platform.mail import MailMessage
from comptoir.platform.security import verify_password
from comptoir.platform.tenancy import tenant_scope, unscoped
from comptoir.tenants import services
from comptoir.tenants.models import ApiKey, Invitation, Organization, Role, User
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.usefixtures("app_context")


def run(app: Flask, *args: str, stdin: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=list(args), input=stdin)


def count(model: type[Any]) -> int:
    with unscoped():
        total = db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
    db.session.rollback()
    return int(total)


# --------------------------------------------------------------------------- create-operator


def test_create_operator_reads_the_password_from_stdin(app: Flask) -> None:
    result = run(app, "create-operator", "Ops@Comptoir.example", stdin="a long enough secret\n")
    assert result.exit_code == 0, result.stderr
    assert "Operator ops@comptoir.example created" in result.stdout
    assert "a long enough secret" not in result.stdout

    db.session.expire_all()
    user = services.find_user_by_email("ops@comptoir.example")
    assert user is not None
    assert user.is_operator
    assert verify_password(user.password_hash, "a long enough secret")
    assert services.authenticate("ops@comptoir.example", "a long enough secret") is not None


def test_create_operator_promotes_an_existing_user(app: Flask) -> None:
    UserFactory(email="someone@example.org")
    result = run(app, "create-operator", "someone@example.org", stdin="another good secret\n")
    assert result.exit_code == 0, result.stderr
    assert "now an operator" in result.stdout
    assert count(User) == 1
    db.session.expire_all()
    user = services.find_user_by_email("someone@example.org")
    assert user is not None
    assert user.is_operator


@pytest.mark.parametrize(
    ("email", "stdin", "message"),
    [
        ("ops@comptoir.example", "short\n", "at least 10 characters"),
        ("not-an-email", "a long enough secret\n", "valid e-mail"),
        ("ops@comptoir.example", "", "no password"),
    ],
)
def test_create_operator_refuses_bad_input(
    app: Flask, email: str, stdin: str, message: str
) -> None:
    result = run(app, "create-operator", email, stdin=stdin)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.startswith("Error: ")
    assert count(User) == 0


# --------------------------------------------------------------------------- create-organization


def test_create_organization_prints_it_and_the_invitation_link(
    app: Flask, jobs: Callable[[], int]
) -> None:
    result = run(
        app,
        "create-organization",
        "dauphins",
        "--name",
        "Club de natation Les Dauphins",
        "--owner",
        "owner@dauphins.example",
        "--locale",
        "en",
        "--currency",
        "usd",
    )
    assert result.exit_code == 0, result.stderr
    assert "Organization dauphins created: Club de natation Les Dauphins" in result.stdout
    assert "owner@dauphins.example" in result.stdout
    assert "http://localhost/invitations/" in result.stdout

    with unscoped():
        organization = db.session.execute(sa.select(Organization)).scalar_one()
        invitation = db.session.execute(sa.select(Invitation)).scalar_one()
        actors = set(db.session.execute(sa.select(AuditLog.actor_label)).scalars())
    assert str(organization.default_locale) == "en"
    assert organization.currency == "USD"
    assert invitation.role is Role.OWNER
    assert invitation.organization_id == organization.id
    assert actors == {"cli"}

    # The printed link is the one e-mailed, and it works.
    link = result.stdout.strip().rsplit(" ", 1)[-1]
    token = link.rsplit("/", 1)[-1]
    assert jobs() == 1
    with unscoped():
        mail = db.session.execute(sa.select(MailMessage)).scalar_one()
    assert mail.sent_at is not None
    assert link in mail.text_body
    assert services.find_invitation(token).id == invitation.id


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["taken", "--name", "X", "--owner", "a@b.example"], "already taken"),
        (["api", "--name", "X", "--owner", "a@b.example"], "reserved"),
        (["Bad Slug", "--name", "X", "--owner", "a@b.example"], "slug:"),
        (["neuf", "--name", "X", "--owner", "nobody"], "valid e-mail"),
        (["neuf", "--name", " ", "--owner", "a@b.example"], "required"),
        (["neuf", "--name", "X", "--owner", "a@b.example", "--currency", "dollars"], "currency"),
        (["neuf", "--name", "X", "--owner", "a@b.example", "--locale", "de"], "'de'"),
    ],
)
def test_create_organization_refuses_bad_input(app: Flask, args: list[str], message: str) -> None:
    OrganizationFactory(slug="taken")
    result = run(app, "create-organization", *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert count(Organization) == 1
    assert count(Invitation) == 0
    assert count(MailMessage) == 0
    assert count(AuditLog) == 0


def test_create_organization_needs_name_and_owner(app: Flask) -> None:
    result = run(app, "create-organization", "neuf")
    assert result.exit_code == 2
    assert "--name" in result.stderr
    assert count(Organization) == 0


# --------------------------------------------------------------------------- create-api-key


def test_create_api_key_prints_the_key_once(app: Flask) -> None:
    organization = OrganizationFactory(slug="dauphins")
    result = run(app, "create-api-key", "dauphins", "--role", "admin", "--name", "Inscriptions")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    secret = lines[-1]
    assert secret.startswith("cpt_")
    assert "role admin" in lines[0]
    assert "dauphins" in lines[0]

    with tenant_scope(organization.id):
        key = db.session.execute(sa.select(ApiKey)).scalar_one()
        assert key.name == "Inscriptions"
        assert key.role is Role.ADMIN
        assert secret not in (key.secret_hash, key.prefix)
        authenticated = services.authenticate_api_key(organization, secret)
        assert authenticated is not None
        assert authenticated.id == key.id


@pytest.mark.parametrize(
    ("args", "message", "exit_code"),
    [
        (["nowhere", "--role", "admin"], "no organization with the slug 'nowhere'", 1),
        (["dauphins", "--role", "boss"], "'boss'", 2),
        (["dauphins"], "--role", 2),
        (["dauphins", "--role", "admin", "--name", "  "], "required", 1),
    ],
)
def test_create_api_key_refuses_bad_input(
    app: Flask, args: list[str], message: str, exit_code: int
) -> None:
    OrganizationFactory(slug="dauphins")
    result = run(app, "create-api-key", *args)
    assert result.exit_code == exit_code
    assert message in result.stderr
    assert count(ApiKey) == 0
    assert count(AuditLog) == 0
