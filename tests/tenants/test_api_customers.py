"""``/api/v1/o/<org>/customers``: shapes, validation, pagination and isolation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.db import db
from comptoir.tenants.models import Organization, Role
from tests.factories import CustomerFactory, OrganizationFactory, api_key
from tests.tenants.api_helpers import audit_actions, bearer, customers_of, database

VALID = {
    "first_name": "Léa",
    "last_name": "Tremblay",
    "email": "lea.tremblay@example.org",
    "phone": "514-555-0101",
}


@dataclass
class Shop:
    """Two organizations of the same shape; the tests call alpha's API with alpha's admin key."""

    alpha_id: int
    beta_id: int
    headers: dict[str, str]
    alpha_customer_ids: list[int]
    beta_customer_ids: list[int]


@pytest.fixture
def shop(app: Flask) -> Shop:
    with database(app):
        alpha = OrganizationFactory(slug="alpha")
        beta = OrganizationFactory(slug="beta")
        ids: dict[int, list[int]] = {alpha.id: [], beta.id: []}
        for organization in (alpha, beta):
            for first, last, email in (
                ("Marie", "Gagnon", "marie@example.org"),
                ("Jean", "Roy", "jean@example.org"),
            ):
                customer = CustomerFactory(
                    organization_ref=organization, first_name=first, last_name=last, email=email
                )
                ids[organization.id].append(customer.id)
        return Shop(
            alpha_id=alpha.id,
            beta_id=beta.id,
            headers=bearer(api_key(alpha, Role.ADMIN)),
            alpha_customer_ids=ids[alpha.id],
            beta_customer_ids=ids[beta.id],
        )


def _fields(response: object) -> dict[str, list[str]]:
    assert response.status_code == 422, response.get_data(as_text=True)  # type: ignore[attr-defined]
    error = response.get_json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == "validation_error"
    assert error["message"]
    return error["fields"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- happy paths


def test_create_answers_201_with_the_customer(app: Flask, shop: Shop, client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/o/alpha/customers",
        json={**VALID, "first_name": "  Léa ", "email": "Lea.Tremblay@Example.org"},
        headers=shop.headers,
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body == {
        "id": body["id"],
        "first_name": "Léa",
        "last_name": "Tremblay",
        "email": "Lea.Tremblay@example.org",
        "phone": "514-555-0101",
    }
    stored = customers_of(app, shop.alpha_id)[-1]
    assert stored["id"] == body["id"]
    assert stored["email_normalized"] == "lea.tremblay@example.org"
    assert audit_actions(app, shop.alpha_id)[-1][0] == "customer.created"


def test_phone_is_optional(shop: Shop, client: FlaskClient) -> None:
    body = {key: value for key, value in VALID.items() if key != "phone"}

    response = client.post("/api/v1/o/alpha/customers", json=body, headers=shop.headers)

    assert response.status_code == 201
    assert response.get_json()["phone"] == ""


def test_get_answers_the_customer(shop: Shop, client: FlaskClient) -> None:
    customer_id = shop.alpha_customer_ids[0]

    response = client.get(f"/api/v1/o/alpha/customers/{customer_id}", headers=shop.headers)

    assert response.status_code == 200
    assert response.get_json() == {
        "id": customer_id,
        "first_name": "Marie",
        "last_name": "Gagnon",
        "email": "marie@example.org",
        "phone": "514-555-0100",
    }


def test_patch_changes_only_what_is_sent_and_answers_the_whole_customer(
    app: Flask, shop: Shop, client: FlaskClient
) -> None:
    customer_id = shop.alpha_customer_ids[0]

    response = client.patch(
        f"/api/v1/o/alpha/customers/{customer_id}",
        json={"phone": "", "email": "MARIE.G@example.org"},
        headers=shop.headers,
    )

    assert response.status_code == 200
    assert response.get_json() == {
        "id": customer_id,
        "first_name": "Marie",
        "last_name": "Gagnon",
        "email": "MARIE.G@example.org",
        "phone": "",
    }
    stored = next(c for c in customers_of(app, shop.alpha_id) if c["id"] == customer_id)
    assert stored["email_normalized"] == "marie.g@example.org"
    assert audit_actions(app, shop.alpha_id)[-1][0] == "customer.updated"


def test_patch_may_keep_the_customers_own_email(shop: Shop, client: FlaskClient) -> None:
    customer_id = shop.alpha_customer_ids[0]

    response = client.patch(
        f"/api/v1/o/alpha/customers/{customer_id}",
        json={"email": "Marie@Example.org"},
        headers=shop.headers,
    )

    assert response.status_code == 200


def test_list_is_sorted_and_searchable(shop: Shop, client: FlaskClient) -> None:
    everyone = client.get("/api/v1/o/alpha/customers", headers=shop.headers)
    found = client.get("/api/v1/o/alpha/customers?q=mar", headers=shop.headers)
    by_phone = client.get("/api/v1/o/alpha/customers?q=5550100", headers=shop.headers)
    nobody = client.get("/api/v1/o/alpha/customers?q=zzz", headers=shop.headers)

    assert everyone.status_code == 200
    assert [c["last_name"] for c in everyone.get_json()["items"]] == ["Gagnon", "Roy"]
    assert [c["email"] for c in found.get_json()["items"]] == ["marie@example.org"]
    assert by_phone.get_json()["total"] == 2
    assert nobody.get_json() == {"items": [], "page": 1, "pages": 0, "total": 0}


def test_pagination_counts_pages(app: Flask, shop: Shop, client: FlaskClient) -> None:
    with database(app):
        alpha = db.session.get(Organization, shop.alpha_id)
        for number in range(3):
            CustomerFactory(organization_ref=alpha, last_name=f"Zed{number}")

    pages = [
        client.get(f"/api/v1/o/alpha/customers?per_page=2&page={page}", headers=shop.headers)
        for page in (1, 2, 3, 4)
    ]

    bodies = [page.get_json() for page in pages]
    assert [(b["page"], b["pages"], b["total"]) for b in bodies] == [
        (1, 3, 5),
        (2, 3, 5),
        (3, 3, 5),
        (4, 3, 5),
    ]
    assert [len(b["items"]) for b in bodies] == [2, 2, 1, 0]
    names = [c["last_name"] for b in bodies for c in b["items"]]
    assert names == ["Gagnon", "Roy", "Zed0", "Zed1", "Zed2"]
    default = client.get("/api/v1/o/alpha/customers", headers=shop.headers).get_json()
    assert (default["page"], default["pages"], default["total"]) == (1, 1, 5)
    largest = client.get("/api/v1/o/alpha/customers?per_page=200", headers=shop.headers)
    assert largest.status_code == 200


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**VALID, "email": "not-an-address"}, "email"),
        ({**VALID, "email": "lea@localhost"}, "email"),
        ({**VALID, "first_name": ""}, "first_name"),
        ({**VALID, "last_name": "   "}, "last_name"),
        ({**VALID, "first_name": "L\u0000a"}, "first_name"),
        ({**VALID, "first_name": "x" * 101}, "first_name"),
        ({**VALID, "first_name": None}, "first_name"),
        ({**VALID, "first_name": 12}, "first_name"),
        ({**VALID, "phone": "call me"}, "phone"),
        ({**VALID, "id": 99}, "id"),
        ({**VALID, "notes": "VIP"}, "notes"),
        ({"first_name": "Léa", "last_name": "Tremblay"}, "email"),
    ],
)
def test_create_refuses_bad_input_and_saves_nothing(
    app: Flask, shop: Shop, client: FlaskClient, body: dict[str, object], field: str
) -> None:
    before = customers_of(app, shop.alpha_id)

    response = client.post("/api/v1/o/alpha/customers", json=body, headers=shop.headers)

    assert field in _fields(response)
    assert customers_of(app, shop.alpha_id) == before


def test_create_refuses_a_duplicate_email_whatever_its_case(
    app: Flask, shop: Shop, client: FlaskClient
) -> None:
    before = customers_of(app, shop.alpha_id)

    response = client.post(
        "/api/v1/o/alpha/customers",
        json={**VALID, "email": "MARIE@example.ORG"},
        headers=shop.headers,
    )

    assert _fields(response)["email"] == ["A customer with this e-mail already exists."]
    assert customers_of(app, shop.alpha_id) == before


def test_the_same_email_may_exist_in_another_organization(
    app: Flask, shop: Shop, client: FlaskClient
) -> None:
    with database(app):
        beta = db.session.get(Organization, shop.beta_id)
        CustomerFactory(organization_ref=beta, email="only.beta@example.org")

    response = client.post(
        "/api/v1/o/alpha/customers",
        json={**VALID, "email": "Only.Beta@example.org"},
        headers=shop.headers,
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "JEAN@example.org"}, "email"),
        ({"email": "nope"}, "email"),
        ({"first_name": " "}, "first_name"),
        ({"last_name": None}, "last_name"),
        ({"id": 5}, "id"),
        ({"email_normalized": "x@example.org"}, "email_normalized"),
    ],
)
def test_patch_refuses_bad_input_and_changes_nothing(
    app: Flask, shop: Shop, client: FlaskClient, body: dict[str, object], field: str
) -> None:
    before = customers_of(app, shop.alpha_id)
    audit_before = audit_actions(app, shop.alpha_id)

    response = client.patch(
        f"/api/v1/o/alpha/customers/{shop.alpha_customer_ids[0]}", json=body, headers=shop.headers
    )

    assert field in _fields(response)
    assert customers_of(app, shop.alpha_id) == before
    assert audit_actions(app, shop.alpha_id) == audit_before


@pytest.mark.parametrize(
    "query",
    ["page=0", "page=-1", "page=abc", "per_page=0", "per_page=201", "per_page=1.5", "perpage=10"],
)
def test_list_refuses_bad_paging(shop: Shop, client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/o/alpha/customers?{query}", headers=shop.headers)

    name = query.split("=", maxsplit=1)[0]
    assert name in _fields(response)


def test_list_refuses_control_characters_in_q(shop: Shop, client: FlaskClient) -> None:
    response = client.get("/api/v1/o/alpha/customers?q=a%00b", headers=shop.headers)

    assert "q" in _fields(response)


@pytest.mark.parametrize(
    "payload",
    [b'{"first_name": "L', b"\xff\xfe{}", b"nan", b"{'a': 1}"],
)
def test_malformed_json_is_a_400_error_and_saves_nothing(
    app: Flask, shop: Shop, client: FlaskClient, payload: bytes
) -> None:
    before = customers_of(app, shop.alpha_id)

    response = client.post(
        "/api/v1/o/alpha/customers",
        data=payload,
        headers={**shop.headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_request"
    assert error["message"] == "The request body is not valid JSON."
    assert error["fields"] == {}
    assert customers_of(app, shop.alpha_id) == before


@pytest.mark.parametrize("payload", [[], "text", 3, None])
def test_a_body_that_is_not_an_object_is_refused(
    app: Flask, shop: Shop, client: FlaskClient, payload: object
) -> None:
    before = customers_of(app, shop.alpha_id)

    response = client.post("/api/v1/o/alpha/customers", json=payload, headers=shop.headers)

    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_error"
    assert customers_of(app, shop.alpha_id) == before


def test_a_lone_surrogate_is_refused(app: Flask, shop: Shop, client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/o/alpha/customers",
        data=b'{"first_name": "\\ud800", "last_name": "Roy", "email": "r@example.org"}',
        headers={**shop.headers, "Content-Type": "application/json"},
    )

    assert "first_name" in _fields(response)
    assert len(customers_of(app, shop.alpha_id)) == 2


@pytest.mark.parametrize(
    "customer_id", ["999999", "9223372036854775807", "9223372036854775808", "0", "-1", "abc"]
)
def test_unknown_ids_are_404(shop: Shop, client: FlaskClient, customer_id: str) -> None:
    read = client.get(f"/api/v1/o/alpha/customers/{customer_id}", headers=shop.headers)
    patched = client.patch(
        f"/api/v1/o/alpha/customers/{customer_id}", json={"first_name": "X"}, headers=shop.headers
    )

    for response in (read, patched):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def test_an_unsupported_method_is_405_with_allow(shop: Shop, client: FlaskClient) -> None:
    response = client.delete(
        f"/api/v1/o/alpha/customers/{shop.alpha_customer_ids[0]}", headers=shop.headers
    )

    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PATCH"}


# --------------------------------------------------------------------------- isolation


def test_another_organizations_customers_are_404_and_unchanged(
    app: Flask, shop: Shop, client: FlaskClient
) -> None:
    before = customers_of(app, shop.beta_id)
    audit_before = audit_actions(app, shop.beta_id)

    for customer_id in shop.beta_customer_ids:
        read = client.get(f"/api/v1/o/alpha/customers/{customer_id}", headers=shop.headers)
        patched = client.patch(
            f"/api/v1/o/alpha/customers/{customer_id}",
            json={"first_name": "Pirate", "email": "pirate@example.org"},
            headers=shop.headers,
        )
        for response in (read, patched):
            assert response.status_code == 404
            assert response.get_json()["error"]["code"] == "not_found"

    listed = client.get("/api/v1/o/alpha/customers?per_page=200", headers=shop.headers)
    assert {c["id"] for c in listed.get_json()["items"]} == set(shop.alpha_customer_ids)
    assert listed.get_json()["total"] == 2
    assert customers_of(app, shop.beta_id) == before
    assert audit_actions(app, shop.beta_id) == audit_before
