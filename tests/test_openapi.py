"""The OpenAPI document at /api/v1/openapi.json, and the API checked against it by schemathesis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from comptoir.platform.db import db
from comptoir.tenants.models import Customer, Role
from tests.factories import CustomerFactory, OrganizationFactory, api_key
from tests.tenants.api_helpers import assume_sent_as_generated, bearer, database

CUSTOMER_OPERATIONS = [
    ("/api/v1/o/{org}/customers", "get"),
    ("/api/v1/o/{org}/customers", "post"),
    ("/api/v1/o/{org}/customers/{customer_id}", "get"),
    ("/api/v1/o/{org}/customers/{customer_id}", "patch"),
]


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def test_the_document_is_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == "v1"


def test_customers_operations_require_the_bearer_scheme(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, method in CUSTOMER_OPERATIONS:
        operation = document["paths"][path][method]
        assert operation["security"] == [{"bearerAuth": []}], (path, method)
        assert {"401", "403", "404"} <= set(operation["responses"]), (path, method)


def test_errors_are_documented_with_the_error_shape(document: dict[str, Any]) -> None:
    responses = document["components"]["responses"]
    for name in ("UNAUTHORIZED", "NOT_FOUND", "UNPROCESSABLE_ENTITY", "DEFAULT_ERROR"):
        schema = responses[name]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message", "fields"}
    create = document["paths"]["/api/v1/o/{org}/customers"]["post"]
    assert create["responses"]["422"] == {"$ref": "#/components/responses/UNPROCESSABLE_ENTITY"}


def test_customer_schemas_are_allow_lists(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Customer"]["properties"]["id"]["readOnly"] is True
    assert set(schemas["Customer"]["required"]) == {
        "id",
        "first_name",
        "last_name",
        "email",
        "phone",
    }
    for name in ("CustomerCreate", "CustomerUpdate"):
        assert schemas[name]["additionalProperties"] is False
        assert "id" not in schemas[name]["properties"]
    assert set(schemas["CustomerPage"]["required"]) == {"items", "page", "pages", "total"}


# --------------------------------------------------------------------------- schemathesis


@dataclass
class Fuzzed:
    organization_id: int
    key: str
    customer_ids: list[int]


@pytest.fixture
def fuzzed(app: Flask) -> Fuzzed:
    with database(app):
        organization = OrganizationFactory(slug="fuzz")
        customers = [CustomerFactory(organization_ref=organization) for _ in range(3)]
        return Fuzzed(
            organization_id=organization.id,
            key=api_key(organization, Role.ADMIN),
            customer_ids=[customer.id for customer in customers],
        )


def _forget_created_customers(app: Flask, fuzzed: Fuzzed) -> None:
    """Start every example from the same customers, so that no two examples share an address."""
    with database(app):
        db.session.execute(
            sa.delete(Customer).where(
                Customer.organization_id == fuzzed.organization_id,
                Customer.id.not_in(fuzzed.customer_ids),
            )
        )
        db.session.commit()


FUZZED_OPERATIONS = [
    *((path, method, False) for path, method in CUSTOMER_OPERATIONS),
    # Drawn ids almost never exist: also aim at a real customer to reach the happy path.
    ("/api/v1/o/{org}/customers/{customer_id}", "get", True),
    ("/api/v1/o/{org}/customers/{customer_id}", "patch", True),
]


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize(
    "target", FUZZED_OPERATIONS, ids=lambda t: f"{t[1].upper()} {t[0]}{' (existing)' * t[2]}"
)
def test_customers_api_conforms_to_its_document(
    app: Flask, fuzzed: Fuzzed, target: tuple[str, str, bool], mode: GenerationMode
) -> None:
    path, method, existing = target
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema[path][method.upper()]
    pinned: dict[str, Any] = {"org": "fuzz"}
    if existing:
        pinned["customer_id"] = fuzzed.customer_ids[0]
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=pinned)

    @given(case=strategy)
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        assume_sent_as_generated(case)
        try:
            case.call_and_validate(headers=bearer(fuzzed.key))
        finally:
            _forget_created_customers(app, fuzzed)

    check()
