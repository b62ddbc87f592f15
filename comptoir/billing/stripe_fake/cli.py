"""``comptoir stripe-fake``: the Stripe fake in the foreground, for the keyless demo."""

from __future__ import annotations

from urllib.parse import urlsplit

import click
from flask.cli import with_appcontext

from comptoir.billing.stripe_fake.fixtures import FixtureError
from comptoir.billing.stripe_fake.server import LOOPBACK, make_fake_server
from comptoir.platform.settings import current_settings

DEFAULT_PORT = 12111
WEBHOOK_PATH = "/webhooks/stripe"


def _default_port() -> int:
    base = current_settings().stripe_api_base
    port = urlsplit(base).port if base else None
    return port or DEFAULT_PORT


@click.command("stripe-fake")
@click.option("--host", default=LOOPBACK, show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=int,
    default=None,
    help=f"Port to listen on (default: COMPTOIR_STRIPE_API_BASE's port, else {DEFAULT_PORT}).",
)
@click.option(
    "--fixtures",
    "fixtures_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Stripe's fixtures3.json (default: ../shared/stripe/fixtures3.json beside the project).",
)
@click.option(
    "--webhook-url",
    default=None,
    help=f"Where to POST events (default: COMPTOIR_BASE_URL + {WEBHOOK_PATH}).",
)
@click.option(
    "--webhook-secret",
    default=None,
    help="The whsec_ secret to sign events with (default: COMPTOIR_STRIPE_WEBHOOK_SECRET, else "
    "the simulated one the app expects).",
)
@click.option("--no-webhooks", is_flag=True, help="Record events without sending them.")
@with_appcontext
def stripe_fake_command(
    *,
    host: str,
    port: int | None,
    fixtures_path: str | None,
    webhook_url: str | None,
    webhook_secret: str | None,
    no_webhooks: bool,
) -> None:
    """Run the Stripe fake: simulated payments for the demo, no Stripe account needed."""
    from comptoir.billing.stripe_gateway import SIMULATED_WEBHOOK_SECRET

    settings = current_settings()
    try:
        running = make_fake_server(
            host=host, port=port or _default_port(), fixtures_path=fixtures_path
        )
    except FixtureError as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:
        raise click.ClickException(f"Cannot listen on {host}:{port}: {error}") from error
    if not no_webhooks:
        url = webhook_url or settings.base_url.rstrip("/") + WEBHOOK_PATH
        secret = webhook_secret or settings.stripe_webhook_secret or SIMULATED_WEBHOOK_SECRET
        running.fake.add_webhook_endpoint(url, secret)
        click.echo(f"Events are POSTed to {url}, signed with the endpoint's whsec_ secret.")
    click.echo(f"Simulated Stripe (test mode, no money moves) on {running.base_url}")
    if settings.stripe_api_base.rstrip("/") != running.base_url:
        click.echo(f"Point Comptoir at it with COMPTOIR_STRIPE_API_BASE={running.base_url}")
    try:
        running.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        running.stop()
