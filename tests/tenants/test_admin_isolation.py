"""Isolation: staff of one organization reach nothing of another through the admin portal.

Two organizations of the same shape. Every admin route (read from the URL map, so a new route is
covered without editing this test), with every method, is requested by alpha's owner with beta's
slug, and with alpha's slug but beta's ids: each answers 404 and no row changes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db, utcnow
from comptoir.platform.mail import MailMessage
from comptoir.platform.security import new_token, token_hash
from comptoir.tenants.models import ApiKey, Customer, Invitation, Membership, Role, User
from tests.factories import CustomerFactory, OrganizationFactory, staff
from tests.tenants.web import database, sign_in

WATCHED = (User, Membership, Invitation, Customer, ApiKey, AuditLog, MailMessage)
FORM = {
    "email": "intruder@example.org",
    "role": "attendant",
    "first_name": "Intrus",
    "last_name": "Sion",
    "phone": "",
    "name": "Stolen key",
}


def build(slug: str) -> dict[str, int]:
    organization = OrganizationFactory(slug=slug)
    for role in Role:
        staff(organization, role, email=f"{role}@{slug}.example")
    attendant = db.session.execute(
        sa.select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(User.email == f"attendant@{slug}.example")
    ).scalar_one()
    customer = CustomerFactory(organization_ref=organization)
    invitation = Invitation(
        organization_id=organization.id,
        email=f"pending@{slug}.example",
        role=Role.ATTENDANT,
        token_hash=token_hash(new_token()),
        expires_at=utcnow() + timedelta(days=7),
    )
    key = ApiKey(
        organization_id=organization.id,
        name="Integration",
        prefix=f"{slug[:4]}pref",
        secret_hash=token_hash(new_token()),
        role=Role.ADMIN,
    )
    db.session.add_all([invitation, key])
    db.session.commit()
    return {
        "membership_id": attendant,
        "customer_id": customer.id,
        "invitation_id": invitation.id,
        "key_id": key.id,
    }


@pytest.fixture
def organizations(app: Flask) -> dict[str, dict[str, int]]:
    with database(app):
        return {"alpha": build("alpha"), "beta": build("beta")}


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    with database(app):
        return {
            model.__tablename__: [
                tuple(row)
                for row in db.session.execute(
                    sa.select(model.__table__).order_by(model.__table__.c.id)
                ).all()
            ]
            for model in WATCHED
        }


def admin_requests(app: Flask, slug: str, ids: dict[str, int]) -> list[tuple[str, str]]:
    """(method, url) for every route and method of the admin blueprint."""
    found = []
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("tenants_admin."):
            continue
        values: dict[str, Any] = {"org_slug": slug}
        for argument in rule.arguments - {"org_slug"}:
            assert argument in ids, f"add {argument} to this test's objects"
            values[argument] = ids[argument]
        url = adapter.build(rule.endpoint, values)
        found.extend((method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return found


def test_every_admin_route_is_checked(app: Flask, organizations: dict[str, dict[str, int]]) -> None:
    requests = admin_requests(app, "beta", organizations["beta"])
    methods = {method for method, _ in requests}
    assert methods == {"GET", "POST"}
    assert len(requests) >= 14


@pytest.mark.parametrize("ids_of", ["alpha", "beta"])
def test_another_organizations_slug_is_404(
    app: Flask, client: FlaskClient, organizations: dict[str, dict[str, int]], ids_of: str
) -> None:
    sign_in(client, "owner@alpha.example")
    before = snapshot(app)

    for method, url in admin_requests(app, "beta", organizations[ids_of]):
        response = client.open(url, method=method, data=FORM if method == "POST" else None)
        assert response.status_code == 404, (method, url)

    assert snapshot(app) == before


def test_another_organizations_ids_are_404(
    app: Flask, client: FlaskClient, organizations: dict[str, dict[str, int]]
) -> None:
    sign_in(client, "owner@alpha.example")
    before = snapshot(app)
    checked = 0

    for method, url in admin_requests(app, "alpha", organizations["beta"]):
        if not any(str(value) in url.split("/") for value in organizations["beta"].values()):
            continue  # no id in this route
        response = client.open(url, method=method, data=FORM if method == "POST" else None)
        assert response.status_code == 404, (method, url)
        checked += 1

    assert checked >= 6
    assert snapshot(app) == before


def test_own_ids_work_under_own_slug(
    app: Flask, client: FlaskClient, organizations: dict[str, dict[str, int]]
) -> None:
    # The same requests succeed with alpha's own ids: the 404s above come from isolation.
    sign_in(client, "owner@alpha.example")
    ids = organizations["alpha"]
    assert client.get(f"/o/alpha/admin/customers/{ids['customer_id']}/edit").status_code == 200
    revoke = client.post(f"/o/alpha/admin/api-keys/{ids['key_id']}/revoke")
    assert revoke.status_code == 302
    with database(app):
        key = db.session.get(ApiKey, ids["key_id"])
        assert key is not None
        assert key.revoked_at is not None
