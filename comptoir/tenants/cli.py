"""Bootstrap and scripting commands: ``comptoir create-operator``, ``create-organization``,
``create-api-key``.

Each command prints what it made and commits once; on bad input it prints the reason on stderr,
saves nothing and exits with status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from comptoir.platform import outbox
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.errors import DomainError
from comptoir.platform.queue import InProcessDispatcher
from comptoir.platform.tenancy import unscoped
from comptoir.tenants import services
from comptoir.tenants.models import Locale, Organization, Role

# The command line acts for the platform, with an owner's powers inside an organization.
CLI_ACTOR = Actor(label="cli", role=Role.OWNER.value, is_operator=True)


def fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(1)


def describe(error: DomainError) -> str:
    details = [
        f"{field}: {message}" for field, messages in error.fields.items() for message in messages
    ]
    if not details:
        return error.message
    return "; ".join(details)


@contextmanager
def one_transaction() -> Iterator[None]:
    """Run the block across organizations and commit once; on a refusal, roll back and exit 1."""
    try:
        with unscoped():
            yield
            db.session.commit()
    except DomainError as error:
        db.session.rollback()
        fail(describe(error))
    except BaseException:
        db.session.rollback()
        raise
    wait_for_in_process_jobs()


def wait_for_in_process_jobs() -> None:
    """On the embedded default jobs run in a thread of this process: let them finish first."""
    dispatcher = current_app.extensions.get(outbox.DISPATCHER_EXTENSION)
    if isinstance(dispatcher, InProcessDispatcher):
        dispatcher.drain()


def read_password() -> str:
    """Ask twice, hidden, on a terminal; otherwise read one line (``echo "$PW" | comptoir …``)."""
    stdin = sys.stdin
    if stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    line = stdin.readline()
    if not line:
        fail("no password on standard input.")
    return line.rstrip("\r\n")


def find_organization(slug: str) -> Organization:
    organization = db.session.execute(
        sa.select(Organization).where(Organization.slug == slug.strip().lower())
    ).scalar_one_or_none()
    if organization is None:
        fail(f"no organization with the slug {slug!r}.")
    assert organization is not None
    return organization


@click.command("create-operator")
@click.argument("email")
@click.option("--name", "full_name", default="", help="The operator's full name.")
@with_appcontext
def create_operator_command(email: str, full_name: str) -> None:
    """Create a platform operator (or make an existing user one). The password is read from
    standard input: asked twice on a terminal, else the first line."""
    password = read_password()
    with one_transaction():
        existed = services.find_user_by_email(email) is not None
        user = services.create_operator(email=email, password=password, full_name=full_name)
        user_id, user_email = user.id, user.email
    verb = "now an operator" if existed else "created"
    click.echo(f"Operator {user_email} {verb} (user id {user_id}).")


@click.command("create-organization")
@click.argument("slug")
@click.option("--name", required=True, help="The organization's display name.")
@click.option("--owner", "owner_email", required=True, help="E-mail of the first owner.")
@click.option(
    "--locale",
    type=click.Choice([locale.value for locale in Locale]),
    default=Locale.FR.value,
    show_default=True,
    help="Default language of the microsite and e-mails.",
)
@click.option("--currency", default="CAD", show_default=True, help="ISO 4217 currency code.")
@with_appcontext
def create_organization_command(
    slug: str, name: str, owner_email: str, locale: str, currency: str
) -> None:
    """Create an organization and invite its first owner by e-mail."""
    currency = currency.strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        fail("currency: use a three-letter ISO code such as CAD.")
    with one_transaction():
        created = services.create_organization(
            actor=CLI_ACTOR,
            slug=slug,
            name=name,
            owner_email=owner_email,
            locale=locale,
            currency=currency,
        )
        organization = created.organization
        summary = (
            f"Organization {organization.slug} created: {organization.name} "
            f"(id {organization.id}, {organization.default_locale.value}, {organization.currency})."
        )
        invited = created.invitation.email
        link = created.invitation_url
    click.echo(summary)
    days = services.INVITATION_LIFETIME.days
    click.echo(f"Owner invitation e-mailed to {invited}. Link (valid {days} days): {link}")


@click.command("create-api-key")
@click.argument("slug")
@click.option(
    "--role",
    required=True,
    type=click.Choice([role.value for role in Role]),
    help="What the key may do, as a staff role.",
)
@click.option("--name", default="Command line", show_default=True, help="A label for the key.")
@with_appcontext
def create_api_key_command(slug: str, role: str, name: str) -> None:
    """Create an API key for an organization and print it once (only its hash is kept)."""
    with one_transaction():
        organization = find_organization(slug)
        key, secret = services.create_api_key(
            organization=organization, actor=CLI_ACTOR, name=name, role=role
        )
        summary = (
            f"API key {key.prefix} ({key.name!r}, role {key.role.value}) "
            f"created for {organization.slug}."
        )
    click.echo(summary)
    click.echo("Copy it now; it is not shown again:")
    click.echo(secret)
