"""API keys in the admin portal: shown once, stored hashed, revocable, carrying a role."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.platform.db import db
from comptoir.platform.security import token_hash
from comptoir.platform.tenancy import tenant_scope
from comptoir.tenants import services
from comptoir.tenants.models import ApiKey, Organization, Role
from tests.factories import OrganizationFactory, staff
from tests.tenants.web import database, sign_in

KEYS = "/o/alpha/admin/api-keys/"


@pytest.fixture
def alpha(app: Flask) -> int:
    with database(app):
        organization = OrganizationFactory(slug="alpha", default_locale="en")
        for role in Role:
            staff(organization, role, email=f"{role}@alpha.example")
        return organization.id


def shown_key(page: str) -> str:
    match = re.search(r'id="api-key-value" class="secret" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def key_rows(app: Flask) -> list[dict[str, Any]]:
    with database(app):
        rows = db.session.execute(sa.select(ApiKey.__table__)).mappings().all()
    return [dict(row) for row in rows]


def test_key_is_shown_once_and_only_its_hash_is_stored(
    app: Flask, client: FlaskClient, alpha: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sign_in(client, "admin@alpha.example")

    created = client.post(
        KEYS + "?lang=en", data={"name": "Accounting export", "role": "attendant"}
    )

    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    plaintext = shown_key(created.get_data(as_text=True))
    assert plaintext.startswith("cpt_")
    rows = key_rows(app)
    assert len(rows) == 1
    row = rows[0]
    secret = plaintext.split("_", 2)[2]
    assert row["secret_hash"] == token_hash(secret)
    assert row["role"] == "attendant"
    assert all(secret not in str(value) for value in row.values())
    listing = client.get(KEYS).get_data(as_text=True)
    assert "Accounting export" in listing
    assert row["prefix"] in listing
    assert secret not in listing
    assert all(secret not in record.getMessage() for record in caplog.records)
    # The key shown is a working key for this organization's API.
    with database(app):
        organization = db.session.get(Organization, alpha)
        assert organization is not None
        with tenant_scope(alpha):
            assert services.authenticate_api_key(organization, plaintext) is not None


def test_revoked_key_stops_working(app: Flask, client: FlaskClient, alpha: int) -> None:
    sign_in(client, "owner@alpha.example")
    plaintext = shown_key(
        client.post(KEYS, data={"name": "Old", "role": "admin"}).get_data(as_text=True)
    )
    key_id = key_rows(app)[0]["id"]

    response = client.post(f"{KEYS}{key_id}/revoke?lang=en")

    assert response.status_code == 302
    listing = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "is revoked" in listing
    assert "Revoked" in listing
    assert key_rows(app)[0]["revoked_at"] is not None
    with database(app):
        organization = db.session.get(Organization, alpha)
        assert organization is not None
        with tenant_scope(alpha):
            assert services.authenticate_api_key(organization, plaintext) is None


def test_key_needs_a_name_and_a_role_the_creator_may_give(
    app: Flask, client: FlaskClient, alpha: int
) -> None:
    sign_in(client, "admin@alpha.example")

    nameless = client.post(KEYS + "?lang=en", data={"name": "", "role": "attendant"})
    too_strong = client.post(KEYS + "?lang=en", data={"name": "Root", "role": "owner"})

    assert nameless.status_code == 422
    assert 'href="#name"' in nameless.get_data(as_text=True)
    assert too_strong.status_code == 422
    assert "You cannot give this role." in too_strong.get_data(as_text=True)
    assert key_rows(app) == []


def test_attendant_cannot_manage_keys(app: Flask, client: FlaskClient, alpha: int) -> None:
    sign_in(client, "attendant@alpha.example")

    assert client.get(KEYS).status_code == 403
    assert client.post(KEYS, data={"name": "Mine", "role": "attendant"}).status_code == 403
    assert key_rows(app) == []
