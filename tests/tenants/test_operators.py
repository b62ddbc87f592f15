"""The operator console: who may open it, creating, suspending and reactivating organizations.

Requests run without an outer app context (Flask would reuse it, and ``g`` would leak from one
request into the next); set-up and checks open their own with :func:`database`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db
from comptoir.platform.mail import MailMessage
from comptoir.platform.tenancy import unscoped
from comptoir.tenants.models import (
    CustomDomain,
    Customer,
    Invitation,
    Membership,
    Organization,
    OrganizationStatus,
    Role,
    User,
)
from tests.factories import CustomerFactory, OrganizationFactory, UserFactory, staff


@contextmanager
def database(app: Flask) -> Iterator[None]:
    with app.app_context(), unscoped():
        try:
            yield
        finally:
            db.session.remove()


def sign_in(client: FlaskClient, user: User) -> None:
    """Flask-Login's session keys, set directly (the login form has tests of its own)."""
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True


def count(app: Flask, model: type[Any], *where: Any) -> int:
    with database(app):
        return int(
            db.session.execute(
                sa.select(sa.func.count()).select_from(model).where(*where)
            ).scalar_one()
        )


def organization_state(app: Flask, slug: str) -> tuple[OrganizationStatus, str | None]:
    with database(app):
        organization = db.session.execute(
            sa.select(Organization).where(Organization.slug == slug)
        ).scalar_one()
        return organization.status, organization.suspended_reason


def audit_actions(app: Flask) -> list[str]:
    with database(app):
        return list(db.session.execute(sa.select(AuditLog.action).order_by(AuditLog.id)).scalars())


@pytest.fixture
def operator_client(app: Flask, client: FlaskClient) -> FlaskClient:
    with database(app):
        sign_in(client, UserFactory(email="ops@comptoir.test", is_operator=True))
    return client


@pytest.fixture
def slug(app: Flask) -> str:
    with database(app):
        return str(OrganizationFactory(slug="natation", name="Club de natation").slug)


CONSOLE_PAGES = ("/operators/", "/operators/organizations/new", "/operators/organizations/{slug}")


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_anonymous_is_sent_to_login(client: FlaskClient, slug: str, path: str) -> None:
    response = client.get(path.format(slug=slug))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_staff_who_are_not_operators_get_404(
    app: Flask, client: FlaskClient, slug: str, path: str
) -> None:
    with database(app):
        organization = db.session.execute(sa.select(Organization)).scalar_one()
        sign_in(client, staff(organization, Role.OWNER))
    assert client.get(path.format(slug=slug)).status_code == 404


def test_staff_cannot_suspend(app: Flask, client: FlaskClient, slug: str) -> None:
    with database(app):
        organization = db.session.execute(sa.select(Organization)).scalar_one()
        sign_in(client, staff(organization, Role.OWNER))
    response = client.post(f"/operators/organizations/{slug}/suspend", data={"reason": "no"})
    assert response.status_code == 404
    assert organization_state(app, slug) == (OrganizationStatus.ACTIVE, None)


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_operators_open_every_page(operator_client: FlaskClient, slug: str, path: str) -> None:
    assert operator_client.get(path.format(slug=slug)).status_code == 200


def test_unknown_organization_is_404(operator_client: FlaskClient) -> None:
    assert operator_client.get("/operators/organizations/nowhere").status_code == 404


# --------------------------------------------------------------------------- list and search


def test_list_shows_organizations_with_staff_counts(
    app: Flask, operator_client: FlaskClient
) -> None:
    with database(app):
        swimming = OrganizationFactory(slug="natation", name="Club de natation")
        OrganizationFactory(
            slug="tennis", name="Club de tennis", status=OrganizationStatus.SUSPENDED
        )
        staff(swimming, Role.OWNER)
        staff(swimming, Role.ATTENDANT)

    page = operator_client.get("/operators/").get_data(as_text=True)
    swimming_row = page.split('href="/operators/organizations/natation"')[1].split("</tr>")[0]
    tennis_row = page.split('href="/operators/organizations/tennis"')[1].split("</tr>")[0]
    assert "Club de natation" in swimming_row
    assert "<td>2</td>" in swimming_row
    assert "active" in swimming_row
    assert "<td>0</td>" in tennis_row
    assert "suspended" in tennis_row


def test_search_by_name_and_status(app: Flask, operator_client: FlaskClient) -> None:
    with database(app):
        OrganizationFactory(slug="natation", name="Club de natation")
        OrganizationFactory(
            slug="tennis", name="Club de Tennis", status=OrganizationStatus.SUSPENDED
        )

    page = operator_client.get("/operators/?q=TENNIS").get_data(as_text=True)
    assert "/operators/organizations/tennis" in page
    assert "/operators/organizations/natation" not in page

    page = operator_client.get("/operators/?status=active").get_data(as_text=True)
    assert "/operators/organizations/natation" in page
    assert "/operators/organizations/tennis" not in page


# --------------------------------------------------------------------------- create


