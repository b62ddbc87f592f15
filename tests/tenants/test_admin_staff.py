"""The staff page: invite, change role, remove, withdraw invitations; who may do what."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db
from comptoir.platform.mail import MailMessage
from comptoir.tenants.models import Invitation, Membership, Role, User
from tests.factories import OrganizationFactory, staff
from tests.tenants.web import database, sign_in

STAFF = "/o/alpha/admin/staff/"


@pytest.fixture
def alpha(app: Flask) -> dict[str, Any]:
    with database(app):
        organization = OrganizationFactory(slug="alpha", default_locale="en")
        people = {role: staff(organization, role, email=f"{role}@alpha.example") for role in Role}
        memberships = {
            role: db.session.execute(
                sa.select(Membership.id).where(Membership.user_id == user.id)
            ).scalar_one()
            for role, user in people.items()
        }
        return {"id": organization.id, "membership": memberships}


def roles(app: Flask) -> dict[str, Role]:
    with database(app):
        rows = db.session.execute(
            sa.select(User.email, Membership.role).join(Membership, Membership.user_id == User.id)
        ).all()
    return dict(rows)


def invitations(app: Flask) -> list[tuple[str, Role, bool]]:
    with database(app):
        rows = db.session.execute(
            sa.select(Invitation.email, Invitation.role, Invitation.revoked_at.is_not(None))
        ).all()
    return [tuple(row) for row in rows]


def flashes(client: FlaskClient, response: Any) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    return client.get(response.headers["Location"]).get_data(as_text=True)


def test_owner_sees_members_and_pending_invitations(
    app: Flask, client: FlaskClient, alpha: dict[str, Any]
) -> None:
    sign_in(client, "owner@alpha.example")
    client.post(STAFF + "invitations/", data={"email": "soon@alpha.example", "role": "admin"})

    page = client.get(STAFF + "?lang=en").get_data(as_text=True)

    for email in ("owner@alpha.example", "admin@alpha.example", "attendant@alpha.example"):
        assert email in page
    assert "soon@alpha.example" in page
    assert '<option value="owner"' in page  # owners make owners
    assert f'<label class="visually-hidden" for="role-{alpha["membership"][Role.ADMIN]}">' in page


def test_invite_queues_an_email_and_lists_the_invitation(
    app: Flask, client: FlaskClient, alpha: dict[str, Any]
) -> None:
    sign_in(client, "owner@alpha.example")

    page = flashes(
        client,
        client.post(
            STAFF + "invitations/?lang=en",
            data={"email": "Coach@Alpha.example", "role": "attendant"},
        ),
    )

    assert "Invitation sent to coach@alpha.example" in page
    assert invitations(app) == [("coach@alpha.example", Role.ATTENDANT, False)]
    with database(app):
        mail = db.session.execute(sa.select(MailMessage)).scalar_one()
        assert mail.to_address == "coach@alpha.example"
        assert "/invitations/" in mail.text_body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not an address", "role": "attendant"}, "Enter a valid e-mail address."),
        ({"email": "admin@alpha.example", "role": "attendant"}, "already on the staff"),
        ({"email": "", "role": "attendant"}, "This field is required."),
        ({"email": "x@alpha.example", "role": "emperor"}, "Not a valid choice"),
    ],
)
def test_invalid_invitations_show_errors_and_save_nothing(
    app: Flask, client: FlaskClient, alpha: dict[str, Any], data: dict[str, str], message: str
) -> None:
    sign_in(client, "owner@alpha.example")

    response = client.post(STAFF + "invitations/?lang=en", data=data)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert 'class="error-summary"' in page
    assert 'href="#email"' in page or 'href="#role"' in page
    assert invitations(app) == []


def test_attendant_is_refused_staff_pages(
    app: Flask, client: FlaskClient, alpha: dict[str, Any]
) -> None:
    sign_in(client, "attendant@alpha.example")
    admin_id = alpha["membership"][Role.ADMIN]

    assert client.get(STAFF).status_code == 403
    assert client.get("/o/alpha/admin/api-keys/").status_code == 403
    invite = client.post(
        STAFF + "invitations/", data={"email": "x@example.org", "role": "attendant"}
    )
    demote = client.post(f"{STAFF}{admin_id}/role", data={"role": "attendant"})
    remove = client.post(f"{STAFF}{admin_id}/remove")

    assert (invite.status_code, demote.status_code, remove.status_code) == (403, 403, 403)
    assert invitations(app) == []
    assert roles(app)["admin@alpha.example"] is Role.ADMIN


def test_admin_cannot_grant_owner(app: Flask, client: FlaskClient, alpha: dict[str, Any]) -> None:
    sign_in(client, "admin@alpha.example")
    page = client.get(STAFF).get_data(as_text=True)
    assert '<option value="owner"' not in page

    invite = client.post(
        STAFF + "invitations/?lang=en", data={"email": "boss@example.org", "role": "owner"}
    )
    promote = client.post(
        f"{STAFF}{alpha['membership'][Role.ATTENDANT]}/role?lang=en", data={"role": "owner"}
    )
    assert "You cannot change this person" in flashes(client, promote)
    demote_owner = client.post(
        f"{STAFF}{alpha['membership'][Role.OWNER]}/role?lang=en", data={"role": "attendant"}
    )
    assert "You cannot change this person" in flashes(client, demote_owner)
    remove_owner = client.post(f"{STAFF}{alpha['membership'][Role.OWNER]}/remove?lang=en")
    assert "You cannot remove this person." in flashes(client, remove_owner)

    assert invite.status_code == 422
    assert "You cannot give this role." in invite.get_data(as_text=True)
    assert invitations(app) == []
    assert roles(app) == {
        "owner@alpha.example": Role.OWNER,
        "admin@alpha.example": Role.ADMIN,
        "attendant@alpha.example": Role.ATTENDANT,
    }


def test_owner_changes_a_role_and_it_is_audited(
    app: Flask, client: FlaskClient, alpha: dict[str, Any]
) -> None:
    sign_in(client, "owner@alpha.example")

    page = flashes(
        client,
        client.post(
            f"{STAFF}{alpha['membership'][Role.ATTENDANT]}/role?lang=en", data={"role": "admin"}
        ),
    )

    assert "role is changed" in page
    assert roles(app)["attendant@alpha.example"] is Role.ADMIN
    with database(app):
        entry = db.session.execute(
            sa.select(AuditLog).where(AuditLog.action == "staff.role_changed")
        ).scalar_one()
        assert entry.actor_label == "owner@alpha.example"
        assert entry.before == {"role": "attendant"}


def test_the_last_owner_can_be_neither_removed_nor_demoted(
    app: Flask, client: FlaskClient, alpha: dict[str, Any]
) -> None:
    sign_in(client, "owner@alpha.example")
    owner_id = alpha["membership"][Role.OWNER]

    removed = client.post(f"{STAFF}{owner_id}/remove?lang=en")
    assert "at least one owner" in flashes(client, removed)
    demoted = client.post(f"{STAFF}{owner_id}/role?lang=en", data={"role": "admin"})
    assert "at least one owner" in flashes(client, demoted)

    assert roles(app)["owner@alpha.example"] is Role.OWNER


def test_owner_removes_a_member(app: Flask, client: FlaskClient, alpha: dict[str, Any]) -> None:
    sign_in(client, "owner@alpha.example")
    leaver = app.test_client()
    sign_in(leaver, "attendant@alpha.example")

    page = flashes(
        client, client.post(f"{STAFF}{alpha['membership'][Role.ATTENDANT]}/remove?lang=en")
    )

    assert "attendant@alpha.example" not in roles(app)
    assert "is no longer on the staff." in page
    assert "attendant@alpha.example" not in page
    assert leaver.get("/o/alpha/admin/").status_code == 404


def test_owner_withdraws_an_invitation(
    app: Flask, client: FlaskClient, alpha: dict[str, Any], jobs: Any
) -> None:
    sign_in(client, "owner@alpha.example")
    client.post(STAFF + "invitations/", data={"email": "maybe@example.org", "role": "attendant"})
    with database(app):
        invitation_id = db.session.execute(sa.select(Invitation.id)).scalar_one()

    page = flashes(client, client.post(f"{STAFF}invitations/{invitation_id}/revoke?lang=en"))

    assert "withdrawn" in page
    assert invitations(app) == [("maybe@example.org", Role.ATTENDANT, True)]
