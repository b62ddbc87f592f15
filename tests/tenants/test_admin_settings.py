"""The organization's settings: a page for owners and administrators, the API, the audit."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db
from comptoir.tenants.models import Organization, Role
from tests.factories import OrganizationFactory, api_key, staff
from tests.tenants.api_helpers import assume_sent_as_generated, bearer
from tests.tenants.web import database, sign_in

PAGE = "/o/alpha/admin/settings/"
API = "/api/v1/o/alpha/settings"
SWITCH = "attendant_can_override_prices"


@pytest.fixture
def alpha(app: Flask) -> int:
    with database(app):
        organization = OrganizationFactory(slug="alpha", default_locale="en")
        for role in Role:
            staff(organization, role, email=f"{role}@alpha.example")
        other = OrganizationFactory(slug="beta", default_locale="en")
        staff(other, Role.OWNER, email="owner@beta.example")
        return organization.id


def switch_is_on(app: Flask, organization_id: int) -> bool:
    with database(app):
        organization = db.session.get(Organization, organization_id)
        assert organization is not None
        return organization.attendant_can_override_prices


def settings_audits(app: Flask, organization_id: int) -> list[dict[str, Any]]:
    with database(app):
        entries = db.session.execute(
            sa.select(AuditLog)
            .where(
                AuditLog.organization_id == organization_id,
                AuditLog.action == "organization.settings_changed",
            )
            .order_by(AuditLog.id)
        ).scalars()
        return [
            {
                "actor": entry.actor_label,
                "api_key": entry.actor_api_key_id is not None,
                "target": (entry.target_type, entry.target_id),
                "before": entry.before,
                "after": entry.after,
            }
            for entry in entries
        ]


def keys(app: Flask) -> dict[str, dict[str, str]]:
    with database(app):
        alpha = db.session.execute(
            sa.select(Organization).where(Organization.slug == "alpha")
        ).scalar_one()
        found = {role.value: bearer(api_key(alpha, role)) for role in Role}
        beta = db.session.execute(
            sa.select(Organization).where(Organization.slug == "beta")
        ).scalar_one()
        found["other"] = bearer(api_key(beta, Role.OWNER))
        return found


# --------------------------------------------------------------------------- the page


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_owners_and_admins_switch_attendant_price_changes_on_and_off(
    app: Flask, client: FlaskClient, alpha: int, who: str
) -> None:
    sign_in(client, f"{who}@alpha.example")
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # Labelled, explained, unchecked by default, and in a form carrying its CSRF token.
    assert f'<label class="checkbox"><input aria-describedby="{SWITCH}-hint" id="{SWITCH}"' in html
    assert f'name="{SWITCH}" type="checkbox" value="y"> Attendants may change prices in carts' in (
        html
    )
    assert f'id="{SWITCH}-hint"' in html
    assert "When this is on, attendants can too." in html
    assert 'name="csrf_token"' in html
    assert "checked" not in html
    # The sidebar leads here.
    assert f'href="{PAGE}"' in html

    turned_on = client.post(PAGE, data={SWITCH: "y"})
    assert turned_on.status_code == 302
    assert turned_on.headers["Location"].endswith(PAGE)
    assert switch_is_on(app, alpha)
    assert "checked" in client.get(PAGE).get_data(as_text=True)

    turned_off = client.post(PAGE, data={})
    assert turned_off.status_code == 302
    assert not switch_is_on(app, alpha)
    # Saving without a change records nothing more.
    assert client.post(PAGE, data={}).status_code == 302

    assert settings_audits(app, alpha) == [
        {
            "actor": f"{who}@alpha.example",
            "api_key": False,
            "target": ("organization", str(alpha)),
            "before": {SWITCH: False},
            "after": {SWITCH: True},
        },
        {
            "actor": f"{who}@alpha.example",
            "api_key": False,
            "target": ("organization", str(alpha)),
            "before": {SWITCH: True},
            "after": {SWITCH: False},
        },
    ]


def test_attendants_and_other_organizations_cannot_reach_the_page(
    app: Flask, client: FlaskClient, alpha: int
) -> None:
    sign_in(client, "attendant@alpha.example")
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, data={SWITCH: "y"}).status_code == 403
    assert f'href="{PAGE}"' not in client.get("/o/alpha/admin/").get_data(as_text=True)
    sign_in(client, "owner@beta.example")
    assert client.get(PAGE).status_code == 404
    assert client.post(PAGE, data={SWITCH: "y"}).status_code == 404
    assert not switch_is_on(app, alpha)
    assert settings_audits(app, alpha) == []


def test_the_page_in_french(client: FlaskClient, alpha: int) -> None:
    sign_in(client, "owner@alpha.example")
    html = client.get(PAGE + "?lang=fr").get_data(as_text=True)
    assert "Paramètres" in html
    assert "peuvent modifier les prix dans les paniers" in html
    assert "les préposés à l'accueil le peuvent aussi" in html


# --------------------------------------------------------------------------- the API


def test_staff_read_the_settings_and_owners_and_admins_change_them(
    app: Flask, client: FlaskClient, alpha: int
) -> None:
    by_role = keys(app)
    for role in Role:
        answer = client.get(API, headers=by_role[role.value])
        assert answer.status_code == 200
        assert answer.get_json() == {SWITCH: False}

    changed = client.patch(API, json={SWITCH: True}, headers=by_role["admin"])
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json() == {SWITCH: True}
    assert switch_is_on(app, alpha)
    # An empty change changes nothing and is not audited.
    assert client.patch(API, json={}, headers=by_role["owner"]).get_json() == {SWITCH: True}
    back = client.patch(API, json={SWITCH: False}, headers=by_role["owner"])
    assert back.get_json() == {SWITCH: False}
    audits = settings_audits(app, alpha)
    assert [(entry["before"], entry["after"]) for entry in audits] == [
        ({SWITCH: False}, {SWITCH: True}),
        ({SWITCH: True}, {SWITCH: False}),
    ]
    assert all(entry["api_key"] for entry in audits)


def test_attendants_cannot_change_the_settings_through_the_api(
    app: Flask, client: FlaskClient, alpha: int
) -> None:
    by_role = keys(app)
    refused = client.patch(API, json={SWITCH: True}, headers=by_role["attendant"])
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    # Another organization's key does not even find these settings.
    assert client.get(API, headers=by_role["other"]).status_code in {401, 404}
    assert client.patch(API, json={SWITCH: True}, headers=by_role["other"]).status_code in {
        401,
        404,
    }
    assert client.get(API).status_code == 401
    assert not switch_is_on(app, alpha)
    assert settings_audits(app, alpha) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({SWITCH: "yes"}, SWITCH),
        ({SWITCH: 1}, SWITCH),
        ({SWITCH: None}, SWITCH),
        ({SWITCH: True, "currency": "USD"}, "currency"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(
    app: Flask, client: FlaskClient, alpha: int, body: dict[str, Any], field: str
) -> None:
    response = client.patch(API, json=body, headers=keys(app)["owner"])
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]
    assert not switch_is_on(app, alpha)
    assert settings_audits(app, alpha) == []


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize("method", ["get", "patch"])
def test_the_settings_api_conforms_to_its_document(
    app: Flask, alpha: int, method: str, mode: GenerationMode
) -> None:
    owner = keys(app)["owner"]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = schema["/api/v1/o/{org}/settings"][method.upper()]
    strategy = operation.as_strategy(generation_mode=mode, path_parameters={"org": "alpha"})

    @given(case=strategy)
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        assume_sent_as_generated(case)
        case.call_and_validate(headers=owner)

    check()
