"""The admin portal's frame: sidebar entries by role, and the dashboard."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from comptoir.tenants.models import Role
from tests.factories import OrganizationFactory, staff

pytestmark = pytest.mark.usefixtures("app_context")


def sign_in_session(client: FlaskClient, user_id: str) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True


def test_dashboard_shows_sidebar_for_owner(app: Flask, client: FlaskClient) -> None:
    organization = OrganizationFactory(slug="alpha")
    owner = staff(organization, Role.OWNER)
    sign_in_session(client, owner.get_id())

    response = client.get("/o/alpha/admin/")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<aside class="sidebar">' in page
    assert "layout--sidebar" in page
    assert 'aria-current="page"' in page
    assert 'class="soon"' in page
    labels = ("Articles", "Checkout forms", "Orders", "Customers", "Stripe", "Staff", "API keys")
    for label in labels:
        assert label in page


def test_attendant_does_not_see_staff_or_stripe(app: Flask, client: FlaskClient) -> None:
    organization = OrganizationFactory(slug="alpha", default_locale="en")
    attendant = staff(organization, Role.ATTENDANT)
    sign_in_session(client, attendant.get_id())

    page = client.get("/o/alpha/admin/?lang=en").get_data(as_text=True)

    assert "Customers" in page
    assert "Stripe" not in page
    assert "API keys" not in page


def test_anonymous_visitor_is_sent_to_login(client: FlaskClient) -> None:
    OrganizationFactory(slug="alpha")

    response = client.get("/o/alpha/admin/")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
