"""Staff sign-in: login, logout, rate limits, password reset, sessions, invitations, headers."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from comptoir.app import create_app
from comptoir.platform.db import db, utcnow
from comptoir.platform.mail import MailMessage
from comptoir.tenants.models import Invitation, Membership, PasswordResetToken, Role, User
from tests.conftest import make_settings
from tests.factories import DEFAULT_PASSWORD, OrganizationFactory, UserFactory, staff
from tests.tenants.web import database, sent_link, sign_in

NEW_PASSWORD = "a brand new passphrase"
FAILED = "The e-mail address or the password is not right."


@pytest.fixture
def alpha(app: Flask) -> dict[str, Any]:
    with database(app):
        organization = OrganizationFactory(slug="alpha", name="Club Alpha", default_locale="en")
        owner = staff(organization, Role.OWNER, email="owner@alpha.example")
        return {"id": organization.id, "owner_email": owner.email, "owner_id": owner.id}


def error_summary(page: str) -> str:
    match = re.search(r'<div class="error-summary".*?</div>', page, re.DOTALL)
    assert match, page
    return match.group(0)


def user_row(app: Flask, email: str) -> User | None:
    with database(app):
        user = db.session.execute(sa.select(User).where(User.email == email)).scalar_one_or_none()
        if user is not None:
            db.session.expunge(user)
        return user


# --------------------------------------------------------------------------- login and logout


def test_login_through_the_form_lands_on_the_organizations(
    client: FlaskClient, alpha: dict[str, Any]
) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert 'name="email"' in page
    assert '<label for="email">' in page

    response = client.post(
        "/login", data={"email": "Owner@Alpha.example", "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert "Club Alpha" in home
    assert 'href="/o/alpha/admin/"' in home
    assert client.get("/o/alpha/admin/").status_code == 200


def test_anonymous_home_invites_to_sign_in(client: FlaskClient) -> None:
    page = client.get("/?lang=en").get_data(as_text=True)
    assert 'href="/login"' in page


def test_operator_home_links_to_console(app: Flask, client: FlaskClient) -> None:
    with database(app):
        operator = UserFactory(is_operator=True)
        email = operator.email
    sign_in(client, email)
    assert 'href="/operators/"' in client.get("/").get_data(as_text=True)


def test_wrong_password_and_unknown_email_get_the_same_answer(
    client: FlaskClient, alpha: dict[str, Any]
) -> None:
    wrong_password = client.post(
        "/login?lang=en", data={"email": alpha["owner_email"], "password": "not the password"}
    )
    unknown_email = client.post(
        "/login?lang=en", data={"email": "nobody@alpha.example", "password": "not the password"}
    )

    assert wrong_password.status_code == unknown_email.status_code == 422
    first = error_summary(wrong_password.get_data(as_text=True))
    second = error_summary(unknown_email.get_data(as_text=True))
    assert first == second
    assert FAILED in first
    assert client.get("/o/alpha/admin/").status_code == 302  # still signed out


def test_login_redirects_only_to_same_site_next(client: FlaskClient, alpha: dict[str, Any]) -> None:
    data = {"email": alpha["owner_email"], "password": DEFAULT_PASSWORD}
    ok = client.post("/login?next=/o/alpha/admin/staff/", data=data)
    assert ok.headers["Location"] == "/o/alpha/admin/staff/"
    unsafe = ("https://evil.example/", "//evil.example/x", "/\\evil.example", "/\t/evil.example")
    for target in (*unsafe, "javascript:x", ""):
        client.post("/logout")
        response = client.post("/login", data={**data, "next": target})
        assert response.headers["Location"] == "/", target


def test_login_is_rate_limited_per_address(client: FlaskClient, alpha: dict[str, Any]) -> None:
    data = {"email": alpha["owner_email"], "password": "wrong password"}
    for _ in range(10):
        assert client.post("/login", data=data).status_code == 422
    limited = client.post("/login?lang=en", data={**data, "password": DEFAULT_PASSWORD})

    assert limited.status_code == 429
    assert "Too many attempts" in limited.get_data(as_text=True)
    assert client.get("/login").status_code == 200  # only attempts are counted
    assert client.get("/o/alpha/admin/").status_code == 302


def test_login_is_rate_limited_per_email_across_addresses(
    client: FlaskClient, alpha: dict[str, Any]
) -> None:
    data = {"email": alpha["owner_email"], "password": "wrong password"}
    for number in range(10):
        environ = {"REMOTE_ADDR": f"198.51.100.{number}"}
        assert client.post("/login", data=data, environ_base=environ).status_code == 422
    elsewhere = client.post("/login", data=data, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert elsewhere.status_code == 429
    other_person = client.post(
        "/login",
        data={"email": "someone@else.example", "password": "x"},
        environ_base={"REMOTE_ADDR": "203.0.113.10"},
    )
    assert other_person.status_code == 422


def test_logout_ends_the_session(client: FlaskClient, alpha: dict[str, Any]) -> None:
    sign_in(client, alpha["owner_email"])
    assert client.get("/o/alpha/admin/").status_code == 200

    response = client.post("/logout")

    assert response.status_code == 302
    after = client.get("/o/alpha/admin/")
    assert after.status_code == 302
    assert after.headers["Location"] == "/login?next=/o/alpha/admin/"


def test_logout_needs_a_post(client: FlaskClient, alpha: dict[str, Any]) -> None:
    sign_in(client, alpha["owner_email"])
    assert client.get("/logout").status_code == 405
    assert client.get("/o/alpha/admin/").status_code == 200


def test_login_required_redirects_pages_but_not_the_api(app: Flask) -> None:
    from werkzeug.exceptions import Unauthorized

    from comptoir.platform.extensions import login_manager

    with app.test_request_context("/o/alpha/admin/orders/?page=2"):
        response = login_manager.unauthorized()
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=/o/alpha/admin/orders/")
    with app.test_request_context("/api/v1/o/alpha/customers"), pytest.raises(Unauthorized):
        login_manager.unauthorized()


# --------------------------------------------------------------------------- password reset


CSRF_TOKEN = re.compile(r'name="csrf_token"[^>]*value="[^"]*"|value="[^"]*"[^>]*name="csrf_token"')


def request_reset(client: FlaskClient, email: str) -> str:
    """The page shown after asking, with its CSRF token blanked: the token carries a
    timestamp, so two pages a second apart differ there and nowhere that matters."""
    response = client.post("/password/forgot?lang=en", data={"email": email})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    return CSRF_TOKEN.sub('name="csrf_token"', page)


def test_password_reset_end_to_end(
    app: Flask, client: FlaskClient, alpha: dict[str, Any], jobs: Any
) -> None:
    other_browser = app.test_client()
    sign_in(other_browser, alpha["owner_email"])

    answer = request_reset(client, alpha["owner_email"])
    assert "If an account exists for this address" in answer
    jobs()
    link = sent_link(app, alpha["owner_email"], "/password/reset/")

    form = client.get(link)
    assert form.status_code == 200
    assert 'name="password"' in form.get_data(as_text=True)
    mismatch = client.post(link, data={"password": NEW_PASSWORD, "confirm": "something else"})
    assert mismatch.status_code == 422
    too_short = client.post(link, data={"password": "short", "confirm": "short"})
    assert too_short.status_code == 422
    assert "at least 10 characters" in too_short.get_data(as_text=True)

    done = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})

    assert done.status_code == 302
    assert client.get("/o/alpha/admin/").status_code == 200  # signed in by the reset
    # The browser signed in before the change is signed out (its session version is stale).
    assert other_browser.get("/o/alpha/admin/").status_code == 302
    fresh = app.test_client()
    assert (
        fresh.post(
            "/login", data={"email": alpha["owner_email"], "password": DEFAULT_PASSWORD}
        ).status_code
        == 422
    )
    sign_in(fresh, alpha["owner_email"], NEW_PASSWORD)
    # The link worked once.
    reused = client.get(link + "?lang=en")
    assert reused.status_code == 410
    assert "expired or was already used" in reused.get_data(as_text=True)
    again = client.post(link, data={"password": "yet another passphrase", "confirm": "x"})
    assert again.status_code == 410
    user = user_row(app, alpha["owner_email"])
    assert user is not None
    assert user.session_version == 2


def test_expired_reset_link_is_refused(
    app: Flask, client: FlaskClient, alpha: dict[str, Any], jobs: Any
) -> None:
    request_reset(client, alpha["owner_email"])
    jobs()
    link = sent_link(app, alpha["owner_email"], "/password/reset/")
    with database(app):
        db.session.execute(
            sa.update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()

    response = client.post(
        link + "?lang=en", data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )

    assert response.status_code == 410
    assert "expired or was already used" in response.get_data(as_text=True)
    user = user_row(app, alpha["owner_email"])
    assert user is not None
    assert user.session_version == 1


def test_unknown_reset_link_is_refused(client: FlaskClient) -> None:
    response = client.get("/password/reset/not-a-real-token?lang=en")
    assert response.status_code == 410
    assert "expired or was already used" in response.get_data(as_text=True)


def test_forgot_password_says_the_same_for_unknown_addresses(
    app: Flask, client: FlaskClient, alpha: dict[str, Any], jobs: Any
) -> None:
    known = request_reset(client, alpha["owner_email"])
    unknown = request_reset(client, "nobody@alpha.example")

    assert known == unknown
    jobs()
    with database(app):
        recipients = db.session.execute(sa.select(MailMessage.to_address)).scalars().all()
    assert recipients == [alpha["owner_email"]]


def test_forgot_password_is_rate_limited(client: FlaskClient, alpha: dict[str, Any]) -> None:
    for number in range(10):
        environ = {"REMOTE_ADDR": f"198.51.100.{number}"}
        response = client.post(
            "/password/forgot", data={"email": alpha["owner_email"]}, environ_base=environ
        )
        assert response.status_code == 302
    limited = client.post("/password/forgot", data={"email": alpha["owner_email"]})
    assert limited.status_code == 429


def test_a_session_from_before_a_password_change_is_refused(
    app: Flask, client: FlaskClient, alpha: dict[str, Any]
) -> None:
    sign_in(client, alpha["owner_email"])
    with database(app):
        db.session.execute(
            sa.update(User)
            .where(User.id == alpha["owner_id"])
            .values(session_version=User.session_version + 1)
        )
        db.session.commit()

    response = client.get("/o/alpha/admin/")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_a_malformed_session_id_is_refused(client: FlaskClient, alpha: dict[str, Any]) -> None:
    for bad in (str(alpha["owner_id"]), f"{alpha['owner_id']}:x", "x:1", ""):
        with client.session_transaction() as session:
            session["_user_id"] = bad
        assert client.get("/o/alpha/admin/").status_code == 302, bad


# --------------------------------------------------------------------------- invitations


def invite(app: Flask, client: FlaskClient, email: str, role: str, jobs: Any) -> str:
    response = client.post("/o/alpha/admin/staff/invitations/", data={"email": email, "role": role})
    assert response.status_code == 302, response.get_data(as_text=True)
    jobs()
    return sent_link(app, email.lower(), "/invitations/")


def membership_roles(app: Flask, organization_id: int) -> dict[str, Role]:
    with database(app):
        rows = db.session.execute(
            sa.select(User.email, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == organization_id)
        ).all()
    return dict(rows)


def test_invitation_creates_an_account_for_a_new_person(
    app: Flask, client: FlaskClient, alpha: dict[str, Any], jobs: Any
) -> None:
    sign_in(client, alpha["owner_email"])
    link = invite(app, client, "New.Person@alpha.example", "attendant", jobs)
    newcomer = app.test_client()

    page = newcomer.get(link + "?lang=en").get_data(as_text=True)
    assert "Club Alpha" in page
    assert "Attendant" in page
    assert 'name="full_name"' in page
    refused = newcomer.post(link, data={"full_name": "", "password": "short", "confirm": "short"})
    assert refused.status_code == 422
    assert user_row(app, "new.person@alpha.example") is None

    joined = newcomer.post(
        link,
        data={"full_name": "Nouvelle Personne", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )

    assert joined.status_code == 302
    assert joined.headers["Location"] == "/o/alpha/admin/"
    assert newcomer.get("/o/alpha/admin/").status_code == 200
    assert membership_roles(app, alpha["id"])["new.person@alpha.example"] is Role.ATTENDANT
    assert newcomer.get(link + "?lang=en").status_code == 410  # used


def test_invitation_for_an_existing_account_asks_to_sign_in_then_join(
    app: Flask, client: FlaskClient, alpha: dict[str, Any], jobs: Any
) -> None:
    with database(app):
        beta = OrganizationFactory(slug="beta")
        staff(beta, Role.OWNER, email="both@example.org")
    sign_in(client, alpha["owner_email"])
    link = invite(app, client, "both@example.org", "admin", jobs)
    person = app.test_client()

    page = person.get(link + "?lang=en").get_data(as_text=True)
    assert "Sign in to accept" in page
    assert 'name="password"' not in page
    signed_in = person.post(
        "/login", data={"email": "both@example.org", "password": DEFAULT_PASSWORD, "next": link}
    )
    assert signed_in.headers["Location"] == link
    assert "<button" in person.get(link).get_data(as_text=True)

    joined = person.post(link)

    assert joined.status_code == 302
    assert membership_roles(app, alpha["id"])["both@example.org"] is Role.ADMIN
    assert person.get("/o/alpha/admin/").status_code == 200
    home = person.get("/").get_data(as_text=True)
    assert "/o/alpha/admin/" in home
    assert "/o/beta/admin/" in home


def test_invitation_opened_by_someone_else_signed_in_changes_nothing(
    app: Flask, client: FlaskClient, alpha: dict[str, Any], jobs: Any
) -> None:
    sign_in(client, alpha["owner_email"])
    link = invite(app, client, "invited@example.org", "attendant", jobs)

    page = client.get(link + "?lang=en")
    posted = client.post(link)

    assert "sent to another address" in page.get_data(as_text=True)
    assert posted.status_code == 422
    assert "invited@example.org" not in membership_roles(app, alpha["id"])
    with database(app):
        invitation = db.session.execute(sa.select(Invitation)).scalar_one()
        assert invitation.accepted_at is None


def test_invitation_acceptance_is_rate_limited(
    app: Flask, client: FlaskClient, alpha: dict[str, Any], jobs: Any
) -> None:
    sign_in(client, alpha["owner_email"])
    link = invite(app, client, "guess@example.org", "attendant", jobs)
    stranger = app.test_client()
    for _ in range(10):
        assert stranger.post(link, data={"full_name": "", "password": "x"}).status_code == 422
    assert stranger.post(link, data={"full_name": "", "password": "x"}).status_code == 429


# --------------------------------------------------------------------------- headers and cookies


def test_security_headers_and_cookie_flags(client: FlaskClient, alpha: dict[str, Any]) -> None:
    page = client.get("/login")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"

    response = sign_in(client, alpha["owner_email"])

    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies
    assert "HttpOnly" in cookies[0]
    assert "SameSite=Lax" in cookies[0]


# --------------------------------------------------------------------------- CSRF


@pytest.fixture
def csrf_client(app: Flask, database_url: str, redis_url: str, tmp_path: Path) -> FlaskClient:
    # A second app over the same database, with CSRF protection on as in production.
    guarded = create_app(make_settings(database_url, redis_url, tmp_path, WTF_CSRF_ENABLED=True))
    return guarded.test_client()


def test_posts_without_a_csrf_token_are_refused(
    app: Flask, csrf_client: FlaskClient, alpha: dict[str, Any]
) -> None:
    no_token = csrf_client.post(
        "/login", data={"email": alpha["owner_email"], "password": DEFAULT_PASSWORD}
    )
    assert no_token.status_code == 400
    assert csrf_client.get("/o/alpha/admin/").status_code == 302

    page = csrf_client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    signed_in = csrf_client.post(
        "/login",
        data={
            "email": alpha["owner_email"],
            "password": DEFAULT_PASSWORD,
            "csrf_token": token.group(1),
        },
    )
    assert signed_in.status_code == 302

    forged = csrf_client.post(
        "/o/alpha/admin/customers/new",
        data={"first_name": "Forged", "last_name": "Row", "email": "forged@example.org"},
    )
    forged_invite = csrf_client.post(
        "/o/alpha/admin/staff/invitations/", data={"email": "x@example.org", "role": "owner"}
    )

    assert forged.status_code == 400
    assert forged_invite.status_code == 400
    with database(app):
        assert db.session.execute(sa.select(sa.func.count(Invitation.id))).scalar_one() == 0
        from comptoir.tenants.models import Customer

        assert db.session.execute(sa.select(sa.func.count(Customer.id))).scalar_one() == 0
