"""The demo: ``comptoir seed-demo`` is idempotent, and ``make demo`` works from a fresh clone."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from comptoir.platform.audit import AuditLog
from comptoir.platform.db import db
from comptoir.platform.mail import MailMessage
from comptoir.platform.tenancy import unscoped
from comptoir.tenants import services
from comptoir.tenants.models import Customer, Membership, Organization, Role, User

REPOSITORY = Path(__file__).resolve().parents[1]
LOGIN_LINE = re.compile(
    r"^\s+(operator|owner|admin|attendant)\s+(\S+@\S+)\s+(\S+)\s*$", re.MULTILINE
)


def printed_logins(output: str) -> dict[str, tuple[str, str]]:
    return {who: (email, password) for who, email, password in LOGIN_LINE.findall(output)}


def row_counts() -> dict[str, int]:
    with unscoped():
        counts = {
            model.__name__: db.session.execute(
                sa.select(sa.func.count()).select_from(model)
            ).scalar_one()
            for model in (Organization, User, Membership, Customer, AuditLog, MailMessage)
        }
    db.session.rollback()
    return counts


@pytest.mark.usefixtures("app_context")
def test_seed_demo_is_idempotent_and_its_logins_work(app: Flask) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo", "--base-url", "http://demo.example:8000"])
    assert first.exit_code == 0, first.output
    counts = row_counts()
    second = runner.invoke(args=["seed-demo", "--base-url", "http://demo.example:8000"])
    assert second.exit_code == 0, second.output

    assert second.stdout == first.stdout
    assert row_counts() == counts
    assert counts["Organization"] == 1
    assert counts["User"] == 4
    assert counts["Membership"] == 3
    assert counts["Customer"] >= 5

    for path in ("/login", "/o/dauphins/", "/o/dauphins/admin/", "/operators/", "/_dev/mail"):
        assert f"http://demo.example:8000{path}" in first.stdout

    logins = printed_logins(first.stdout)
    assert set(logins) == {"operator", "owner", "admin", "attendant"}
    assert logins["attendant"][0] == "accueil@dauphins.demo"
    db.session.expire_all()
    roles = {}
    for who, (email, password) in logins.items():
        user = services.authenticate(email, password)
        assert user is not None, who
        memberships = services.memberships_of(user)
        roles[who] = [(m.organization.slug, m.role) for m in memberships]
        assert user.is_operator == (who == "operator")
    db.session.rollback()
    assert roles == {
        "operator": [],
        "owner": [("dauphins", Role.OWNER)],
        "admin": [("dauphins", Role.ADMIN)],
        "attendant": [("dauphins", Role.ATTENDANT)],
    }

    with unscoped():
        organization = db.session.execute(sa.select(Organization)).scalar_one()
        names = db.session.execute(sa.select(Customer.first_name)).scalars().all()
    assert organization.name == "Club de natation Les Dauphins"
    assert str(organization.default_locale) == "fr"
    assert organization.city == "Montréal"
    assert organization.gst_hst_number
    assert organization.qst_number
    assert "Élodie" in names


# --------------------------------------------------------------------------- make demo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[Any], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"make demo exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own server
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    pytest.fail(f"{url} did not answer in {timeout:.0f}s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def running_demo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``make demo`` in a fresh clone of this repository; yields its base URL and its output."""
    clone = tmp_path / "comptoir"
    subprocess.run(  # noqa: S603 - fixed arguments
        ["git", "clone", "--quiet", str(REPOSITORY), str(clone)],  # noqa: S607 - git from PATH
        check=True,
    )
    port = free_port()
    # A user's shell, not this test run's: no COMPTOIR_* settings, no active virtual environment.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COMPTOIR_", "PYTEST_", "VIRTUAL_ENV", "MAKE", "MFLAGS"))
    }
    log = tmp_path / "make-demo.log"
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments
            ["make", "demo", f"PORT={port}", "HOST=127.0.0.1"],  # noqa: S607 - make from PATH
            cwd=clone,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base_url}/healthz", process, log, timeout=240)
        yield base_url, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def browser() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )


def sign_in(opener: urllib.request.OpenerDirector, base_url: str, email: str, password: str) -> str:
    """Fill the real sign-in form; returns the page it lands on."""
    with opener.open(f"{base_url}/login") as response:
        page = response.read().decode()
    match = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, page
    form = urllib.parse.urlencode(
        {"email": email, "password": password, "csrf_token": match.group(1)}
    ).encode()
    try:
        with opener.open(f"{base_url}/login", data=form) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as refused:  # a refused sign-in may answer 4xx with the form
        return str(refused.read().decode())


@pytest.mark.slow
def test_make_demo_from_a_fresh_clone(running_demo: tuple[str, str]) -> None:
    """``make demo`` in a clone at HEAD serves the app and its printed demo logins work.

    Only committed files take part: the clone is made from the repository's HEAD, so work not yet
    committed is not tested here.
    """
    base_url, output = running_demo
    logins = printed_logins(output)
    assert {"owner", "attendant", "operator"} <= set(logins), output
    for path in ("/login", "/o/dauphins/", "/o/dauphins/admin/", "/operators/", "/_dev/mail"):
        assert f"{base_url}{path}" in output

    owner = browser()
    sign_in(owner, base_url, *logins["owner"])
    with owner.open(f"{base_url}/o/dauphins/admin/") as response:
        assert response.status == 200
        assert response.geturl() == f"{base_url}/o/dauphins/admin/"  # not sent to /login
        assert "Les Dauphins" in response.read().decode()

    # Simulated payments: the server started a Stripe fake and restored the club's account there.
    assert "Simulated payments: a Stripe fake on http://127.0.0.1:" in output
    with owner.open(f"{base_url}/o/dauphins/admin/stripe/?lang=en") as response:
        page = response.read().decode()
    assert 'id="simulated-payments"' in page
    assert "Ready: card payments are enabled" in page
    token = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, page
    refresh = urllib.parse.urlencode({"csrf_token": token.group(1)}).encode()
    with owner.open(f"{base_url}/o/dauphins/admin/stripe/refresh", data=refresh) as response:
        page = response.read().decode()
    assert "read from Stripe again" in page  # the fake answered for the restored account
    assert "Ready: card payments are enabled" in page

    operator = browser()
    sign_in(operator, base_url, *logins["operator"])
    with operator.open(f"{base_url}/operators/") as response:
        assert response.status == 200
        assert response.geturl() == f"{base_url}/operators/"
        assert "dauphins" in response.read().decode()

    # A wrong password does not get in.
    stranger = browser()
    page = sign_in(stranger, base_url, logins["owner"][0], "not-the-password")
    assert 'name="password"' in page
    with stranger.open(f"{base_url}/o/dauphins/admin/") as response:
        assert "/login" in response.geturl()