def test_create_organization_invites_its_owner(
    app: Flask, operator_client: FlaskClient, jobs: Callable[[], int]
) -> None:
    response = operator_client.post(
        "/operators/organizations/new",
        data={
            "slug": "Dauphins",
            "name": "Club de natation Les Dauphins",
            "owner_email": "Owner@Dauphins.example",
            "default_locale": "en",
            "currency": "CAD",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/operators/organizations/dauphins"

    with database(app):
        organization = db.session.execute(sa.select(Organization)).scalar_one()
        assert organization.slug == "dauphins"
        assert organization.name == "Club de natation Les Dauphins"
        assert organization.currency == "CAD"
        assert str(organization.default_locale) == "en"
        invitation = db.session.execute(sa.select(Invitation)).scalar_one()
        assert invitation.organization_id == organization.id
        assert invitation.email == "owner@dauphins.example"
        assert invitation.role is Role.OWNER
    assert audit_actions(app) == ["organization.created", "staff.invited"]

    assert jobs() == 1
    with database(app):
        mails = db.session.execute(sa.select(MailMessage)).scalars().all()
        assert [(m.to_address, m.sent_at is not None) for m in mails] == [
            ("owner@dauphins.example", True)
        ]
        assert "http://localhost/invitations/" in mails[0].text_body

    detail = operator_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "owner@dauphins.example" in detail  # the pending invitation
    assert "organization.created" in detail  # the audit trail
    assert "ops@comptoir.test" in detail  # ...and who did it


@pytest.mark.parametrize(
    ("data", "field_error"),
    [
        ({"slug": "existing"}, "already taken"),
        ({"slug": "operators"}, "reserved"),
        ({"slug": "Pas valide!"}, "lowercase letters"),
        ({"slug": "-dash"}, "lowercase letters"),
        ({"owner_email": "not-an-email"}, "valid e-mail"),
        ({"owner_email": ""}, "required"),
        ({"name": "   "}, "required"),
        ({"currency": "XXX"}, "Not a valid choice"),
        ({"default_locale": "de"}, "Not a valid choice"),
    ],
)
def test_bad_input_shows_form_errors_and_saves_nothing(
    app: Flask, operator_client: FlaskClient, data: dict[str, str], field_error: str
) -> None:
    with database(app):
        OrganizationFactory(slug="existing")
    form = {
        "slug": "nouveau",
        "name": "Nouveau club",
        "owner_email": "owner@nouveau.example",
        "default_locale": "fr",
        "currency": "CAD",
        **data,
    }
    response = operator_client.post("/operators/organizations/new", data=form)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    error = page.split('class="error-summary"')[1].split("</div>")[0]
    assert field_error in error
    assert 'aria-invalid="true"' in page  # the field itself is marked
    assert count(app, Organization) == 1
    assert count(app, Invitation) == 0
    assert count(app, AuditLog) == 0
    assert count(app, MailMessage) == 0


@pytest.fixture
def csrf_enabled(app: Flask) -> Iterator[None]:
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        yield
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


@pytest.mark.usefixtures("csrf_enabled")
def test_forms_need_a_csrf_token(app: Flask, operator_client: FlaskClient, slug: str) -> None:
    page = operator_client.get(f"/operators/organizations/{slug}").get_data(as_text=True)
    assert page.count('name="csrf_token"') >= 3  # sign out, add domain, suspend

    response = operator_client.post(
        "/operators/organizations/new",
        data={"slug": "sans-jeton", "name": "Sans jeton", "owner_email": "a@b.example"},
    )
    assert response.status_code == 400
    response = operator_client.post(
        f"/operators/organizations/{slug}/suspend", data={"reason": "test"}
    )
    assert response.status_code == 400
    assert count(app, Organization) == 1
    assert organization_state(app, slug) == (OrganizationStatus.ACTIVE, None)


# --------------------------------------------------------------------------- detail


def test_detail_shows_staff_invitations_and_audit_of_that_organization_only(
    app: Flask, operator_client: FlaskClient
) -> None:
    with database(app):
        organization = OrganizationFactory(slug="natation", name="Club de natation")
        other = OrganizationFactory(slug="autre")
        staff(organization, Role.ATTENDANT, email="accueil@natation.example")
        staff(other, Role.OWNER, email="proprio@autre.example")
        db.session.add_all(
            [
                AuditLog(
                    organization_id=organization.id,
                    action="customer.updated",
                    actor_label="accueil@natation.example",
                    target_type="customer",
                    target_id="7",
                    before={"phone": "514-555-0000"},
                    after={"phone": "514-555-9999"},
                ),
                AuditLog(organization_id=other.id, action="other.secret", actor_label="x@autre"),
            ]
        )
        db.session.commit()

    page = operator_client.get("/operators/organizations/natation").get_data(as_text=True)
    assert "accueil@natation.example" in page
    assert "Attendant" in page  # the role as people read it, not its stored value
    assert "proprio@autre.example" not in page
    assert "customer.updated" in page
    assert "customer #7" in page
    assert "514-555-0000" in page
    assert "514-555-9999" in page
    assert "other.secret" not in page
    assert "123456789 RT0001" in page  # invoice details from the settings


def test_detail_shows_the_fifty_latest_audit_entries(
    app: Flask, operator_client: FlaskClient, slug: str
) -> None:
    with database(app):
        organization = db.session.execute(sa.select(Organization)).scalar_one()
        db.session.add_all(
            AuditLog(organization_id=organization.id, action=f"test.entry{n:02d}", actor_label="t")
            for n in range(60)
        )
        db.session.commit()
    page = operator_client.get(f"/operators/organizations/{slug}").get_data(as_text=True)
    assert "test.entry59" in page
    assert "test.entry10" in page
    assert "test.entry09" not in page


# --------------------------------------------------------------------------- suspend / reactivate


def test_suspend_shows_the_suspended_page_keeps_data_and_reactivate_restores(
    app: Flask, operator_client: FlaskClient, slug: str
) -> None:
    with database(app):
        organization = db.session.execute(sa.select(Organization)).scalar_one()
        organization_id = organization.id
        owner = staff(organization, Role.OWNER)
        CustomerFactory(organization_ref=organization)
        CustomerFactory(organization_ref=organization)
        visitor = app.test_client()
        member = app.test_client()
        sign_in(member, owner)
    assert visitor.get(f"/o/{slug}/").status_code == 200
    assert member.get(f"/o/{slug}/admin/").status_code == 200

    response = operator_client.post(
        f"/operators/organizations/{slug}/suspend", data={"reason": "Unpaid invoices"}
    )
    assert response.status_code == 302
    assert organization_state(app, slug) == (OrganizationStatus.SUSPENDED, "Unpaid invoices")

    for client, path in ((visitor, f"/o/{slug}/"), (member, f"/o/{slug}/admin/")):
        response = client.get(path)
        assert response.status_code == 403
        assert "Club de natation is suspended" in response.get_data(as_text=True)
    # Nothing is deleted.
    assert count(app, Customer, Customer.organization_id == organization_id) == 2
    assert count(app, Membership, Membership.organization_id == organization_id) == 1

    page = operator_client.get(f"/operators/organizations/{slug}").get_data(as_text=True)
    assert "organization.suspended" in page
    assert "Unpaid invoices" in page
    assert f"/operators/organizations/{slug}/reactivate" in page

    response = operator_client.post(f"/operators/organizations/{slug}/reactivate")
    assert response.status_code == 302
    assert organization_state(app, slug) == (OrganizationStatus.ACTIVE, None)
    assert visitor.get(f"/o/{slug}/").status_code == 200
    assert member.get(f"/o/{slug}/admin/").status_code == 200

    assert audit_actions(app) == ["organization.suspended", "organization.reactivated"]
    with database(app):
        actors = set(db.session.execute(sa.select(AuditLog.actor_label)).scalars())
    assert actors == {"ops@comptoir.test"}


def test_suspend_needs_a_reason(app: Flask, operator_client: FlaskClient, slug: str) -> None:
    response = operator_client.post(
        f"/operators/organizations/{slug}/suspend", data={"reason": " "}
    )
    assert response.status_code == 422
    assert "error-summary" in response.get_data(as_text=True)
    assert organization_state(app, slug) == (OrganizationStatus.ACTIVE, None)
    assert audit_actions(app) == []


def test_suspending_twice_changes_nothing_more(
    app: Flask, operator_client: FlaskClient, slug: str
) -> None:
    for reason in ("First", "Second"):
        response = operator_client.post(
            f"/operators/organizations/{slug}/suspend", data={"reason": reason}
        )
        assert response.status_code == 302
    assert organization_state(app, slug) == (OrganizationStatus.SUSPENDED, "First")
    assert audit_actions(app) == ["organization.suspended"]


# --------------------------------------------------------------------------- custom domains


def test_add_and_remove_a_custom_domain(
    app: Flask, operator_client: FlaskClient, slug: str
) -> None:
    response = operator_client.post(
        f"/operators/organizations/{slug}/domains", data={"host": "Boutique.Natation.example"}
    )
    assert response.status_code == 302
    with database(app):
        domain = db.session.execute(sa.select(CustomDomain)).scalar_one()
        domain_id = domain.id
        assert domain.host == "boutique.natation.example"
        assert domain.organization.slug == slug

    # The microsite answers on that host.
    assert (
        operator_client.get("/", headers={"Host": "boutique.natation.example"}).status_code == 200
    )

    # Another organization cannot take it, and what is not a host name is refused.
    with database(app):
        OrganizationFactory(slug="autre")
    for host, message in (
        ("boutique.natation.example", "already in use"),
        ("not a host", "host name"),
        ("localhost", "host name"),
    ):
        response = operator_client.post(
            "/operators/organizations/autre/domains", data={"host": host}
        )
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    assert count(app, CustomDomain) == 1

    # Only the organization that has it can remove it.
    response = operator_client.post(f"/operators/organizations/autre/domains/{domain_id}/remove")
    assert response.status_code == 404
    response = operator_client.post(f"/operators/organizations/{slug}/domains/{domain_id}/remove")
    assert response.status_code == 302
    assert count(app, CustomDomain) == 0
    assert audit_actions(app) == ["custom_domain.added", "custom_domain.removed"]
