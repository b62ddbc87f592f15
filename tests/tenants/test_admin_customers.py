"""The customer database pages: list, search, pagination, create and edit with validation."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.db import db
from comptoir.tenants.models import Customer, Role
from tests.factories import CustomerFactory, OrganizationFactory, staff
from tests.tenants.web import database, sign_in

CUSTOMERS = "/o/alpha/admin/customers/"
VALID = {"first_name": "Léa", "last_name": "Tremblay", "email": "lea@example.org", "phone": ""}


@pytest.fixture
def alpha(app: Flask) -> dict[str, Any]:
    with database(app):
        organization = OrganizationFactory(slug="alpha", default_locale="en")
        staff(organization, Role.ATTENDANT, email="attendant@alpha.example")
        existing = CustomerFactory(
            organization_ref=organization,
            first_name="Marc",
            last_name="Gagnon",
            email="Marc.Gagnon@example.org",
            phone="(514) 555-0199",
        )
        return {"id": organization.id, "customer_id": existing.id}


@pytest.fixture
def signed_in(client: FlaskClient, alpha: dict[str, Any]) -> FlaskClient:
    sign_in(client, "attendant@alpha.example")
    return client


def customer_rows(app: Flask) -> list[tuple[str, str, str, str]]:
    with database(app):
        rows = db.session.execute(
            sa.select(
                Customer.first_name, Customer.last_name, Customer.email, Customer.phone
            ).order_by(Customer.id)
        ).all()
    return [tuple(row) for row in rows]


def test_list_and_search(app: Flask, signed_in: FlaskClient, alpha: dict[str, Any]) -> None:
    with database(app):
        CustomerFactory(organization_id=alpha["id"], first_name="Zoé", last_name="Roy")

    everyone = signed_in.get(CUSTOMERS + "?lang=en").get_data(as_text=True)
    by_name = signed_in.get(CUSTOMERS + "?q=gagn").get_data(as_text=True)
    by_phone = signed_in.get(CUSTOMERS + "?q=555-0199").get_data(as_text=True)
    nobody = signed_in.get(CUSTOMERS + "?q=nobody&lang=en").get_data(as_text=True)

    assert "Gagnon" in everyone
    assert "Roy" in everyone
    assert "2 customers." in everyone
    assert "Gagnon" in by_name
    assert "Roy" not in by_name
    assert "Gagnon" in by_phone
    assert "Gagnon" not in nobody
    assert "0 customers match." in nobody
    assert '<label for="q">' in everyone


def test_pagination_shows_fifty_per_page(
    app: Flask, signed_in: FlaskClient, alpha: dict[str, Any]
) -> None:
    with database(app):
        for number in range(60):
            CustomerFactory(
                organization_id=alpha["id"], last_name=f"Zz{number:03d}", first_name="Page"
            )

    first = signed_in.get(CUSTOMERS + "?lang=en").get_data(as_text=True)
    second = signed_in.get(CUSTOMERS + "?page=2").get_data(as_text=True)
    beyond = signed_in.get(CUSTOMERS + "?page=99").get_data(as_text=True)

    def edit_links(page: str) -> int:
        return len(re.findall(r'/customers/\d+/edit"', page))

    assert edit_links(first) == 50
    assert edit_links(second) == 11
    assert "Page 1 of 2" in first
    assert 'rel="next"' in first
    assert 'href="/o/alpha/admin/customers/?page=2"' in first
    assert edit_links(beyond) == 11  # past the end: the last page


def test_create_customer(app: Flask, signed_in: FlaskClient) -> None:
    response = signed_in.post(CUSTOMERS + "new?lang=en", data=VALID)

    assert response.status_code == 302
    assert response.headers["Location"] == CUSTOMERS
    assert "Customer Léa Tremblay is added." in signed_in.get(CUSTOMERS).get_data(as_text=True)
    assert customer_rows(app)[-1] == ("Léa", "Tremblay", "lea@example.org", "")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "Enter a valid e-mail address."),
        (
            {"email": "MARC.gagnon@EXAMPLE.org"},
            "email",
            "A customer with this e-mail already exists.",
        ),
        ({"first_name": "   "}, "first_name", "First name is required."),
        ({"last_name": ""}, "last_name", "Last name is required."),
        ({"last_name": "x" * 101}, "last_name", "Use at most 100 characters."),
        ({"phone": "call me"}, "phone", "Enter a phone number"),
    ],
)
def test_invalid_customers_are_refused_and_nothing_is_saved(
    app: Flask, signed_in: FlaskClient, changes: dict[str, str], field: str, message: str
) -> None:
    before = customer_rows(app)

    response = signed_in.post(CUSTOMERS + "new?lang=en", data={**VALID, **changes})

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert f'href="#{field}"' in page  # the error summary links to the field
    assert f'id="{field}-error"' in page
    assert 'aria-invalid="true"' in page
    assert customer_rows(app) == before


def test_every_mistake_is_listed_at_once(app: Flask, signed_in: FlaskClient) -> None:
    response = signed_in.post(
        CUSTOMERS + "new?lang=en",
        data={"first_name": "", "last_name": " ", "email": "nope", "phone": "?"},
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for field in ("first_name", "last_name", "email", "phone"):
        assert f'href="#{field}"' in page


def test_edit_customer(app: Flask, signed_in: FlaskClient, alpha: dict[str, Any]) -> None:
    url = f"{CUSTOMERS}{alpha['customer_id']}/edit"
    form = signed_in.get(url).get_data(as_text=True)
    assert 'value="Marc.Gagnon@example.org"' in form

    response = signed_in.post(
        url,
        data={
            "first_name": "Marc",
            "last_name": "Gagnon-Roy",
            "email": "marc@example.org",
            "phone": "",
        },
    )

    assert response.status_code == 302
    assert customer_rows(app) == [("Marc", "Gagnon-Roy", "marc@example.org", "")]


def test_edit_customer_refuses_a_duplicate_email(
    app: Flask, signed_in: FlaskClient, alpha: dict[str, Any]
) -> None:
    with database(app):
        CustomerFactory(organization_id=alpha["id"], email="taken@example.org")
    before = customer_rows(app)

    response = signed_in.post(
        f"{CUSTOMERS}{alpha['customer_id']}/edit?lang=en",
        data={"first_name": "Marc", "last_name": "Gagnon", "email": "TAKEN@example.org"},
    )

    assert response.status_code == 422
    assert "A customer with this e-mail already exists." in response.get_data(as_text=True)
    assert customer_rows(app) == before


def test_same_email_is_fine_in_another_organization(app: Flask, signed_in: FlaskClient) -> None:
    with database(app):
        other = OrganizationFactory(slug="beta")
        CustomerFactory(organization_ref=other, email="lea@example.org")

    response = signed_in.post(CUSTOMERS + "new", data=VALID)

    assert response.status_code == 302


def test_unknown_customer_is_404(signed_in: FlaskClient) -> None:
    assert signed_in.get(f"{CUSTOMERS}999999/edit").status_code == 404
