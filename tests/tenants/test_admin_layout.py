"""The admin portal's frame: sidebar entries by role, the dashboard, who may open it."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from comptoir.tenants import navigation
from comptoir.tenants.models import Role
from tests.factories import OrganizationFactory, staff
from tests.tenants.web import database, sign_in


@pytest.fixture
def alpha(app: Flask) -> dict[Role, str]:
    with database(app):
        organization = OrganizationFactory(slug="alpha", default_locale="en")
        return {role: staff(organization, role).email for role in Role}


def test_dashboard_shows_the_sidebar_for_an_owner(
    client: FlaskClient, alpha: dict[Role, str]
) -> None:
    sign_in(client, alpha[Role.OWNER])

    response = client.get("/o/alpha/admin/")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<aside class="sidebar">' in page
    assert "layout--sidebar" in page
    assert '<a href="/o/alpha/admin/" aria-current="page">' in page
    assert '<a href="/o/alpha/admin/customers/">' in page
    assert '<a href="/o/alpha/admin/staff/">' in page
    assert '<a href="/o/alpha/admin/api-keys/">' in page
    labels = ("E-Commerce", "Articles", "Checkout forms", "Orders", "Shop settings", "Stripe")
    for label in labels:
        assert label in page
    assert '<a href="/o/alpha/admin/stripe/">' in page
    assert '<span class="soon">' not in page  # every entry has its page now


def test_current_page_is_marked_in_the_sidebar(client: FlaskClient, alpha: dict[Role, str]) -> None:
    sign_in(client, alpha[Role.OWNER])
    page = client.get("/o/alpha/admin/customers/").get_data(as_text=True)
    assert '<a href="/o/alpha/admin/customers/" aria-current="page">' in page
    assert '<a href="/o/alpha/admin/" aria-current' not in page


def test_attendant_sees_only_what_the_role_allows(
    client: FlaskClient, alpha: dict[Role, str]
) -> None:
    sign_in(client, alpha[Role.ATTENDANT])

    page = client.get("/o/alpha/admin/").get_data(as_text=True)

    assert "/o/alpha/admin/customers/" in page
    assert "Stripe" not in page
    assert "API keys" not in page
    assert "/o/alpha/admin/staff/" not in page


def test_admin_does_not_see_stripe(client: FlaskClient, alpha: dict[Role, str]) -> None:
    sign_in(client, alpha[Role.ADMIN])
    page = client.get("/o/alpha/admin/").get_data(as_text=True)
    assert "Stripe" not in page
    assert "/o/alpha/admin/api-keys/" in page


def test_an_entry_becomes_a_link_once_its_page_exists(
    client: FlaskClient, alpha: dict[Role, str]
) -> None:
    item = navigation.find_item("articles")
    sign_in(client, alpha[Role.OWNER])
    try:
        navigation.set_endpoint("articles", "tenants_admin.dashboard")
        page = client.get("/o/alpha/admin/customers/").get_data(as_text=True)
    finally:
        item.endpoint = None
    assert '<span class="soon">Articles' not in page
    assert '<a href="/o/alpha/admin/">Articles</a>' in page


def test_anonymous_visitor_is_sent_to_login(client: FlaskClient, alpha: dict[Role, str]) -> None:
    for path in ("/o/alpha/admin/", "/o/alpha/admin/customers/?q=x", "/o/alpha/admin/staff/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=/o/alpha/admin/")


def test_unknown_organization_is_404(client: FlaskClient, alpha: dict[Role, str]) -> None:
    sign_in(client, alpha[Role.OWNER])
    assert client.get("/o/nowhere/admin/").status_code == 404
