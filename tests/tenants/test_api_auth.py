"""Who may call ``/api/v1/o/<org>/…``: API keys, staff sessions with CSRF, and everyone else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask, g
from flask.testing import FlaskClient

from comptoir.app import create_app
from comptoir.platform.audit import Actor
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import ForbiddenError
from comptoir.platform.tenancy import tenant_scope
from comptoir.tenants import services
from comptoir.tenants.api_support import (
    organization_api_blueprint,
    public_endpoint,
    require_permission,
)
from comptoir.tenants.context import current_role
from comptoir.tenants.models import ApiKey, Organization, OrganizationStatus, Role
from comptoir.tenants.permissions import Permission
from comptoir.tenants.views import api as customers_api
from tests.conftest import make_settings
from tests.factories import CustomerFactory, OrganizationFactory, UserFactory, api_key, staff
from tests.tenants.api_helpers import (
    audit_actions,
    bearer,
    csrf_token,
    customers_of,
    database,
    sign_in_session,
)

NEW_CUSTOMER = {"first_name": "Léa", "last_name": "Tremblay", "email": "lea@example.org"}


@dataclass
class Tenants:
    alpha_id: int
    beta_id: int
    alpha_key: str
    beta_key: str
    alpha_owner: str  # Flask-Login session id of a staff member of alpha
    beta_customer_id: int


@pytest.fixture
def tenants(app: Flask) -> Tenants:
    with database(app):
        alpha = OrganizationFactory(slug="alpha")
        beta = OrganizationFactory(slug="beta")
        owner = staff(alpha, Role.OWNER)
        beta_customer = CustomerFactory(organization_ref=beta)
        return Tenants(
            alpha_id=alpha.id,
            beta_id=beta.id,
            alpha_key=api_key(alpha, Role.ATTENDANT),
            beta_key=api_key(beta, Role.OWNER),
            alpha_owner=owner.get_id(),
            beta_customer_id=beta_customer.id,
        )


@pytest.fixture(scope="module")
def csrf_app(
    app: Flask, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Flask:
    """The same application with CSRF protection on, as in production."""
    instance: Path = tmp_path_factory.mktemp("csrf-instance")
    return create_app(make_settings(database_url, redis_url, instance, WTF_CSRF_ENABLED=True))


@pytest.fixture
def csrf_client(csrf_app: Flask) -> FlaskClient:
    return csrf_app.test_client()


def _error(response: object) -> dict[str, object]:
    body = response.get_json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- API keys


def test_missing_key_is_401_with_a_bearer_challenge(tenants: Tenants, client: FlaskClient) -> None:
    response = client.get("/api/v1/o/alpha/customers")

    assert response.status_code == 401
    assert _error(response)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer nonsense",
        "Bearer cpt_nothere_secret",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "bearer",
    ],
)
def test_garbage_credentials_are_401(
    tenants: Tenants, client: FlaskClient, authorization: str
) -> None:
    response = client.get("/api/v1/o/alpha/customers", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert _error(response)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_secret_with_a_real_prefix_is_401(tenants: Tenants, client: FlaskClient) -> None:
    scheme, prefix, _secret = tenants.alpha_key.split("_", 2)
    forged = f"{scheme}_{prefix}_{'A' * 43}"

    response = client.get("/api/v1/o/alpha/customers", headers=bearer(forged))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer error=invalid_token"


def test_a_revoked_key_is_401(app: Flask, tenants: Tenants, client: FlaskClient) -> None:
    assert (
        client.get("/api/v1/o/alpha/customers", headers=bearer(tenants.alpha_key)).status_code
        == 200
    )
    with database(app), tenant_scope(tenants.alpha_id):
        key = db.session.execute(sa.select(ApiKey)).scalar_one()
        services.revoke_api_key(
            organization=db.session.get(Organization, tenants.alpha_id),
            actor=Actor(label="tests", role="owner"),
            key=key,
        )
        db.session.commit()

    response = client.get("/api/v1/o/alpha/customers", headers=bearer(tenants.alpha_key))

    assert response.status_code == 401
    assert _error(response)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_key_of_another_organization_is_404_and_changes_nothing(
    app: Flask, tenants: Tenants, client: FlaskClient
) -> None:
    before = customers_of(app, tenants.beta_id)
    headers = bearer(tenants.alpha_key)

    listed = client.get("/api/v1/o/beta/customers", headers=headers)
    created = client.post("/api/v1/o/beta/customers", json=NEW_CUSTOMER, headers=headers)
    read = client.get(f"/api/v1/o/beta/customers/{tenants.beta_customer_id}", headers=headers)
    patched = client.patch(
        f"/api/v1/o/beta/customers/{tenants.beta_customer_id}",
        json={"first_name": "Changed"},
        headers=headers,
    )

    for response in (listed, created, read, patched):
        assert response.status_code == 404
        assert _error(response)["code"] == "not_found"
    assert customers_of(app, tenants.beta_id) == before
    assert audit_actions(app, tenants.beta_id) == [("api_key.created", "tests")]


def test_unknown_organization_is_404_json(tenants: Tenants, client: FlaskClient) -> None:
    for headers in ({}, bearer(tenants.alpha_key)):
        response = client.get("/api/v1/o/nowhere/customers", headers=headers)

        assert response.status_code == 404
        assert response.mimetype == "application/json"
        assert _error(response)["code"] == "not_found"


def test_a_suspended_organization_answers_403_json(
    app: Flask, tenants: Tenants, client: FlaskClient
) -> None:
    with database(app):
        organization = db.session.get(Organization, tenants.alpha_id)
        assert organization is not None
        organization.status = OrganizationStatus.SUSPENDED
        db.session.commit()

    response = client.get("/api/v1/o/alpha/customers", headers=bearer(tenants.alpha_key))

    assert response.status_code == 403
    assert _error(response)["code"] == "organization_suspended"


def test_using_a_key_records_when_it_was_last_used(
    app: Flask, tenants: Tenants, client: FlaskClient
) -> None:
    started = utcnow()

    assert (
        client.get("/api/v1/o/alpha/customers", headers=bearer(tenants.alpha_key)).status_code
        == 200
    )

    with database(app):
        last_used = db.session.execute(
            sa.select(ApiKey.last_used_at).where(ApiKey.organization_id == tenants.alpha_id)
        ).scalar_one()
    assert last_used is not None
    assert last_used >= started


def test_an_attendant_key_reads_and_creates_customers(
    app: Flask, tenants: Tenants, client: FlaskClient
) -> None:
    headers = bearer(tenants.alpha_key)

    created = client.post("/api/v1/o/alpha/customers", json=NEW_CUSTOMER, headers=headers)
    listed = client.get("/api/v1/o/alpha/customers", headers=headers)

    assert created.status_code == 201
    assert listed.status_code == 200
    assert [item["email"] for item in listed.get_json()["items"]] == ["lea@example.org"]
    prefix = tenants.alpha_key.split("_")[1]
    assert ("customer.created", f"api-key:{prefix}") in audit_actions(app, tenants.alpha_id)


def test_bearer_calls_need_no_csrf_token_when_csrf_is_on(
    csrf_app: Flask, tenants: Tenants, csrf_client: FlaskClient
) -> None:
    response = csrf_client.post(
        "/api/v1/o/alpha/customers", json=NEW_CUSTOMER, headers=bearer(tenants.alpha_key)
    )

    assert response.status_code == 201


# --------------------------------------------------------------------------- staff sessions


def test_a_staff_session_reads_without_csrf_token(
    csrf_app: Flask, tenants: Tenants, csrf_client: FlaskClient
) -> None:
    sign_in_session(csrf_client, tenants.alpha_owner)

    response = csrf_client.get("/api/v1/o/alpha/customers")

    assert response.status_code == 200
    assert response.get_json() == {"items": [], "page": 1, "pages": 0, "total": 0}


def test_a_staff_session_writes_only_with_the_csrf_header(
    csrf_app: Flask, tenants: Tenants, csrf_client: FlaskClient
) -> None:
    sign_in_session(csrf_client, tenants.alpha_owner)
    token = csrf_token(csrf_app, csrf_client)

    refused = csrf_client.post("/api/v1/o/alpha/customers", json=NEW_CUSTOMER)
    forged = csrf_client.post(
        "/api/v1/o/alpha/customers", json=NEW_CUSTOMER, headers={"X-CSRFToken": "forged"}
    )
    assert refused.status_code == 400
    assert _error(refused)["code"] == "csrf_failed"
    assert forged.status_code == 400
    assert customers_of(csrf_app, tenants.alpha_id) == []

    created = csrf_client.post(
        "/api/v1/o/alpha/customers", json=NEW_CUSTOMER, headers={"X-CSRFToken": token}
    )
    assert created.status_code == 201
    customer_id = created.get_json()["id"]

    patch_refused = csrf_client.patch(
        f"/api/v1/o/alpha/customers/{customer_id}", json={"first_name": "Zoé"}
    )
    assert patch_refused.status_code == 400
    assert customers_of(csrf_app, tenants.alpha_id)[0]["first_name"] == "Léa"

    patched = csrf_client.patch(
        f"/api/v1/o/alpha/customers/{customer_id}",
        json={"first_name": "Zoé"},
        headers={"X-CSRFToken": token},
    )
    assert patched.status_code == 200
    assert patched.get_json()["first_name"] == "Zoé"
    with database(csrf_app):
        user_email = db.session.execute(
            sa.text("SELECT email FROM users WHERE id = :id"),
            {"id": int(tenants.alpha_owner.split(":")[0])},
        ).scalar_one()
    assert ("customer.updated", user_email) in audit_actions(csrf_app, tenants.alpha_id)


def test_a_signed_in_stranger_gets_404(app: Flask, tenants: Tenants, client: FlaskClient) -> None:
    with database(app):
        stranger = UserFactory()
        session_id = stranger.get_id()
    sign_in_session(client, session_id)

    listed = client.get("/api/v1/o/alpha/customers")
    created = client.post("/api/v1/o/alpha/customers", json=NEW_CUSTOMER)

    assert listed.status_code == 404
    assert created.status_code == 404
    assert _error(created)["code"] == "not_found"
    assert customers_of(app, tenants.alpha_id) == []


def test_staff_of_one_organization_gets_404_on_another(
    app: Flask, tenants: Tenants, client: FlaskClient
) -> None:
    sign_in_session(client, tenants.alpha_owner)

    response = client.get(f"/api/v1/o/beta/customers/{tenants.beta_customer_id}")

    assert response.status_code == 404


# --------------------------------------------------------------------------- permissions


def test_require_permission_refuses_a_role_without_it(app: Flask, tenants: Tenants) -> None:
    # Every role may handle customers; guard the real list view with a permission attendants lack.
    guarded = require_permission(Permission.MANAGE_STAFF)(customers_api.list_customers)
    with app.test_request_context("/api/v1/o/alpha/customers"):
        g.api_role = Role.ATTENDANT
        with pytest.raises(ForbiddenError) as refused:
            guarded()
        response = app.make_response(app.handle_user_exception(refused.value))

    assert response.status_code == 403
    assert _error(response)["code"] == "forbidden"


def test_require_permission_lets_a_role_with_it_through(app: Flask, tenants: Tenants) -> None:
    guarded = require_permission(Permission.MANAGE_STAFF)(lambda: "ran")
    with app.test_request_context("/api/v1/o/alpha/customers"):
        g.api_role = Role.ADMIN
        assert guarded() == "ran"


# --------------------------------------------------------------------------- public endpoints

probe = organization_api_blueprint("api_probe", __name__, "Public endpoint probe.")


@probe.route("/probe", methods=["GET", "POST"])
@public_endpoint
def probe_view() -> dict[str, object]:
    role = current_role()
    return {"role": role.value if role is not None else None}


@pytest.fixture(scope="module")
def probe_app(
    app: Flask, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Flask:
    instance = tmp_path_factory.mktemp("probe-instance")
    application = create_app(
        make_settings(database_url, redis_url, instance, WTF_CSRF_ENABLED=True)
    )
    application.register_blueprint(probe)
    return application


def test_a_public_endpoint_admits_anyone_and_still_knows_staff(
    probe_app: Flask, tenants: Tenants
) -> None:
    client = probe_app.test_client()

    anonymous = client.get("/api/v1/o/alpha/probe")
    keyed = client.get("/api/v1/o/alpha/probe", headers=bearer(tenants.alpha_key))
    bad_key = client.get("/api/v1/o/alpha/probe", headers=bearer("cpt_nothere_secret"))
    unknown = client.get("/api/v1/o/nowhere/probe")

    assert anonymous.status_code == 200
    assert anonymous.get_json() == {"role": None}
    assert keyed.get_json() == {"role": "attendant"}
    assert bad_key.status_code == 401
    assert unknown.status_code == 404

    sign_in_session(client, tenants.alpha_owner)
    assert client.get("/api/v1/o/alpha/probe").get_json() == {"role": "owner"}
    # A write without the CSRF token is served, but not with staff powers.
    assert client.post("/api/v1/o/alpha/probe").get_json() == {"role": None}
    token = csrf_token(probe_app, client)
    assert client.post("/api/v1/o/alpha/probe", headers={"X-CSRFToken": token}).get_json() == {
        "role": "owner"
    }
